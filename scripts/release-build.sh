#!/bin/sh
# The release build of mirror-agent: one command for `make deb` (packaging/debian/rules),
# `make crash`, `make bench` and `make text-order`, so what is measured is what ships.
# Arguments go on to `swift build` (--scratch-path DIR); SWIFT_CONFIG=debug for the quicker
# development package. How the binary is linked (README, Performance):
#   -function-sections        every Swift function in its own section, so the linker can place it
#                             (our code and the packages'; the toolchain's libraries come as built);
#   --section-ordering-file   the functions the daemon runs from start to idle placed together
#                             (packaging/text-order.txt, `make text-order` regenerates it; gold
#                             ignores names that are no longer in the code);
#   --no-export-dynamic       --static-swift-stdlib asks for -export-dynamic: every symbol of ours in
#                             the dynamic symbol table (3 MB) that the dynamic loader searches first on
#                             each of its lookups. Nothing loads code into mirror-agent, so none is exported.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
exec "${SWIFT:-swift}" build -c "${SWIFT_CONFIG:-release}" --static-swift-stdlib --product mirror-agent \
  -Xswiftc -Xfrontend -Xswiftc -function-sections \
  -Xlinker --no-export-dynamic \
  -Xlinker "--section-ordering-file=$top/packaging/text-order.txt" \
  "$@"
