#!/bin/sh
# The release build of mirror-agent: one command for `make deb` (packaging/debian/rules),
# `make crash`, `make bench` and `make text-order`, so what is measured is what ships.
# Arguments go on to `swift build` (--scratch-path DIR); SWIFT_CONFIG=debug for the quicker
# development package. How the binary is linked (README, Performance):
#   -use-ld=bfd               GNU ld: it packs the relative relocations (below) and takes the order;
#   -function-sections        every Swift function in its own section, so the linker can place it
#                             (our code and the packages'; the toolchain's libraries come as built);
#   -T text-order.ld          the functions the daemon runs from start to idle placed together at the
#                             start of the text, in the order of packaging/text-order.txt (`make
#                             text-order` regenerates it; a name no longer in the code matches nothing);
#   -z pack-relative-relocs   the 78,000 relative relocations of a PIE as a 15 KB bitmap (DT_RELR, glibc
#                             2.36) instead of a 1.8 MB table the dynamic loader reads at every start;
#   -z relro                  as gold does by default (GNU ld through clang does not): relocated
#                             read-only data made read-only again after start (lintian checks it);
#                             packaging/writable-rodata.ld keeps Foundation's few writable .rodata
#                             apart, without which GNU ld can make no RELRO segment;
#   --no-export-dynamic       --static-swift-stdlib asks for -export-dynamic: every symbol of ours in
#                             the dynamic symbol table (2.4 MB), which the dynamic loader searches first
#                             on each of its lookups. Nothing loads code into mirror-agent: none exported.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$top/.build"
# Named after its content: SwiftPM relinks when the link command changes, not when a file it
# names does, so a new order must change the command.
hash=$(cat "$top/packaging/text-order.txt" "$top/packaging/writable-rodata.ld" | sha256sum | cut -c1-16)
script="$top/.build/text-order-$hash.ld"
find "$top/.build" -maxdepth 1 -name 'text-order*.ld' ! -name "text-order-$hash.ld" -delete
{
  printf 'SECTIONS\n{\n  .text.ordered :\n  {\n'
  sed -n 's/^\(\.text\..*\)$/    *("\1")/p' "$top/packaging/text-order.txt"
  printf '  }\n}\nINSERT BEFORE .text;\n'
} > "$script.tmp"
mv "$script.tmp" "$script"
exec "${SWIFT:-swift}" build -c "${SWIFT_CONFIG:-release}" --static-swift-stdlib --product mirror-agent \
  -Xswiftc -use-ld=bfd \
  -Xswiftc -Xfrontend -Xswiftc -function-sections \
  -Xlinker -T -Xlinker "$script" \
  -Xlinker -z -Xlinker pack-relative-relocs \
  -Xlinker -z -Xlinker relro -Xlinker -T -Xlinker "$top/packaging/writable-rodata.ld" \
  -Xlinker --no-export-dynamic \
  "$@"
