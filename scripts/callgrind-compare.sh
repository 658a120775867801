#!/usr/bin/env bash
# callgrind-compare.sh — instructions executed by two ember binaries on each bench/ workload
# with one scheduler (callgrind's count: the same on a noisy machine as on a quiet one). Sizes
# are smaller than the benches' own so that each run takes seconds under valgrind.
#
# Usage: scripts/callgrind-compare.sh OLD_EMBER NEW_EMBER [WORKLOAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
shift 2
declare -A ARGS=(
  [count]="2000000" [ring]="1000 100" [spawn]="100000" [selrecv]="10000 2000"
  [crash]="10000" [server]="10 10000" [send]="100000 2000 100" [gc]="10000 1000000"
  [refcall]="1000 20000" [rings]="10 1000 20" [skynet]="100000"
)
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(count ring spawn selrecv crash server send gc refcall rings skynet)
count() {
  # (Builds from before `--schedulers` run one scheduler anyway.)
  local one=()
  "$1" run --help | grep -q -- --schedulers && one=(--schedulers 1)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" run "bench/$2.basm" ${ARGS[$2]} \
    "${one[@]}" 2>&1 >/dev/null | awk '/Collected/ {print $4}'
}
printf '%-8s %14s %14s %8s\n' workload old new new/old
for w in "${WORKLOADS[@]}"; do
  a=$(count "$A" "$w"); b=$(count "$B" "$w")
  printf '%-8s %14s %14s %8.4f\n' "$w" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print b / a}')"
done
