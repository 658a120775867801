#!/usr/bin/env bash
# CI's fuzzing step: seeds the corpora, builds the three cargo-fuzz targets and runs each for
# FUZZ_SECONDS (default 60). Fails when a target crashes, hangs on an input or runs out of
# memory; the input is then in fuzz/artifacts/TARGET/.
#
# Installs what it needs: cargo-fuzz from crates.io, and a nightly toolchain through rustup.
# Where no nightly can be had (a machine with only the stable toolchain and no way to fetch
# another), it builds with the stable one and RUSTC_BOOTSTRAP=1, which cargo-fuzz supports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${FUZZ_SECONDS:-60}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  timeout 1200 cargo install cargo-fuzz --locked
fi

# Seeding builds `ember` with the ordinary toolchain, before RUSTC_BOOTSTRAP may be set below.
fuzz/seed.sh

cargo_fuzz=(cargo +nightly fuzz)
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! command -v rustup >/dev/null 2>&1 ||
    ! timeout 600 rustup toolchain install nightly --profile minimal; then
    echo "no nightly toolchain: building the fuzz targets with the stable one and RUSTC_BOOTSTRAP=1"
    cargo_fuzz=(cargo fuzz)
    export RUSTC_BOOTSTRAP=1
  fi
fi

# Built once for all targets, so the time limits below are spent fuzzing.
timeout 1800 "${cargo_fuzz[@]}" build

status=0
for target in parse load run; do
  dict=()
  [[ $target == load ]] || dict=(-dict=fuzz/basm.dict)
  log=fuzz/artifacts/$target.log
  mkdir -p "fuzz/artifacts/$target"
  echo "fuzzing $target for ${secs}s"
  # timeout is the safety net: libFuzzer stops itself after -max_total_time.
  rc=0
  timeout -k 30 $((secs + 300)) "${cargo_fuzz[@]}" run "$target" -- \
    -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1 || rc=$?
  if [[ $rc == 0 ]]; then
    grep -E '^(Done|stat::(new_units_added|peak_rss_mb))' "$log" || true
  else
    status=1
    echo "FUZZ FAILURE in target $target (exit $rc); the end of its log:"
    tail -n 60 "$log"
    echo "reproducers: $(ls "fuzz/artifacts/$target")"
    echo "rerun one with: cargo +nightly fuzz run $target fuzz/artifacts/$target/FILE"
  fi
done
exit $status
