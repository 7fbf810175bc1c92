# autoprompt — common tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

# One target directory shared by build, test and run (set CARGO_TARGET_DIR to reuse another).
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")
bin := CARGO_TARGET_DIR / "debug" / "autoprompt"

default:
    @just --list

# Fetch what the default experiments need (idempotent): the embedded SPLADE-tiny model.
setup:
    scripts/fetch_splade_tiny.sh

# Build the CLI.
build:
    cargo build --locked --bin autoprompt

# Run an experiment (resumable), then print and write its report. The report is built even
# when some cells failed (it lists them); the exit status is then the run's.
run FILE *ARGS: setup build
    status=0; {{bin}} run {{FILE}} {{ARGS}} || status=$?; if [ "$status" -le 1 ]; then {{bin}} report {{FILE}}; fi; exit "$status"

# Print the cells of an experiment.
plan FILE *ARGS: build
    {{bin}} plan {{FILE}} {{ARGS}}

# Aggregate an experiment's records into tables and reports/<name>.md.
report FILE *ARGS: build
    {{bin}} report {{FILE}} {{ARGS}}

# The nightly regression sweep: run, summarise, compare with results/baselines/nightly/
# (writes reports/nightly.md; exits non-zero naming any regression). Pass
# `--update-baseline --reason "..."` to rewrite the baseline deliberately.
nightly *ARGS: setup build
    status=0; {{bin}} run experiments/nightly.toml || status=$?; if [ "$status" -gt 1 ]; then exit "$status"; fi; {{bin}} report experiments/nightly.toml; {{bin}} compare experiments/nightly.toml {{ARGS}}; exit "$status"

# Rebuild the paper's tables (experiments/paper/) and write reports/paper.md: the paper's
# numbers, ours, and the model each came from. ARGS go to every run, e.g.
# `just reproduce --set model.source=splade-tiny`; REPRODUCE_SCALE=small adds a per-table
# budget that fits about an hour on 2 cores (see scripts/reproduce.sh).
[doc("Rebuild the paper's tables into reports/paper.md; ARGS go to every run")]
[positional-arguments]
reproduce *ARGS: setup build
    scripts/reproduce.sh "$@"

# The paper tables from whatever records exist (no runs).
paper-report:
    {{bin}} paper-report experiments/paper --out reports/paper.md

# Top-k predictions for a sentence with [MASK].
fill-mask *ARGS: setup build
    {{bin}} fill-mask {{ARGS}}

# The test suite (needs the embedded model; LAMA tests read ../shared/data or AUTOPROMPT_SHARED_DATA).
# The Slurm launcher tests start a local single-node Slurm (root + apt); where Slurm cannot be
# installed they are skipped with a printed reason.
test: setup
    cargo test --locked --workspace -- --test-threads 2
    tests/slurm/run.sh

# Property-based tests at length: 20,000 generated inputs per property (`just test` runs 48).
fuzz CASES="20000":
    FUZZ_CASES={{CASES}} cargo test --locked --test fuzz -- --nocapture

# Run the fault and fuzz tests and write reports/reliability.md from their output.
reliability: setup build
    python3 scripts/reliability.py

# Only the Slurm launcher tests (part of `just test`).
test-slurm: setup
    tests/slurm/run.sh

# Check that the CUDA backend still compiles (no GPU needed).
check-cuda:
    cargo check --locked --features cuda --bin autoprompt

# On a lent GPU, from a binary built beforehand (`cargo build --locked --features cuda --bin autoprompt`):
# GPU against CPU numerics on every family's fixture, bench forward / search, PyTorch CUDA beside
# it; outputs under gpu-check/ (GPU_CHECK_BACKEND=ndarray: a dry run on the CPU).
gpu-check:
    scripts/gpu_check.sh

# Speed benchmarks (results in reports/bench.md).
bench: setup build
    {{bin}} --version
    scripts/bench.sh

# BASE / MODERN: models from scripts/make_random_bert.py --size base / modernbert-base; AVX2_BIN:
# an optional binary built without gemm's x86-v4 feature (scripts/bench_verdict.sh; ~30 min on 2 cores).
# Every research-scale speed target with its verdict (reports/bench.md).
bench-verdict BASE MODERN AVX2_BIN="": setup build
    scripts/bench_verdict.sh {{BASE}} {{MODERN}} {{AVX2_BIN}}

# Formatting and lints.
lint:
    cargo fmt --all --check
    cargo clippy --locked --all-targets -- -D warnings
