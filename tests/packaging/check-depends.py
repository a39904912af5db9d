#!/usr/bin/python3
"""Fails when a .deb uses at run time a binary or shared library that its Depends do not bring.

Usage: tests/packaging/check-depends.py PACKAGE.deb

What the package uses at run time, each mapped to the Debian package that ships it (dpkg -S on
this machine, trying the /usr-merged spelling too):
  * every shared library an ELF file of the package links directly (readelf NEEDED, resolved by
    ldd);
  * every executable a systemd unit of the package runs (ExecStart=, ExecReload=, ExecStop=...);
  * every command its maintainer scripts run (command positions of the shell scripts).
Each must be shipped by the package itself, by a package named in Depends/Pre-Depends, or by an
Essential package. Prints one line per finding and "N passed, N failed"; exit 1 on any failure.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "case", "esac", "in", "for", "while", "until", "do", "done",
    "!", "{", "}", "[", "[[", "test", "echo", "printf", "set", "exit", "return", "local", "read",
    "true", "false", "cd", "export", "shift", ".", ":", "eval", "exec", "trap", "unset", "break",
    "continue", "wait", "command", "type", "umask", "readonly", "getopts", "hash", "pwd", "kill",
}
# `kill` above is the shell builtin when it appears in a maintainer script; in a unit it is a file.

# Commands a maintainer script may run without a dependency, each with the reason.
GUARDED = {
    "systemctl": "debhelper's snippets run it only under `[ -d /run/systemd/system ]`: systemd, which ships it, is PID 1",
}


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def owner(path):
    """The package that ships `path` on this machine, or None."""
    candidates = [path, os.path.realpath(path)]
    if path.startswith("/usr/"):
        candidates.append(path[4:])
    else:
        candidates.append("/usr" + path)
    for candidate in candidates:
        out = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            for line in out.stdout.splitlines():
                pkgs, _, p = line.partition(": ")
                if p.strip() == candidate and "diversion" not in pkgs:
                    return pkgs.split(",")[0].strip().split(":")[0]
    return None


def essential(package):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True)
    return out.stdout.strip() == "yes"


def depends_names(control):
    names = set()
    for field in ("Depends", "Pre-Depends"):
        m = re.search(rf"^{field}:(.*(?:\n[ \t].*)*)", control, re.M)
        if not m:
            continue
        for group in m.group(1).replace("\n", " ").split(","):
            for alternative in group.split("|"):
                name = alternative.strip().split(" ")[0].split("(")[0].split(":")[0].strip()
                if name:
                    names.add(name)
    return names


def shell_commands(text):
    """Command words of a POSIX shell script (good enough for maintainer scripts)."""
    commands = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s#.*$", "", line)
        line = re.sub(r"^[^\s()\"']+(\|[^\s()\"']+)*\)", "", line)  # a case pattern
        # A command substitution starts a command of its own: look at what follows each `$(`.
        pieces = [line] + [line[m.end():] for m in re.finditer(r"\$\(|`", line)]
        segments = []
        for piece in pieces:
            piece = re.sub(r"'[^']*'", "''", piece)
            piece = re.sub(r'"[^"]*"', '""', piece)
            segments += re.split(r"&&|\|\||[;&|()`]", piece)
        for segment in segments:
            words = segment.split()
            while words and words[0] in ("if", "then", "else", "elif", "do", "while", "until", "!", "{", "exec", "command"):
                words = words[1:]
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]
            if not words:
                continue
            word = words[0].strip("\"'")
            if not word or word in SHELL_WORDS or word.startswith(("$", "-", ">", "<", "2>", "/dev/")) or not re.match(r"^[A-Za-z0-9_./+-]+$", word):
                continue
            if re.match(r"^[0-9]", word):
                continue
            commands.add(word)
    return commands


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    deb = sys.argv[1]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        data, ctrl = os.path.join(tmp, "data"), os.path.join(tmp, "control")
        run("dpkg-deb", "-x", deb, data)
        run("dpkg-deb", "-e", deb, ctrl)
        control = open(os.path.join(ctrl, "control")).read()
        package = re.search(r"^Package:\s*(\S+)", control, re.M).group(1)
        depends = depends_names(control)
        shipped = set()
        for directory, _, files in os.walk(data):
            for name in files:
                shipped.add("/" + os.path.relpath(os.path.join(directory, name), data))

        def judge(what, path):
            nonlocal passed, failed
            if path in shipped or ("/usr" + path) in shipped or (path.startswith("/usr/") and path[4:] in shipped):
                print(f"ok: {what}: {path} (this package)")
                passed += 1
                return
            pkg = owner(path)
            if pkg is None:
                print(f"FAIL: {what}: {path} is not shipped by any installed package")
                failed += 1
            elif pkg == package or pkg in depends:
                print(f"ok: {what}: {path} ({pkg}, in Depends)")
                passed += 1
            elif essential(pkg):
                print(f"ok: {what}: {path} ({pkg}, Essential)")
                passed += 1
            else:
                print(f"FAIL: {what}: {path} comes from {pkg}, which is not in Depends ({', '.join(sorted(depends)) or 'none'})")
                failed += 1

        # Shared libraries of every ELF file.
        for path in sorted(shipped):
            local = data + path
            if os.path.islink(local) or not os.path.isfile(local):
                continue
            with open(local, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run("readelf", "-d", local))
            resolved = {}
            for line in run("ldd", local, check=False).splitlines():
                m = re.match(r"\s*(\S+) => (\S+)", line)
                if m:
                    resolved[m.group(1)] = m.group(2)
                m = re.match(r"\s*(/\S+) \(0x", line)  # the dynamic loader: a path, no "=>"
                if m:
                    resolved[os.path.basename(m.group(1))] = m.group(1)
            for soname in needed:
                target = resolved.get(soname)
                if target is None or target == "not":
                    print(f"FAIL: {path} needs {soname}, which is not found on this machine")
                    failed += 1
                else:
                    judge(f"{path} links {soname}", target)

        # Executables of the systemd units.
        for path in sorted(p for p in shipped if re.search(r"/systemd/system/[^/]+\.(service|socket|timer)$", p)):
            for line in open(data + path):
                m = re.match(r"\s*(Exec[A-Za-z]+)\s*=\s*(.*)", line)
                if not m or not m.group(2).strip():
                    continue
                word = m.group(2).strip().split()[0].lstrip("@-:+!|")
                exe = word if word.startswith("/") else shutil.which(word, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                if exe is None:
                    print(f"FAIL: {path} {m.group(1)}= runs {word}, found nowhere")
                    failed += 1
                else:
                    judge(f"{path} {m.group(1)}=", exe)

        # Commands of the maintainer scripts.
        for script in ("preinst", "postinst", "prerm", "postrm", "config"):
            file = os.path.join(ctrl, script)
            if not os.path.exists(file):
                continue
            for command in sorted(shell_commands(open(file).read())):
                if command in GUARDED:
                    print(f"ok: {script} runs {command}: {GUARDED[command]}")
                    passed += 1
                    continue
                exe = command if command.startswith("/") else shutil.which(command, path="/usr/sbin:/usr/bin:/sbin:/bin")
                if exe is None:
                    print(f"FAIL: {script} runs {command}, found nowhere")
                    failed += 1
                else:
                    judge(f"{script} runs {command}", exe)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
