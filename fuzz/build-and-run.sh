#!/usr/bin/env bash
# R1: builds the libFuzzer target over the desired-state parser, validator and renderers (with
# AddressSanitizer) and runs it seeded from examples/ and the broken-input corpus.
# Usage: fuzz/build-and-run.sh [runs]   (default 20000). Crashers land in fuzz/crashers/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20000}
SCRATCH=.build-fuzz
# SwiftPM cannot link an executable with -sanitize=fuzzer (it renames main): build the libraries
# instrumented, then link the entry point against their objects with swiftc.
swift build --scratch-path "$SCRATCH" --target RuntimeWriters -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >/dev/null
objects=$(find -L "$SCRATCH/debug/" \( -path '*/Diagnostics.build/*.o' -o -path '*/MarkedYAML.build/*.o' -o -path '*/DesiredState.build/*.o' -o -path '*/RuntimeWriters.build/*.o' -o -path '*/TOMLKit.build/*.o' -o -path '*/CTOML.build/*.o' -o -path '*/CLinuxShim.build/*.o' \))
swiftc -sanitize=fuzzer,address -parse-as-library fuzz/FuzzDesiredState.swift \
  -I "$SCRATCH/debug/Modules" -Xcc -fmodule-map-file=Sources/CYAML/module.modulemap \
  -Xcc -I"$SCRATCH/checkouts/TOMLKit/Sources/CTOML/include" \
  -Xcc -fmodule-map-file="$SCRATCH/debug/CLinuxShim.build/module.modulemap" -Xcc -I"Sources/CLinuxShim/include" \
  $objects -lyaml -lstdc++ -o "$SCRATCH/fuzz-desired-state"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp examples/*.yaml Tests/DesiredStateTests/Fixtures/broken/*.yaml "$corpus/"
[ -d fuzz/crashers ] && cp fuzz/crashers/* "$corpus/" 2>/dev/null || true
mkdir -p fuzz/crashers
set +e
"$SCRATCH/fuzz-desired-state" -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix=fuzz/crashers/ -print_final_stats=1 "$corpus" > "$SCRATCH/fuzz.log" 2>&1
status=$?
set -e
grep -E '^Done|number_of_executed_units|new_units_added|peak_rss' "$SCRATCH/fuzz.log"
if [ "$status" -ne 0 ]; then
  grep -A30 -E '==ERROR|Fatal error|deadly signal' "$SCRATCH/fuzz.log" | head -60
  echo "fuzzing found a crash: the input is in fuzz/crashers/ (keep it there as a regression test once fixed)"
  exit 1
fi
