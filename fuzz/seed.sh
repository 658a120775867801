#!/usr/bin/env bash
# Seeds the fuzz corpora with the project's own programs: every .basm under examples/ and
# tests/basm/ goes to corpus/parse and corpus/run, the bytecode of each one that assembles to
# corpus/load and corpus/run. Also writes basm.dict (the mnemonics, for libFuzzer's -dict=).
# Existing corpus entries are kept, so the corpora grow from run to run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build -q --bin ember
ember="${CARGO_TARGET_DIR:-target}/debug/ember"
[[ "$ember" = /* ]] || ember="$root/$ember"

corpus=fuzz/corpus
mkdir -p "$corpus/parse" "$corpus/load" "$corpus/run"
n=0
while IFS= read -r f; do
  name=$(printf '%s' "${f%.basm}" | tr '/' '_')
  cp "$f" "$corpus/parse/$name.basm"
  cp "$f" "$corpus/run/$name.basm"
  # Files that are meant not to assemble (tests/basm/errors) are still good text seeds.
  if "$ember" asm "$f" -o "$corpus/load/$name.ebc" 2>/dev/null; then
    cp "$corpus/load/$name.ebc" "$corpus/run/$name.ebc"
  fi
  n=$((n + 1))
done < <(find examples tests/basm -name '*.basm' | sort)

# Mnemonics from the instruction table (`| 3 | `jump L` | ...`), plus the directives and the
# punctuation of clauses and terms.
{
  "$ember" isa | sed -n 's/^| [0-9]* | `\([a-z_]*\).*/"\1"/p' | sort -u
  printf '"%s"\n' .module .export .import main: ' -> ' '| ' after r0 r255 ':ok' '{' '}' '[' ']' '^r1' '\\x'
} > fuzz/basm.dict

echo "seeded $n programs: $(ls "$corpus/load" | wc -l) bytecode files; $(wc -l < fuzz/basm.dict) dictionary words"
