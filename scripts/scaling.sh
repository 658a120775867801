#!/usr/bin/env bash
# scaling.sh — how Ember's schedulers scale on this machine, measured side by side with the
# machine's own parallel capacity (issue 10). Best of RUNS (default 5) wall times for each:
#
#   C        = time(one `--schedulers 1` process running K rings)
#              / time(two `--schedulers 1` processes running K/2 rings each, together)
#   rings    = time(K rings, --schedulers 1) / time(K rings, --schedulers 2)
#   skynet   = time(skynet 1M, --schedulers 1) / time(skynet 1M, --schedulers 2)
#
# and the targets 1 + 0.85 (C - 1) for rings, 1 + 0.7 (C - 1) for skynet. One scheduler keeps
# the exact FIFO order of spec §5; N schedulers run work first (the newest process first), which
# also changes how much memory and cache a program uses. To tell the policy's share from the
# parallelism's, the same two-scheduler runs are also timed confined to one CPU (taskset):
#
#   rings/skynet on 2 CPUs vs 1 CPU = time(2 schedulers, one CPU) / time(2 schedulers, two CPUs)
#
# Usage: scripts/scaling.sh [RUNS] [EMBER]      (EMBER defaults to ./target/release/ember)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
E=${2:-./target/release/ember}
K=100 N=1000 M=20
[ -x "$E" ] || cargo build --release -q

ms() { # wall milliseconds of a command
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
best() { sort -n | head -1; }

declare -A T
for _ in $(seq "$RUNS"); do
  T[one]+="$(ms "$E" run bench/rings.basm $K $N $M --schedulers 1)"$'\n'
  t0=$(date +%s%N)
  "$E" run bench/rings.basm $((K / 2)) $N $M --schedulers 1 >/dev/null &
  "$E" run bench/rings.basm $((K / 2)) $N $M --schedulers 1 >/dev/null
  wait
  t1=$(date +%s%N)
  T[halves]+="$(( (t1 - t0) / 1000000 ))"$'\n'
  T[rings2]+="$(ms "$E" run bench/rings.basm $K $N $M --schedulers 2)"$'\n'
  T[sky1]+="$(ms "$E" run bench/skynet.basm 1000000 --schedulers 1)"$'\n'
  T[sky2]+="$(ms "$E" run bench/skynet.basm 1000000 --schedulers 2)"$'\n'
  if command -v taskset >/dev/null; then
    T[rings2one]+="$(ms taskset -c 0 "$E" run bench/rings.basm $K $N $M --schedulers 2)"$'\n'
    T[sky2one]+="$(ms taskset -c 0 "$E" run bench/skynet.basm 1000000 --schedulers 2)"$'\n'
  fi
done
one=$(printf '%s' "${T[one]}" | best); halves=$(printf '%s' "${T[halves]}" | best)
rings2=$(printf '%s' "${T[rings2]}" | best)
sky1=$(printf '%s' "${T[sky1]}" | best); sky2=$(printf '%s' "${T[sky2]}" | best)
awk -v one="$one" -v halves="$halves" -v rings2="$rings2" -v sky1="$sky1" -v sky2="$sky2" 'BEGIN {
  c = one / halves
  printf "parallel capacity C: %.2f  (rings %dx%dx%d: %d ms in one process, %d ms as two halves)\n", c, '"$K"', '"$N"', '"$M"', one, halves
  printf "rings  1 scheduler %5d ms, 2 schedulers %5d ms: speedup %.2f (target %.2f)\n", one, rings2, one / rings2, 1 + 0.85 * (c - 1)
  printf "skynet 1 scheduler %5d ms, 2 schedulers %5d ms: speedup %.2f (target %.2f)\n", sky1, sky2, sky1 / sky2, 1 + 0.7 * (c - 1)
}'
if [ -n "${T[rings2one]:-}" ]; then
  r1=$(printf '%s' "${T[rings2one]}" | best); s1=$(printf '%s' "${T[sky2one]}" | best)
  awk -v r1="$r1" -v r2="$rings2" -v s1="$s1" -v s2="$sky2" 'BEGIN {
    printf "2 schedulers on 1 CPU: rings %d ms, skynet %d ms; on 2 CPUs: speedup %.2f and %.2f\n", r1, s1, r1 / r2, s1 / s2
  }'
fi
