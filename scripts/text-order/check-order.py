#!/usr/bin/env python3
"""Checks that an unstripped release mirror-agent was linked as scripts/release-build.sh links
it (README, Performance): the function sections listed in packaging/text-order.txt placed
together, its relative relocations packed (DT_RELR), and no symbol of ours exported dynamically.

Usage: scripts/text-order/check-order.py path/to/unstripped/mirror-agent [ORDER_FILE]
Exit 0 when both hold, 1 (with the reason) when not. Names of the order file that are no
longer in the binary (stale after a code change) are counted and reported, never an error:
`make text-order` regenerates the file."""
import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    binary = sys.argv[1]
    order_file = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "packaging", "text-order.txt")
    wanted = [l.strip()[len(".text."):] for l in open(order_file) if l.startswith(".text.")]
    syms = {}
    out = subprocess.run(["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.setdefault(parts[3], (int(parts[0], 16), int(parts[1], 16)))
    if not syms:
        sys.exit(f"not ok - {binary} has no symbol table (check the unstripped build, not the package)")
    found = [syms[n] for n in wanted if n in syms]
    stale = len(wanted) - len(found)
    if len(found) < 100:
        sys.exit(f"not ok - only {len(found)} of the {len(wanted)} ordered functions are in {binary}")
    # The ordered sections placed together: the most of them that fit in one stretch of about the
    # room they need must be nearly all of them.
    room = sum(size for _, size in found) * 1.25 + 65536
    addrs = sorted(addr for addr, _ in found)
    best, lo = 0, 0
    for hi in range(len(addrs)):
        while addrs[hi] - addrs[lo] > room:
            lo += 1
        best = max(best, hi - lo + 1)
    share = best / len(found)
    exported = subprocess.run(["nm", "-D", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    swift_exports = sum(1 for l in exported.splitlines() if " $s" in l)
    print(f"# {len(found)} ordered functions in the binary ({stale} names stale), {share:.0%} of them within "
          f"{room / 2**20:.1f} MiB of each other; {swift_exports} Swift symbols exported dynamically")
    if share < 0.9:
        sys.exit(f"not ok - {binary}: the text order of {order_file} was not applied (only {share:.0%} of the ordered functions placed together)")
    dynamic = subprocess.run(["readelf", "-dW", binary], capture_output=True, text=True, check=True).stdout
    if "(RELR)" not in dynamic:
        sys.exit(f"not ok - {binary} has no packed relative relocations (DT_RELR): linked without -z pack-relative-relocs")
    if swift_exports:
        sys.exit(f"not ok - {binary} exports {swift_exports} Swift symbols dynamically (linked without --no-export-dynamic)")
    if stale > len(wanted) // 4:
        print(f"# warning: {stale} of {len(wanted)} names of {order_file} are no longer in the binary: run `make text-order`")
    print(f"ok - {binary} linked with the text order, packed relocations and no dynamic exports")


if __name__ == "__main__":
    main()
