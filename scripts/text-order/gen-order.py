#!/usr/bin/env python3
"""Writes the link-time symbol order (packaging/text-order.txt) that puts the code the daemon
touches from start to idle next to each other, so the kernel's 64 KiB fault-around maps hot
code instead of cold neighbours. See README, Performance.

Usage: scripts/text-order/gen-order.py BUILD_DIR OUT [--report]
  BUILD_DIR: the release build directory of scripts/release-build.sh
  (.build/x86_64-unknown-linux-gnu/release): its unstripped mirror-agent is profiled, and
  only the function sections that exist in its object files and in the Swift toolchain's static
  libraries are written (a name in no section would only be ignored by the linker).

How the touched pages are found, without fault-around hiding them:
  1. a private copy of the binary is put on a scratch ext4 image, loop-mounted, whose block
     device has read_ahead_kb = 0, and evicted from the page cache (posix_fadvise DONTNEED;
     fincore confirms nothing of it stays cached). A page fault then reads only its own page,
     so the kernel's fault-around (which maps only pages already cached) can map only pages
     that were faulted themselves. (madvise(MADV_RANDOM) is not enough: on Linux 6.18 an
     executable mapping still reads ahead read_ahead_kb, 8 MiB here, on a fault.)
  2. the daemon runs from that copy (the B3 scenario, probes off, then probes on);
  3. after the first pass and a quiet period, the present pages of the executable's text
     are read from /proc/PID/pagemap (the present bit needs no privilege);
  4. for every function symbol (nm -n) overlapping a touched page, its function section
     `.text.SYMBOL` is listed (scripts/release-build.sh turns the list into a linker script),
     probes off first, then what probes on adds; the order inside each group is the binary's own.
Needs root (losetup, mount), nm, fincore (util-linux), mkfs.ext4; Debian's python3 only."""
import os, shutil, signal, struct, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import b3_scenario  # noqa: E402  (bench/b3_scenario.py: the scenario B3 measures)

PAGE = os.sysconf("SC_PAGE_SIZE")


def load_segments(path):
    """PT_LOAD segments (offset, vaddr, filesz) of an ELF64 little-endian file."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise SystemExit(f"{path}: not an ELF64 little-endian file")
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    segs = []
    for i in range(phnum):
        ptype, flags, off, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if ptype == 1:
            segs.append((off, vaddr, filesz, flags))
    return segs


def no_readahead_mount(workdir):
    """A 1 GiB sparse ext4 image, loop-mounted, its device's readahead off. Returns (mnt, loop)."""
    image, mnt = os.path.join(workdir, "image"), os.path.join(workdir, "mnt")
    os.makedirs(mnt)
    with open(image, "wb") as f:
        f.truncate(1 << 30)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run(["mount", loop, mnt], check=True)
        with open(f"/sys/block/{os.path.basename(loop)}/queue/read_ahead_kb", "w") as f:
            f.write("0\n")
    except BaseException:
        subprocess.run(["losetup", "-d", loop])
        raise
    return mnt, loop


def evicted_copy(binary, mnt):
    copy = os.path.join(mnt, "mirror-agent")
    shutil.copyfile(binary, copy)
    os.chmod(copy, 0o755)
    fd = os.open(copy, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    cached = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", copy],
                            capture_output=True, text=True, check=True).stdout.strip()
    if int(cached or 0) != 0:
        raise SystemExit(f"{copy}: {cached} bytes still in the page cache after POSIX_FADV_DONTNEED")
    return copy


def touched_pages(pid, exe):
    """ELF virtual addresses of the present pages of the executable's executable mappings."""
    segs = load_segments(exe)
    pages = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or parts[5] != exe or "x" not in parts[1]:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            offset = int(parts[2], 16)
            n = (hi - lo) // PAGE
            pm.seek(lo // PAGE * 8)
            data = pm.read(n * 8)
            for i in range(n):
                if struct.unpack_from("<Q", data, i * 8)[0] >> 63:
                    fileoff = offset + i * PAGE
                    for off, vaddr, filesz, _ in segs:
                        if off <= fileoff < off + filesz:
                            pages.add(vaddr + fileoff - off)
    return pages


def scenario_root(workdir, name, probes):
    """The B3 scenario of bench/bench.py: 50 registries with 2 loopback endpoints each."""
    root = os.path.join(workdir, name)
    os.makedirs(f"{root}/etc/mirror-agent/mirrors.d")
    with open(f"{root}/etc/mirror-agent/agent.yaml", "w") as f:
        f.write(b3_scenario.agent_yaml(probes))
    with open(f"{root}/etc/mirror-agent/mirrors.d/idle.yaml", "w") as f:
        f.write(b3_scenario.mirrors_yaml(range(20000, 20100)))
    return root


def profile(binary, mnt, workdir, name, probes, idle):
    copy = evicted_copy(binary, mnt)
    root = scenario_root(workdir, name, probes)
    with open(f"{root}.log", "w") as log:
        p = subprocess.Popen([copy, "run", "--root", root], stdout=log, stderr=subprocess.STDOUT)
    try:
        status = f"{root}/run/mirror-agent/status.json"
        for _ in range(400):
            if os.path.exists(status) or p.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(status):
            raise SystemExit(f"the daemon did not start (see {root}.log)")
        time.sleep(idle)
        pages = touched_pages(p.pid, copy)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    os.unlink(copy)
    return pages


def function_symbols(binary):
    """(address, end, name) of defined text symbols, sizes from the next symbol's address."""
    out = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    result = []
    for i, (addr, name) in enumerate(syms):
        end = syms[i + 1][0] if i + 1 < len(syms) else addr + PAGE
        result.append((addr, max(end, addr + 1), name))
    return result


def symbols_on(pages, syms):
    chosen = []
    for addr, end, name in syms:
        first, last = addr // PAGE * PAGE, (end - 1) // PAGE * PAGE
        if any(p in pages for p in range(first, last + PAGE, PAGE)):
            chosen.append(name)
    return chosen


def function_sections(build_dir):
    """Names of the function sections (.text.NAME) the linker sees: our objects and the
    toolchain's static libraries (lib/swift_static/linux next to the swift on PATH)."""
    swift = shutil.which("swift")
    static = os.path.join(os.path.dirname(os.path.realpath(swift)), "..", "lib", "swift_static", "linux") if swift else ""
    files = [os.path.join(d, f) for d, _, fs in os.walk(build_dir) for f in fs if f.endswith(".o")]
    if os.path.isdir(static):
        files += [os.path.join(static, f) for f in os.listdir(static) if f.endswith(".a")]
    names = set()
    for i in range(0, len(files), 200):
        out = subprocess.run(["readelf", "-SW", *files[i:i + 200]], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for word in line.split():
                if word.startswith(".text."):
                    names.add(word)
    return names


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    build_dir, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    binary = os.path.join(build_dir, "mirror-agent")
    workdir = tempfile.mkdtemp(prefix="text-order.", dir=os.environ.get("TMPDIR", "/var/tmp"))
    mnt = loop = None
    try:
        mnt, loop = no_readahead_mount(workdir)
        off = profile(binary, mnt, workdir, "probes-off", False, 5)
        on = profile(binary, mnt, workdir, "probes-on", True, 5)
        syms = function_symbols(binary)
        sections = function_sections(build_dir)
        order, seen = [], set()
        for name in symbols_on(off, syms) + symbols_on(on, syms):
            section = f".text.{name}"
            if section in sections and section not in seen:
                seen.add(section)
                order.append(section)
        with open(out, "w") as f:
            f.write("".join(f"{s}\n" for s in order))
        print(f"text pages touched: probes off {len(off)} ({len(off) * PAGE // 1024} KiB), probes on {len(on)}; "
              f"{len(order)} function sections written to {out}", file=sys.stderr)
        if "--report" in sys.argv:
            with open(out + ".pages", "w") as f:
                f.write("\n".join(f"{p:x}" for p in sorted(off)) + "\n")
    finally:
        if loop:
            subprocess.run(["umount", mnt])
            subprocess.run(["losetup", "-d", loop])
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
