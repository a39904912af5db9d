#!/usr/bin/env bash
# The integration suite: the real mirror-agent binary against real containerd, skopeo and
# Debian's docker-registry, all on loopback. Prints ok / not ok per check and a final
# "N passed, N failed" line. Usage: tests/integration/run.sh path/to/mirror-agent [test_x.sh...]
# (with test file names, only those run).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
AGENT=$(realpath "${1:-$here/../../.build/debug/mirror-agent}")
shift $(( $# > 0 ? 1 : 0 ))
export AGENT
source "$here/lib.sh"
harness_init
harness_trap
tests=("$here"/test_*.sh)
[ $# -gt 0 ] && tests=("${@/#/$here/}")
for t in "${tests[@]}"; do
  echo "# $(basename "$t")"
  source "$t"
done
summary
