#!/usr/bin/env bash
# Runs the VM's unit tests (the heap, the collector, copy-on-send, mailboxes) and a set of
# example programs under valgrind's memcheck; any invalid read/write or leak-free misuse fails.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
cargo test -p ember-vm --lib --no-run --quiet 2>/dev/null
vm_tests=$(ls -t target/debug/deps/ember_vm-* | grep -v '\.d$' | head -n 1)
VG=(valgrind --quiet --error-exitcode=99 --leak-check=no)
echo "valgrind: $vm_tests"
"${VG[@]}" "$vm_tests" --test-threads=1 -q
# Hot code loading: a purge frees a version's literal area after copying its literals out of
# every heap; a term left pointing into it would be an invalid read here.
cargo test --test hotload --no-run --quiet 2>/dev/null
hotload_tests=$(ls -t target/debug/deps/hotload-* | grep -v '\.d$' | head -n 1)
echo "valgrind: $hotload_tests"
"${VG[@]}" "$hotload_tests" --test-threads=1 -q --skip watch --skip code_module
for ex in examples/hello.basm examples/pingpong.basm examples/pmap.basm examples/monitor.basm \
          examples/registry.basm "examples/ring.basm 50 20" examples/blog/ex7b.basm \
          examples/upgrade/main.basm; do
  # shellcheck disable=SC2086
  set -- $ex
  echo "valgrind: ember run $*"
  "${VG[@]}" target/debug/ember run "$@" --virtual-time >/dev/null
done
echo "valgrind: no errors"
