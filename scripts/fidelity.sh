#!/usr/bin/env bash
# Fidelity of the trigger search: this project's search and a faithful PyTorch transcription of
# the paper's loop (benches/reference_search.py), same model, data, template, label words, k,
# accumulation, batch size and iterations, 3 seeds each. Writes reports/fidelity.md.
#
# Data: SST-2 train rows 1-2,000 (training), rows 2,001-2,200 (dev, prompt selection), GLUE's
# SST-2 dev (evaluation), written under $FIDELITY_DIR. Model: SPLADE-tiny.
#
# Environment:
#   FIDELITY_PYTHON  python with torch + transformers (required; tests/parity/requirements.txt)
#   FIDELITY_ITERS   search iterations (default 50)
#   FIDELITY_SEEDS   default "0 1 2"
#   FIDELITY_DIR     working directory (default results/fidelity)
#   FIDELITY_APPEND  1: keep earlier reference runs and records in FIDELITY_DIR (add seeds)
set -euo pipefail
cd "$(dirname "$0")/.."

py="${FIDELITY_PYTHON:?set FIDELITY_PYTHON to a python with torch and transformers}"
iters="${FIDELITY_ITERS:-50}"
seeds="${FIDELITY_SEEDS:-0 1 2}"
dir="${FIDELITY_DIR:-results/fidelity}"
bin="${CARGO_TARGET_DIR:-target}/debug/autoprompt"
mkdir -p "$dir/data"

head -n 2001 data/sst2/train.tsv >"$dir/data/train.tsv"
{ head -n 1 data/sst2/train.tsv; sed -n '2002,2201p' data/sst2/train.tsv; } >"$dir/data/dev.tsv"
cp data/sst2/dev.tsv "$dir/data/test.tsv"

seed_list=$(echo "$seeds" | tr ' ' ',')
cat >"$dir/fidelity.toml" <<TOML
name = "fidelity"
description = "This project's trigger search beside the reference transcription (scripts/fidelity.sh)."
results_dir = "$dir/results"

[task]
kind = "classification"
name = "sst2_2000"
train = "$dir/data/train.tsv"
dev = "$dir/data/dev.tsv"
test = "$dir/data/test.tsv"
train_size = 2000
dev_size = 200

[model]
source = "splade-tiny"

[method]
kind = "autoprompt"
template = "[CLS] {sentence} [T] [T] [T] [P] . [SEP]"
labels = { "0" = ["terrible"], "1" = ["great"] }
search = { iters = $iters, batch_size = 32, accumulation_steps = 10, num_candidates = 10 }

[grid]
seeds = [$seed_list]
TOML

"$bin" run "$dir/fidelity.toml"

[ "${FIDELITY_APPEND:-0}" = 1 ] || : >"$dir/reference.jsonl"
for seed in $seeds; do
  "$py" benches/reference_search.py --model models/splade-tiny \
    --train "$dir/data/train.tsv" --dev "$dir/data/dev.tsv" --test "$dir/data/test.tsv" \
    --iters "$iters" --bsz 32 --accumulation-steps 10 --num-cand 10 --seed "$seed" \
    2> >(grep -v -e UserWarning -e 'loss.backward()' >&2) >>"$dir/reference.jsonl"
done

python3 scripts/fidelity_report.py --ours "$dir/results/fidelity/cells" \
  --reference "$dir/reference.jsonl" --iters "$iters" --out reports/fidelity.md
echo "wrote reports/fidelity.md"
