#!/usr/bin/env bash
# `just bench-verdict BASE MODERN [AVX2_BIN]`: reports/bench.md with a verdict on every target
# of the research-scale benchmark, in three invocations of scripts/bench.sh (each later one
# appending to the first's records):
#   1. the faithful SPLADE-tiny iteration on every implementation, exact pruning on and off,
#      and the forward and trigger-gradient rows of SPLADE-tiny, BASE and MODERN at 32 × 64
#      and 32 × 128 beside PyTorch (plus AVX2_BIN's host forward rows when given: a binary
#      built without gemm's `x86-v4` feature, the kernels an AVX2-only machine runs);
#   2. the BERT-base-sized iteration with accumulation and evaluation batches scaled to
#      BENCH_BASE_ACCUMULATION (default 2) on every side alike, the PyTorch loops included;
#   3. the full faithful BERT-base-sized iteration (accumulation 10), Rust only.
# BASE / MODERN: models from scripts/make_random_bert.py --size base / --size modernbert-base.
# BENCH_PYTHON as for scripts/bench.sh. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?usage: bench_verdict.sh BERT_BASE_DIR MODERNBERT_BASE_DIR [AVX2_BIN]}"
modern="${2:?usage: bench_verdict.sh BERT_BASE_DIR MODERNBERT_BASE_DIR [AVX2_BIN]}"
avx2="${3:-}"
scaled="${BENCH_BASE_ACCUMULATION:-2}"
export BENCH_OPENBLAS="${BENCH_OPENBLAS:-0}"
export BENCH_NOTE="${BENCH_NOTE:-Written by \`scripts/bench_verdict.sh\` (\`just bench-verdict\`): three invocations of \`scripts/bench.sh\`, each later one appending to the records: the SPLADE-tiny iteration, pruning, forward and gradient rows; the BERT-base-sized iteration with accumulation and evaluation batches scaled to $scaled on every side alike; the full faithful BERT-base-sized iteration, Rust only.}"

BENCH_CANDIDATES=10 BENCH_ITERS=3 BENCH_MODELS="models/splade-tiny $base $modern" \
  BENCH_SEARCH_MODELS=models/splade-tiny BENCH_AVX2_BIN="$avx2" scripts/bench.sh >/dev/null
BENCH_APPEND=1 BENCH_BACKENDS="" BENCH_CANDIDATES=10 BENCH_ITERS=1 BENCH_ACCUMULATION="$scaled" \
  BENCH_SEARCH_MODELS="$base" BENCH_PRUNING_MODELS="$base" BENCH_FORWARD_MODELS= scripts/bench.sh >/dev/null
BENCH_APPEND=1 BENCH_BACKENDS="" BENCH_TORCH_SEARCH=0 BENCH_CANDIDATES=10 BENCH_ITERS=1 BENCH_ACCUMULATION=10 \
  BENCH_SEARCH_MODELS="$base" BENCH_PRUNING_MODELS= BENCH_FORWARD_MODELS= scripts/bench.sh
