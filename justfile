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

# Run an experiment (resumable), then print and write its report.
run FILE *ARGS: setup build
    {{bin}} run {{FILE}} {{ARGS}}
    {{bin}} report {{FILE}}

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
    {{bin}} run experiments/nightly.toml
    {{bin}} report experiments/nightly.toml
    {{bin}} compare experiments/nightly.toml {{ARGS}}

# Top-k predictions for a sentence with [MASK].
fill-mask *ARGS: setup build
    {{bin}} fill-mask {{ARGS}}

# The test suite (needs the embedded model; LAMA tests read ../shared/data or AUTOPROMPT_SHARED_DATA).
# The Slurm launcher tests start a local single-node Slurm (root + apt); where Slurm cannot be
# installed they are skipped with a printed reason.
test: setup
    cargo test --locked --workspace -- --test-threads 2
    tests/slurm/run.sh

# Only the Slurm launcher tests (part of `just test`).
test-slurm: setup
    tests/slurm/run.sh

# Check that the CUDA backend still compiles (no GPU needed).
check-cuda:
    cargo check --locked --features cuda --bin autoprompt

# Speed benchmarks (results in reports/bench.md).
bench: setup build
    {{bin}} --version
    scripts/bench.sh

# Formatting and lints.
lint:
    cargo fmt --all --check
    cargo clippy --locked --all-targets -- -D warnings
