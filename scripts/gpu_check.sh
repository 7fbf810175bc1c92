#!/usr/bin/env bash
# `just gpu-check`: what a short run on a lent GPU checks, from a binary built beforehand
# (`cargo build --locked --features cuda --bin autoprompt`, about as long as a CPU build;
# GPU_CHECK_BIN names another binary). Meant to fit in ten minutes; everything it writes goes
# under GPU_CHECK_OUT (default gpu-check/), one file per step, and a summary.txt.
#
# Steps:
#   1. the device (nvidia-smi) and the binary's version;
#   2. numerics: `fill-mask` on the GPU backend against the CPU one (burn on ndarray, which the
#      parity tests tie to transformers and to the host engine) for SPLADE-tiny and every
#      family's fixture (tests/fixtures/tiny-*): the same top-10 tokens, probabilities within
#      GPU_CHECK_TOLERANCE (default 1e-3);
#   3. `bench forward` (burn on the GPU) for SPLADE-tiny and, when GPU_CHECK_BASE_MODEL names
#      one (scripts/make_random_bert.py --size base), the BERT-base-sized model, at 32 × 64
#      and 32 × 128;
#   4. `bench search` (two timed iterations, faithful shape) on the same models;
#   5. PyTorch's forward on CUDA beside it (benches/torch_forward.py --device cuda), when the
#      python in GPU_CHECK_PYTHON (default python3) imports torch with CUDA.
#
# GPU_CHECK_BACKEND=ndarray runs the same steps on the CPU: a dry run of the script itself
# (its comparisons are then of the CPU against itself).
set -uo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
bin="${GPU_CHECK_BIN:-$target/debug/autoprompt}"
backend="${GPU_CHECK_BACKEND:-cuda}"
out="${GPU_CHECK_OUT:-gpu-check}"
tolerance="${GPU_CHECK_TOLERANCE:-1e-3}"
python="${GPU_CHECK_PYTHON:-python3}"
base="${GPU_CHECK_BASE_MODEL:-}"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
failures=0

note() { echo "$*" | tee -a "$summary"; }
# Runs a step, its stdout and stderr into $out/<name>.txt; counts a failure.
step() {
  local name=$1; shift
  if "$@" > "$out/$name.txt" 2>&1; then
    note "ok      $name"
  else
    note "FAILED  $name (exit $?; see $out/$name.txt)"
    failures=$((failures + 1))
  fi
}

if [ ! -x "$bin" ]; then
  note "no binary at $bin: build it first with \`cargo build --locked --features cuda --bin autoprompt\`"
  exit 2
fi
step device bash -c 'command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi not found"'
step version "$bin" --version

# 2. Numerics: GPU against CPU, family by family.
sentence() {
  case "$1" in
    *roberta*|*xlm*) echo "The capital of France is <mask>." ;;
    *) echo "the capital of france is [MASK] ." ;;
  esac
}
compare='
import re, sys
tol = float(sys.argv[3])
def read(path):
    rows = []
    for line in open(path):
        m = re.match(r"\s+(.*?)\s+([0-9.]+)\s+\(id (\d+)\)", line)
        if m:
            rows.append((int(m.group(3)), float(m.group(2))))
    return rows
a, b = read(sys.argv[1]), read(sys.argv[2])
if not a or len(a) != len(b):
    sys.exit(f"{len(a)} predictions against {len(b)}")
worst = max(abs(x[1] - y[1]) for x, y in zip(a, b))
ids_a, ids_b = [x[0] for x in a], [y[0] for y in b]
print(f"{len(a)} predictions; largest probability difference {worst:.2e}; same tokens: {ids_a == ids_b}")
if worst > tol:
    sys.exit(f"probability difference {worst:.2e} above {tol}")
if ids_a != ids_b:
    # Equal probabilities may order differently; the token sets must still agree.
    if sorted(ids_a) != sorted(ids_b):
        sys.exit("different tokens")
'
for model in models/splade-tiny tests/fixtures/tiny-*; do
  [ -f "$model/config.json" ] || continue
  # Weights-only fixtures (e.g. the legacy .bin one) have no tokenizer to fill a mask with.
  [ -f "$model/tokenizer.json" ] || [ -f "$model/vocab.txt" ] || [ -f "$model/vocab.json" ] || continue
  name=$(basename "$model")
  text=$(sentence "$name")
  step "fill-mask-$name-cpu" "$bin" -q fill-mask --model "$model" --backend ndarray --top-k 10 "$text"
  step "fill-mask-$name-$backend" "$bin" -q fill-mask --model "$model" --backend "$backend" --top-k 10 "$text"
  step "compare-$name" python3 -c "$compare" "$out/fill-mask-$name-cpu.txt" "$out/fill-mask-$name-$backend.txt" "$tolerance"
done

# 3–4. Speed on the GPU backend (burn's ops).
for model in models/splade-tiny $base; do
  name=$(basename "$model")
  for seq in 64 128; do
    step "forward-$name-32x$seq" "$bin" -q bench forward --model "$model" --backend "$backend" --engine burn --batch 32 --seq "$seq"
  done
  step "search-$name" "$bin" -q bench search --model "$model" --backend "$backend" --engine burn --iters 2 --warmup 1
done

# 5. PyTorch on CUDA, when present.
if "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  for model in models/splade-tiny $base; do
    name=$(basename "$model")
    for seq in 64 128; do
      step "torch-forward-$name-32x$seq" "$python" benches/torch_forward.py --model "$model" --batch 32 --seq "$seq" --device cuda
    done
  done
else
  note "skipped PyTorch: $python has no torch with CUDA"
fi

note "gpu-check: $failures failed step(s); outputs in $out/"
[ "$failures" -eq 0 ]
