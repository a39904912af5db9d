#!/usr/bin/env bash
# The integration suite: the real mirror-agent binary against real containerd, skopeo and
# Debian's docker-registry, all on loopback. Prints ok / not ok per check and a final
# "N passed, N failed" line. Usage: tests/integration/run.sh path/to/mirror-agent
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
AGENT=$(realpath "${1:-$here/../../.build/debug/mirror-agent}")
export AGENT
source "$here/lib.sh"
harness_init
harness_trap
for t in "$here"/test_*.sh; do
  echo "# $(basename "$t")"
  source "$t"
done
summary
