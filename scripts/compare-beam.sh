#!/usr/bin/env bash
# compare-beam.sh — run Ember's benchmark workloads (bench/*.basm) and their Erlang/OTP twins
# (bench/erlang/*.erl, with `erl +S 1` and with `erl +S 2`: the faster counts) and a Lua 5.4
# twin of `count` (bench/lua/count.lua) once each, on this machine, in one go, and print a table
# of the figures with Ember/Erlang ratios.
#
# Usage:
#   scripts/compare-beam.sh [--quick] [--no-build] [WORKLOAD...]
#
#   WORKLOAD    any of: count ring spawn selrecv crash send gc server   (default: all of them)
#   --quick     every size divided by 10 (a smoke run; the figures get noisier)
#   --no-build  use ./target/release/ember as it is instead of running `cargo build --release`
#   --erl-s1    run `erl +S 1` only (by default each twin runs with `+S 1` and `+S 2`, and the
#               faster of the two is Erlang's figure: Erlang's best on this machine)
#
# Sizes (full run):
#   count   100000000 iterations          (add, sub, jgt per iteration)
#   ring    10000 processes x 100 laps     (1M hops)
#   spawn   1000000 processes
#   selrecv 10000 junk, 10000 wanted
#   crash   100000 linked children
#   server  100 clients x 1000 calls through the stdlib server (gen_server in Erlang)
#   send    1000000 small round trips, 20000 round trips of a 1000-element list
#   gc      100000 live list cells, 10000000 iterations of garbage
#
# What is measured: every program times its own work and prints one line of `key=value` figures
# (Ember with `now`, which has millisecond resolution, so the sizes are big enough for that to
# be a small error; the Erlang twins in microseconds). The table derives per-unit costs from
# those times. `wall` columns are the whole command timed from outside with `date +%s%N`
# (VM startup, loading the program and teardown included). Ember's bytes per process
# are (peak RSS of `spawn N` - peak RSS of `spawn 1`) / N, from /usr/bin/time when installed;
# Erlang's are the growth of erlang:memory(processes) per process. GC figures for Ember come from
# `ember prof bench/gc.basm` (runs and time in GC; the profiler slows the interpreter, not the
# collector).
#
# ratio = Ember cost / Erlang cost for the same work (time per unit, or bytes): 1.00 is parity,
# above 1 Ember is slower or bigger. Machines are noisy, and other jobs on a 2-core machine
# change absolute figures a lot: compare the ratios of one run, not figures across runs.
#
# Needs: cargo; optionally erl/erlc (apt-get install -y erlang-base), lua5.4, /usr/bin/time.
# Exit status: 0 when every Ember run succeeded, 1 otherwise.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
BUILD=1
ERL_S2=1
WORKLOADS=()
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --erl-s1) ERL_S2=0 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        count|ring|spawn|selrecv|crash|send|gc|server) WORKLOADS+=("$a") ;;
        *) echo "compare-beam.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done
[ ${#WORKLOADS[@]} -eq 0 ] && WORKLOADS=(count ring spawn selrecv crash send gc server)

q() { # a size, divided by 10 under --quick
    if [ "$QUICK" = 1 ]; then echo $(( $1 / 10 > 0 ? $1 / 10 : 1 )); else echo "$1"; fi
}
COUNT_N=$(q 100000000)
RING_N=$(q 10000); RING_M=100
SPAWN_N=$(q 1000000)
SEL_K=$(q 10000); SEL_R=$(q 10000)
CRASH_N=$(q 100000)
SEND_S=$(q 1000000); SEND_L=$(q 20000); SEND_LEN=1000
GC_LIVE=100000; GC_ITERS=$(q 10000000)
SERVER_C=100; SERVER_N=$(q 1000)

EMBER=./target/release/ember
if [ "$BUILD" = 1 ]; then
    echo "== cargo build --release" >&2
    cargo build --release >&2 || { echo "compare-beam.sh: build failed" >&2; exit 1; }
fi
[ -x "$EMBER" ] || { echo "compare-beam.sh: $EMBER not found (build it first)" >&2; exit 1; }

HAVE_ERL=0
if command -v erl >/dev/null && command -v erlc >/dev/null; then
    HAVE_ERL=1
    BEAMDIR=$(mktemp -d)
    erlc -o "$BEAMDIR" bench/erlang/*.erl || { echo "compare-beam.sh: erlc failed" >&2; HAVE_ERL=0; }
else
    echo "compare-beam.sh: erl not found: Ember figures only (apt-get install -y erlang-base)" >&2
fi
HAVE_LUA=0; command -v lua5.4 >/dev/null && HAVE_LUA=1
HAVE_TIME=0; [ -x /usr/bin/time ] && HAVE_TIME=1
TMP=$(mktemp)
trap 'rm -rf "$TMP" ${BEAMDIR:+"$BEAMDIR"}' EXIT
FAILED=0

# field NAME LINE: the value of ` NAME=` in a `key=value` line (empty if absent).
field() { printf ' %s\n' "$2" | grep -o " $1=[^ ]*" | head -n1 | cut -d= -f2; }

# run_timed OUTVAR WALLVAR CMD...: runs CMD, keeps its last stdout line and its wall time (s).
# Also sets RSS_KB (peak RSS, when /usr/bin/time exists) and RC.
run_timed() {
    local __out=$1 __wall=$2; shift 2
    echo "== $*" >&2
    local t0 t1 line
    t0=$(date +%s%N)
    if [ "$HAVE_TIME" = 1 ]; then
        line=$(/usr/bin/time -f %M -o "$TMP" "$@" | tail -n1); RC=${PIPESTATUS[0]}
        RSS_KB=$(tail -n1 "$TMP")
    else
        line=$("$@" | tail -n1); RC=${PIPESTATUS[0]}
        RSS_KB=
    fi
    t1=$(date +%s%N)
    echo "   $line" >&2
    printf -v "$__out" '%s' "$line"
    printf -v "$__wall" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
}

ember() { # ember WORKLOAD ARGS... -> E_LINE E_WALL   (one scheduler, as `erl +S 1`)
    run_timed E_LINE E_WALL "$EMBER" run "bench/$1.basm" "${@:2}" --schedulers 1
    if [ "$RC" != 0 ]; then
        echo "compare-beam.sh: ember run bench/$1.basm exited $RC" >&2
        FAILED=1
    fi
}
erlang() { # erlang MODULE ARGS... -> R_LINE R_WALL (+S 1), R_LINE2 R_WALL2 (+S 2); empty without erl
    R_LINE=; R_WALL=; R_LINE2=; R_WALL2=
    [ "$HAVE_ERL" = 1 ] || return 0
    run_timed R_LINE R_WALL erl +S 1 +P 2000000 -noshell -pa "$BEAMDIR" -run "$1" main "${@:2}"
    [ "$ERL_S2" = 1 ] || return 0
    run_timed R_LINE2 R_WALL2 erl +S 2 +P 2000000 -noshell -pa "$BEAMDIR" -run "$1" main "${@:2}"
}
# erl_field NAME: the smaller of field NAME in the +S 1 and +S 2 lines (Erlang's best time).
erl_field() {
    local a b
    a=$(field "$1" "$R_LINE"); b=$(field "$1" "$R_LINE2")
    if [ -z "$b" ]; then echo "$a"; elif [ -z "$a" ]; then echo "$b";
    else awk -v a="$a" -v b="$b" 'BEGIN { print (a + 0 <= b + 0) ? a : b }'; fi
}

# Table rows: workload | size | figure | Ember | Erlang | ratio | Ember wall | Erlang wall
ROWS=()
NOTES=()
# row NAME SIZE UNIT EMBER_VALUE OTHER_VALUE COST_RATIO E_WALL R_WALL
row() { ROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$@")"); }
# per UNITS MS_OR_EMPTY SCALE: per-unit cost; MS is scaled to ns by SCALE (1e6 for ms, 1e3 for us).
per() { [ -n "$2" ] && awk -v n="$1" -v t="$2" -v s="$3" 'BEGIN { if (n > 0) printf "%.2f", t * s / n }'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
fmt() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else printf "%.2f", x }'; }

for w in "${WORKLOADS[@]}"; do
    case "$w" in
    count)
        ember count "$COUNT_N"
        e=$(per "$COUNT_N" "$(field ms "$E_LINE")" 1e6)
        erlang count "$COUNT_N"
        r=$(per "$COUNT_N" "$(erl_field us)" 1e3)
        row count "$COUNT_N" "ns/iteration" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        if [ "$HAVE_LUA" = 1 ]; then
            run_timed L_LINE L_WALL lua5.4 bench/lua/count.lua "$COUNT_N"
            l=$(per "$COUNT_N" "$(field us "$L_LINE")" 1e3)
            row "count vs Lua 5.4" "$COUNT_N" "ns/iteration" "$(fmt "$e")" "$(fmt "$l") (Lua)" "$(ratio "$e" "$l")" "$E_WALL" "$L_WALL"
        fi
        ;;
    ring)
        ember ring "$RING_N" "$RING_M"
        hops=$((RING_N * RING_M))
        e=$(per "$hops" "$(field ms "$E_LINE")" 1e6)
        erlang ring "$RING_N" "$RING_M"
        r=$(per "$hops" "$(erl_field us)" 1e3)
        row ring "${RING_N}x${RING_M}" "ns/hop" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        hps() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { if (x > 0) printf "%.2fM", 1e3 / x }'; }
        row ring "${RING_N}x${RING_M}" "hops/s" "$(hps "$e")" "$(hps "$r")" "$(ratio "$e" "$r")" "" ""
        ;;
    spawn)
        ember spawn 1
        base_kb=$RSS_KB
        ember spawn "$SPAWN_N"
        e=$(per "$SPAWN_N" "$(field ms "$E_LINE")" 1e6)
        eb=
        if [ -n "$RSS_KB" ] && [ -n "$base_kb" ]; then
            eb=$(awk -v a="$RSS_KB" -v b="$base_kb" -v n="$SPAWN_N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
        fi
        erlang spawn "$SPAWN_N"
        r=$(per "$SPAWN_N" "$(erl_field us)" 1e3)
        rb=$(field bytes_per_proc "$R_LINE")
        row spawn "$SPAWN_N" "ns/spawn" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        row spawn "$SPAWN_N" "bytes/process" "$eb" "$rb" "$(ratio "$eb" "$rb")" "" ""
        ;;
    selrecv)
        ember selrecv "$SEL_K" "$SEL_R"
        e=$(per "$SEL_R" "$(field ms "$E_LINE")" 1e6)
        erlang selrecv "$SEL_K" "$SEL_R"
        r=$(per "$SEL_R" "$(erl_field us)" 1e3)
        row selrecv "$SEL_K/$SEL_R" "ns/receive" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        ;;
    server)
        ember server "$SERVER_C" "$SERVER_N"
        e=$(per $((SERVER_C * SERVER_N)) "$(field ms "$E_LINE")" 1e6)
        erlang server "$SERVER_C" "$SERVER_N"
        r=$(per $((SERVER_C * SERVER_N)) "$(erl_field us)" 1e3)
        row "server calls" "${SERVER_C} clients x $SERVER_N" "ns/call" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        ;;
    crash)
        ember crash "$CRASH_N"
        e=$(per "$CRASH_N" "$(field ms "$E_LINE")" 1e6)
        erlang crash "$CRASH_N"
        r=$(per "$CRASH_N" "$(erl_field us)" 1e3)
        row crash "$CRASH_N" "ns/crash" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        ;;
    send)
        ember send "$SEND_S" "$SEND_L" "$SEND_LEN"
        es=$(per $((2 * SEND_S)) "$(field small_ms "$E_LINE")" 1e6)
        el=$(field large_ms "$E_LINE")
        erlang send "$SEND_S" "$SEND_L" "$SEND_LEN"
        rs=$(per $((2 * SEND_S)) "$(erl_field small_us)" 1e3)
        rl=$(erl_field large_us)
        bytes=$((2 * SEND_L * SEND_LEN * 16))
        # MB/s = bytes / (ms * 1e3) = bytes / us; cost ratio = Erlang MB/s / Ember MB/s.
        em=$([ -n "$el" ] && awk -v b="$bytes" -v t="$el" 'BEGIN { if (t > 0) printf "%.0f", b / (t * 1e3) }')
        rm_=$([ -n "$rl" ] && awk -v b="$bytes" -v t="$rl" 'BEGIN { if (t > 0) printf "%.0f", b / t }')
        row "send small" "$SEND_S trips" "ns/message" "$(fmt "$es")" "$(fmt "$rs")" "$(ratio "$es" "$rs")" "$E_WALL" "$R_WALL"
        row "send large" "$SEND_L x $SEND_LEN" "MB/s copied" "$em" "$rm_" "$(ratio "$rm_" "$em")" "" ""
        ;;
    gc)
        ember gc "$GC_LIVE" "$GC_ITERS"
        e=$(per "$GC_ITERS" "$(field ms "$E_LINE")" 1e6)
        erlang gc "$GC_LIVE" "$GC_ITERS"
        r=$(per "$GC_ITERS" "$(erl_field us)" 1e3)
        row gc "$GC_LIVE live/$GC_ITERS" "ns/iteration" "$(fmt "$e")" "$(fmt "$r")" "$(ratio "$e" "$r")" "$E_WALL" "$R_WALL"
        echo "== $EMBER prof bench/gc.basm $GC_LIVE $GC_ITERS" >&2
        prof=$("$EMBER" prof bench/gc.basm "$GC_LIVE" "$GC_ITERS" 2>&1 >/dev/null)
        runs=$(printf '%s\n' "$prof" | awk '/GC runs/ { print $3 }')
        gcms=$(printf '%s\n' "$prof" | awk '/time in GC/ { print $4 }')
        if [ -n "$runs" ] && [ -n "$gcms" ]; then
            NOTES+=("$(awk -v n="$runs" -v t="$gcms" -v live="$GC_LIVE" 'BEGIN {
                mb = live * 16 / 1e6; p = (n > 0) ? t / n : 0
                printf "gc (Ember, from ember prof): %d collections, %.1f ms in GC, %.3f ms per pause, %.3f ms pause per MB live (%.1f MB live)", n, t, p, (mb > 0 ? p / mb : 0), mb }')")
        fi
        [ -n "$R_LINE" ] && NOTES+=("gc (Erlang): $(field gcs "$R_LINE") garbage collections in the VM during the loop (generational: once the live list is promoted, minor collections skip it)")
        ;;
    esac
done

echo
echo "Ember vs Erlang/OTP $( [ "$HAVE_ERL" = 1 ] && erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' ) (best of +S 1 and +S 2), one run, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = Ember cost / Erlang cost (time per unit, or bytes): above 1, Ember is slower or bigger"
echo
ROWFMT='| %-16s | %-20s | %-13s | %12s | %14s | %7s | %10s | %11s |\n'
printf "$ROWFMT" workload size figure Ember Erlang ratio "Ember wall" "Erlang wall"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------------ ---------------------- --------------- -------------: ---------------: --------: -----------: ------------:
for r in "${ROWS[@]}"; do
    IFS=$'\t' read -r c1 c2 c3 c4 c5 c6 c7 c8 <<<"$r"
    [ -n "$c7" ] && c7="${c7} s"
    [ -n "$c8" ] && c8="${c8} s"
    printf "$ROWFMT" "$c1" "$c2" "$c3" "${c4:--}" "${c5:--}" "${c6:--}" "$c7" "$c8"
done
for n in "${NOTES[@]}"; do echo; echo "$n"; done
exit "$FAILED"
