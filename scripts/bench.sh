#!/usr/bin/env bash
# `just bench`: one search iteration in Rust (this project's code path) and in PyTorch (the
# paper's reference loop, and this project's algorithm), interleaved on the same machine,
# plus encoder-forward and trigger-gradient GFLOP/s beside PyTorch's, against the best 2048² sgemm
# measured in the same run. Writes
# reports/bench.md and results/bench/*.jsonl.
#
# The iteration is the faithful one everywhere: the gradient over BENCH_ACCUMULATION batches
# of 32, then the current trigger and every candidate scored on BENCH_EVAL_BATCHES fresh
# batches (default: as many as the accumulation, as the paper's code and the search do). Each
# record has the median wall seconds and the CPU seconds (user + system, every thread) per
# iteration.
#
# Environment:
#   BENCH_MODELS   space-separated model dirs (default: models/splade-tiny, and
#                  $BENCH_BASE_MODEL when set: a BERT-base-sized random model written by
#                  scripts/make_random_bert.py --size base)
#   BENCH_SEARCH_MODELS  models for the search iteration (default: BENCH_MODELS; empty: none; on 2 cores
#                  one BERT-base-sized iteration at accumulation 10 -- 10 gradient batches and
#                  10 evaluation batches × (1 + candidates) -- takes minutes for the host
#                  engine and far longer for the PyTorch reference loop)
#   BENCH_FORWARD_MODELS models for the encoder forward (default: BENCH_MODELS; empty: none)
#   BENCH_PRUNING_MODELS models for the exact-pruning comparison (default: BENCH_SEARCH_MODELS;
#                  empty: none): the host engine's iteration with pruning on and off
#                  (`--no-prune`), interleaved, under both selection metrics, 10 candidates
#   BENCH_SEQS     sequence lengths of the forward and trigger-gradient rows (default "64 128"; batch 32)
#   BENCH_GRADIENT 1 (default): also time the trigger-gradient pass (`bench forward --gradient`,
#                  host engine) beside `benches/torch_forward.py --gradient`
#   BENCH_TORCH_SEARCH 1 (default): time PyTorch's search iterations too; 0: the Rust rows only
#                  (e.g. the full BERT-base-sized iteration, whose reference loop takes hours)
#   BENCH_AVX2_BIN a binary built without gemm's `x86-v4` feature (the AVX2 kernels an AVX2-only
#                  machine runs): its host forward rows are added as `rust-host-avx2`
#   BENCH_APPEND   1: add to results/bench/*.jsonl instead of starting them afresh (so a
#                  slow workload can be run on its own and still land in the same report)
#   BENCH_CANDIDATES  default "10 100";  BENCH_ITERS default 5;  BENCH_ACCUMULATION default 10
#   BENCH_EVAL_BATCHES  evaluation batches per iteration (default: BENCH_ACCUMULATION; the
#                  report gives no target verdict for a workload where they differ)
#   BENCH_NOTE     free text for the report's "How this report was produced" (e.g. which
#                  invocations wrote the records)
#   BENCH_PYTHON   python with torch + transformers (default: a venv under $CARGO_TARGET_DIR)
#   BENCH_BACKENDS default "ndarray flex": burn backends timed with burn's own ops
#                  (`--engine burn`), beside the host engine (`rust-host`, what the search
#                  uses on any CPU backend)
#   BENCH_OPENBLAS  1 (default) also times the ndarray backend with OpenBLAS matmuls
#                  (`--features openblas`; installs Debian's libopenblas-dev when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/autoprompt"
# Each entry: "binary backend engine".
runs=("$bin ndarray host")
for backend in ${BENCH_BACKENDS-ndarray flex}; do runs+=("$bin $backend burn"); done
if [ "${BENCH_OPENBLAS:-1}" = 1 ]; then
  if ! ldconfig -p | grep -q libopenblas; then
    apt-get install -y -q libopenblas-dev >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q libopenblas-dev >/dev/null; }
  fi
  # Same target directory: both feature sets stay cached, so switching back is a relink.
  cargo build --locked --bin autoprompt --features openblas
  cp "$bin" "$target/debug/autoprompt-openblas"
  cargo build --locked --bin autoprompt
  runs+=("$target/debug/autoprompt-openblas ndarray burn")
fi
out_dir=results/bench
mkdir -p "$out_dir" reports
threads=$(nproc)
iters="${BENCH_ITERS:-5}"
accumulation="${BENCH_ACCUMULATION:-10}"
eval_batches="${BENCH_EVAL_BATCHES:-$accumulation}"
candidates="${BENCH_CANDIDATES:-10 100}"
models="${BENCH_MODELS:-models/splade-tiny ${BENCH_BASE_MODEL:-}}"

python="${BENCH_PYTHON:-}"
if [ -z "$python" ]; then
  venv="$target/bench-venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch \
      || "$venv/bin/pip" install --quiet torch
    "$venv/bin/pip" install --quiet transformers safetensors
  fi
  python="$venv/bin/python"
fi

# Merges "{tag} {result}" lines into one JSON object.
merge='import sys,json; a,b=sys.stdin.read().split("} {",1); x=json.loads(a+"}"); x.update(json.loads("{"+b)); print(json.dumps(x))'

results="$out_dir/search.jsonl"
forward="$out_dir/forward.jsonl"
pruning="$out_dir/pruning.jsonl"
gradient="$out_dir/gradient.jsonl"
if [ "${BENCH_APPEND:-0}" != 1 ]; then : > "$results"; : > "$forward"; : > "$pruning"; : > "$gradient"; fi
touch "$results" "$forward" "$pruning" "$gradient"
seqs="${BENCH_SEQS:-64 128}"
for model in ${BENCH_SEARCH_MODELS-$models}; do
  for k in $candidates; do
    common=(--batch-size 32 --accumulation "$accumulation" --eval-batches "$eval_batches" --candidates "$k" --triggers 3 --iters "$iters" --warmup 1)
    tag="{\"model\": \"$(basename "$model")\", \"candidates\": $k, \"accumulation\": $accumulation}"
    # Interleaved: Rust, reference loop, same-algorithm PyTorch, in turn.
    for run in "${runs[@]}"; do
      read -r exe backend engine <<< "$run"
      r=$("$exe" -q bench search --model "$model" --backend "$backend" --engine "$engine" "${common[@]}")
      echo "$tag $r" | python3 -c "$merge" >> "$results"
    done
    [ "${BENCH_TORCH_SEARCH:-1}" = 1 ] || continue
    for mode in reference same-algorithm; do
      r=$("$python" benches/torch_search.py --model "$model" --data data/sst2/train.tsv --mode "$mode" --threads "$threads" "${common[@]}")
      echo "$tag $r" | python3 -c "$merge" >> "$results"
    done
  done
done

# Exact pruning: the same iteration with and without it, interleaved, under both metrics
# (accuracy selection is pruned; log-likelihood selection never is, so its pair shows the
# run-to-run spread).
for model in ${BENCH_PRUNING_MODELS-${BENCH_SEARCH_MODELS-$models}}; do
  common=(--batch-size 32 --accumulation "$accumulation" --eval-batches "$eval_batches" --candidates 10 --triggers 3 --iters "$iters" --warmup 1)
  tag="{\"model\": \"$(basename "$model")\", \"candidates\": 10, \"accumulation\": $accumulation}"
  for select_by in accuracy log-likelihood; do
    for prune in "" --no-prune; do
      r=$("$bin" -q bench search --model "$model" --backend ndarray --engine host --select-by "$select_by" $prune "${common[@]}")
      echo "$tag $r" | python3 -c "$merge" >> "$pruning"
    done
  done
done

for model in ${BENCH_FORWARD_MODELS-$models}; do
  for seq in $seqs; do
    tag="{\"model\": \"$(basename "$model")\"}"
    for run in "${runs[@]}"; do
      read -r exe backend engine <<< "$run"
      if ! r=$("$exe" -q bench forward --model "$model" --backend "$backend" --engine "$engine" --batch 32 --seq "$seq"); then
        # The host engine covers BERT's post-norm layers only (the CLI said why above); such a
        # model's rows are burn's.
        [ "$engine" = host ] && continue
        exit 1
      fi
      echo "$tag $r" | python3 -c "$merge" >> "$forward"
    done
    if [ -n "${BENCH_AVX2_BIN:-}" ]; then
      r=$("$BENCH_AVX2_BIN" -q bench forward --model "$model" --engine host --batch 32 --seq "$seq" \
        | python3 -c 'import sys,json; x=json.load(sys.stdin); x["implementation"]="rust-host-avx2"; print(json.dumps(x))')
      echo "$tag $r" | python3 -c "$merge" >> "$forward"
    fi
    r=$("$python" benches/torch_forward.py --model "$model" --batch 32 --seq "$seq" --threads "$threads")
    echo "$tag $r" | python3 -c "$merge" >> "$forward"
    if [ "${BENCH_GRADIENT:-1}" = 1 ]; then
      # The trigger-gradient pass: the host engine and PyTorch, in turn.
      if r=$("$bin" -q bench forward --model "$model" --engine host --gradient --batch 32 --seq "$seq"); then
        echo "$tag $r" | python3 -c "$merge" >> "$gradient"
      fi
      r=$("$python" benches/torch_forward.py --model "$model" --batch 32 --seq "$seq" --threads "$threads" --gradient)
      echo "$tag $r" | python3 -c "$merge" >> "$gradient"
    fi
  done
done
# PyTorch's 2048² sgemm on its own; the report's peak is the best of it and every
# implementation's own 2048² matmul in forward.jsonl.
sgemm=$("$python" -c 'import torch,time; torch.set_num_threads('"$threads"'); a=torch.randn(2048,2048); b=torch.randn(2048,2048); a@b; t=[]
for _ in range(5):
    s=time.perf_counter(); a@b; t.append(time.perf_counter()-s)
t.sort(); print(2*2048**3/t[2]/1e9)')

python3 scripts/bench_report.py "$results" "$forward" "$sgemm" "$pruning" "$gradient" > reports/bench.md
cat reports/bench.md
