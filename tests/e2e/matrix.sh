#!/usr/bin/env bash
# The e2e matrix: tests/e2e/run.sh on each suite of $E2E_SUITES (default: bookworm trixie sid,
# i.e. Debian's containerd 1.6.20, 1.7.24 and 2.1.x with their stock configs), one after the
# other (each boots its own machine). The cached roots are built first, in parallel (a cold
# cache takes about five minutes; later runs reuse $E2E_CACHE, default
# /var/cache/mirror-agent-e2e). Prints each stage's time and each suite's pass count, then the
# totals as "N passed, N failed"; exits non-zero if any suite failed.
# Usage: tests/e2e/matrix.sh path/to/mirror-agent_<version>_amd64.deb
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DEB=$(realpath "${1:?usage: $0 path/to/mirror-agent.deb}")
read -r -a suites <<< "${E2E_SUITES:-bookworm trixie sid}"
now() { date +%s; }
t0=$(now)
pids=()
for suite in "${suites[@]}"; do
  ( source "$here/nspawn.sh"; E2E_SUITE=$suite; e2e_build_cache ) &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
echo "# stage: e2e root caches (${suites[*]}): $(( $(now) - t0 ))s"
[ $rc = 0 ] || { echo "cannot build the e2e roots"; echo "0 passed, 1 failed"; exit 1; }
passed=0 failed=0 results=()
for suite in "${suites[@]}"; do
  t=$(now)
  echo "# === e2e on $suite ==="
  out=$(mktemp)
  E2E_SUITE=$suite bash "$here/run.sh" "$DEB" 2>&1 | tee "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
  rm -f "$out"
  [ -n "$line" ] || line="0 passed, 1 failed"
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
  passed=$((passed + p)); failed=$((failed + f))
  results+=("$suite: $line ($(( $(now) - t ))s)")
  echo "# stage: e2e on $suite: $(( $(now) - t ))s"
done
echo "# e2e matrix, $(( $(now) - t0 ))s in all:"
for r in "${results[@]}"; do echo "#   $r"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
