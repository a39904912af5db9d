# The batched writer's durability steps, seen with strace on a real apply: 600 new hosts.toml
# files in 600 new directories are made durable by two syncfs calls for all of them (the first
# before any of them is renamed into place: data, inodes and new directory entries; the second
# after the last rename), not by an fsync per file or per batch. Sourced by run.sh; a few
# seconds.

DU=$(mktemp -d "$H_TMP/durability.XXXXXX")
mkdir -p "$DU/etc/mirror-agent/mirrors.d"
printf 'runtimes: [containerd]\n' > "$DU/etc/mirror-agent/agent.yaml"
python3 - > "$DU/etc/mirror-agent/mirrors.d/many.yaml" <<'PY'
print("mirrors:")
for i in range(600):
    print(f'  reg{i}.durable.example:\n    endpoint: ["https://m{i}.mirror.example"]')
PY
check "durability: a 600-file apply under strace succeeds" \
  strace -f -qq -e trace=syncfs,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat -o "$H_TMP/durability.trace" \
    "$AGENT" apply --root "$DU"

# durability_steps TRACE: two syncfs in all; every new host directory made before the first (its
# entry is made durable by it, with no fsync of certs.d per directory); every hosts.toml rename
# after the first and before the second; fewer fsync calls than a tenth of the files (the
# manifest's own, not per file).
durability_steps() {
  python3 - "$1" <<'PY'
import re, sys
syncfs, fsyncs, renames, mkdirs = [], 0, [], []
for n, line in enumerate(open(sys.argv[1])):
    if re.search(r"\bsyncfs\(", line):
        syncfs.append(n)
    elif re.search(r"\bf(data)?sync\(", line):
        fsyncs += 1
    elif re.search(r'\brename(at2?)?\(.*"hosts\.toml"', line):
        renames.append(n)
    elif re.search(r'\bmkdir(at)?\(.*durable\.example"', line):
        mkdirs.append(n)
problems = []
if len(renames) != 600:
    problems.append(f"{len(renames)} hosts.toml renames, not 600")
if len(mkdirs) != 600:
    problems.append(f"{len(mkdirs)} host directories made, not 600")
if len(syncfs) != 2:
    problems.append(f"{len(syncfs)} syncfs calls, not 2")
else:
    if renames and not (syncfs[0] < min(renames) and max(renames) < syncfs[1]):
        problems.append("a hosts.toml rename outside the two syncfs calls")
    if mkdirs and max(mkdirs) > syncfs[0]:
        problems.append("a host directory made after the first syncfs")
if fsyncs >= 60:
    problems.append(f"{fsyncs} fsync calls: per file, not batched")
print(f"syncfs at trace lines {syncfs}, {fsyncs} fsync, renames at lines {min(renames, default=-1)}..{max(renames, default=-1)}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY
}
check "durability: two syncfs for 600 files, every rename between them, no fsync per file" durability_steps "$H_TMP/durability.trace"
check "durability: every file in place, no temporary left" \
  python3 -c '
import os, sys
d = sys.argv[1] + "/etc/containerd/certs.d"
names = [os.path.join(p, n) for p, _, ns in os.walk(d) for n in ns]
hosts = [n for n in names if n.endswith("/hosts.toml")]
temps = [n for n in names if "/.mirror-agent-tmp-" in n]
print(len(hosts), "hosts.toml,", len(temps), "temporaries")
sys.exit(0 if len(hosts) == 600 and not temps else 1)' "$DU"
