#!/usr/bin/env bash
# `just reproduce [ARGS]`: runs every experiment in experiments/paper/ (the paper's tables)
# with ARGS passed to each `autoprompt run`, then writes reports/paper.md (paper numbers
# from reports/paper/*.toml next to ours, with the model each number came from).
#
#   just reproduce                                   # the paper's models, the paper's settings
#   just reproduce --set model.source=splade-tiny    # same settings, the embedded model
#   REPRODUCE_SCALE=small just reproduce --set model.source=splade-tiny
#
# REPRODUCE_SCALE=small adds the per-table budget below (about an hour on 2 CPU cores with
# the embedded model): fewer training examples and search iterations, LAMA with the
# 5-trigger template only, and relation extraction on the relations whose evidence
# sentences are in ../shared/data/lama (28 of the paper's 39). Every number in the report
# says which budget made it (the settings column comes from the cell records).
# A table whose experiment fails is reported as not run; the exit status is then 1.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${AUTOPROMPT_BIN:-${CARGO_TARGET_DIR:-target}/debug/autoprompt}"

# The small budget of each table (REPRODUCE_SCALE=small).
small_args() {
  case "$1" in
    table1_sst2) extra=(--set task.train_size=1000 --set task.dev_size=200 --set method.search.iters=10) ;;
    table2_sick_e) extra=(--set task.train_size=300 --set task.dev_size=100 --set method.search.iters=10) ;;
    table4_lama) extra=(--set task.test_size=300 --set method.search.iters=10
      --set "method.template=[CLS] {sub_label} [T] [T] [T] [T] [T] [P] . [SEP]") ;;
    table5_relation_extraction) extra=(--set task.test_size=200 --set method.search.iters=5
      --set 'task.relation=["P101","P103","P106","P108","P127","P1303","P136","P138","P140","P1412","P159","P176","P178","P19","P20","P264","P27","P31","P364","P39","P407","P413","P449","P463","P495","P740","P937"]') ;;
    *) extra=() ;;
  esac
}

status=0
for file in experiments/paper/*.toml; do
  table=$(basename "$file" .toml)
  extra=()
  if [ "${REPRODUCE_SCALE:-paper}" = small ]; then small_args "$table"; fi
  echo "== $table"
  if ! "$bin" run "$file" "$@" "${extra[@]}"; then
    echo "reproduce: $table did not finish; its rows are reported as missing" >&2
    status=1
  fi
done
"$bin" paper-report experiments/paper --out reports/paper.md || status=1
exit $status
