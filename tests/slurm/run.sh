#!/usr/bin/env bash
# `just test`'s Slurm part: start a single-node Slurm, run the launcher tests against it,
# stop the daemons again. Skips (saying why) only where Slurm cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
tests/slurm/start.sh || status=$?
if [ "$status" = 3 ]; then
  echo "SKIPPED: Slurm launcher tests — Slurm cannot be installed on this machine (see above)"
  exit 0
elif [ "$status" != 0 ]; then
  echo "slurm: could not start a local cluster" >&2
  exit "$status"
fi
trap 'tests/slurm/stop.sh' EXIT
cargo test --locked --test slurm -- --ignored --test-threads 1
