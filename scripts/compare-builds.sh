#!/usr/bin/env bash
# compare-builds.sh — the bench/ workloads on two ember binaries with one scheduler, runs
# interleaved (A B A B ...),
# median of N runs each of the program's own `ms` figures. For "is this change slower?" on a
# noisy machine: both binaries see the same noise.
#
# Usage: scripts/compare-builds.sh OLD_EMBER NEW_EMBER [RUNS] [WORKLOAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 RUNS=${3:-5}
shift $(( $# >= 3 ? 3 : $# ))
declare -A ARGS=(
  [count]="100000000" [ring]="10000 100" [spawn]="1000000" [selrecv]="10000 10000"
  [crash]="100000" [server]="100 1000" [send]="1000000 20000 1000" [gc]="100000 10000000"
)
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(count ring spawn selrecv crash server send gc)
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '%-8s %-10s %12s %12s %8s\n' workload figure old new new/old
for w in "${WORKLOADS[@]}"; do
  keys=$("$A" run "bench/$w.basm" ${ARGS[$w]} | grep -o '[a-z_]*ms=' | tr -d '=' || true)
  declare -A got=()
  for k in $keys; do got[a_$k]=""; got[b_$k]=""; done
  for _ in $(seq "$RUNS"); do
    for side in a b; do
      bin=$A; [ "$side" = b ] && bin=$B
      # One scheduler (builds from before `--schedulers` have only that).
      one=(); "$bin" run --help | grep -q -- --schedulers && one=(--schedulers 1)
      line=$("$bin" run "bench/$w.basm" ${ARGS[$w]} "${one[@]}")
      for k in $keys; do
        v=$(grep -oE "(^| )$k=[0-9.]*" <<<"$line" | head -1 | cut -d= -f2)
        got[${side}_$k]+="$v"$'\n'
      done
    done
  done
  for k in $keys; do
    ma=$(printf '%s' "${got[a_$k]}" | median); mb=$(printf '%s' "${got[b_$k]}" | median)
    printf '%-8s %-10s %12s %12s %8.3f\n' "$w" "$k" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {print (a > 0) ? b / a : 0}')"
  done
  unset got
done
