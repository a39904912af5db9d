#!/usr/bin/env bash
# R2 crash consistency: `apply` of large desired states killed with SIGKILL at random moments.
# After each kill every output file parses and equals either the old or the new content; after
# the next complete run no temporary files are left and the ownership manifest lists exactly
# the files on disk. Usage: tests/reliability/crash.sh path/to/mirror-agent [rounds]
# Prints "N passed, N failed".
set -uo pipefail
AGENT=$(realpath "${1:?usage: $0 path/to/mirror-agent [rounds]}")
ROUNDS=${2:-200}
T=$(mktemp -d /tmp/mirror-agent-crash.XXXXXX)
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
fail() { failed=$((failed + 1)); echo "not ok - $1"; }
pass() { passed=$((passed + 1)); }

# Two large states (A and B) that differ in every file, and the files each renders to.
state() { # NAME SEED
  python3 - "$1" "$2" <<'PY'
import sys
name, seed = sys.argv[1], int(sys.argv[2])
out = ["mirrors:"]
for i in range(400):
    out.append(f'  reg{i}.crash.example:\n    endpoint: ["https://m{(i + seed) % 97}.mirror.example", "http://10.{seed}.{i % 250}.1:5000"]')
# Some registries exist only in one state, so files are also created and removed.
for i in range(seed * 50, seed * 50 + 50):
    out.append(f'  only{i}.crash.example:\n    endpoint: ["https://only.mirror.example"]')
print("\n".join(out))
PY
}
mkroot() { mkdir -p "$1/etc/mirror-agent/mirrors.d"; printf 'runtimes: [containerd, crio]\n' > "$1/etc/mirror-agent/agent.yaml"; }
for s in A:1 B:2; do
  name=${s%%:*} seed=${s##*:}
  state "$name" "$seed" > "$T/$name.yaml"
  mkroot "$T/ref-$name"
  cp "$T/$name.yaml" "$T/ref-$name/etc/mirror-agent/mirrors.d/state.yaml"
  "$AGENT" apply --root "$T/ref-$name" > /dev/null || { echo "reference apply failed"; exit 1; }
done

R="$T/root"
mkroot "$R"
cp "$T/A.yaml" "$R/etc/mirror-agent/mirrors.d/state.yaml"
"$AGENT" apply --root "$R" > /dev/null
current=A

check_tree() { # after a kill: every file is A's or B's version, complete and parsable
  python3 - "$R" "$T/ref-A" "$T/ref-B" <<'PY'
import os, sys, tomllib
root, a, b = sys.argv[1:]
bad = []
for base in ("etc/containerd/certs.d", "etc/containers/registries.conf.d"):
    for d, _, files in os.walk(os.path.join(root, base)):
        for name in files:
            if name.startswith(".mirror-agent-tmp-"):
                continue  # an interrupted write's leftover: never at a real name
            path = os.path.join(d, name)
            rel = os.path.relpath(path, root)
            data = open(path, "rb").read()
            try:
                tomllib.loads(data.decode())
            except Exception as e:
                bad.append(f"{rel}: does not parse: {e}")
            versions = [open(os.path.join(r, rel), "rb").read() for r in (a, b) if os.path.exists(os.path.join(r, rel))]
            if data not in versions:
                bad.append(f"{rel}: neither the old nor the new content")
if bad:
    print("\n".join(bad[:10]))
    sys.exit(1)
PY
}

check_clean() { # after a complete run: no temporaries, manifest == files on disk == reference
  python3 - "$R" "$T/ref-$1" <<'PY'
import json, os, sys
root, ref = sys.argv[1:]
def files(r):
    found = set()
    for base in ("etc/containerd/certs.d", "etc/containers/registries.conf.d"):
        for d, _, names in os.walk(os.path.join(r, base)):
            for n in names:
                found.add("/" + os.path.relpath(os.path.join(d, n), r))
    return found
on_disk = files(root)
temps = [f for f in on_disk if "/.mirror-agent-tmp-" in f]
manifest = {e["base"] + "/" + e["relative"] for e in json.load(open(os.path.join(root, "var/lib/mirror-agent/manifest.json")))["files"]}
problems = []
if temps: problems.append(f"temporary files left: {temps[:3]}")
if manifest != on_disk: problems.append(f"manifest and disk differ: {sorted(manifest ^ on_disk)[:5]}")
if on_disk != files(ref): problems.append(f"not the reference set: {sorted(on_disk ^ files(ref))[:5]}")
for f in on_disk:
    if open(root + f, "rb").read() != open(ref + f, "rb").read(): problems.append(f"{f} differs from the reference"); break
if problems:
    print("\n".join(problems)); sys.exit(1)
PY
}

kills=0
for round in $(seq 1 "$ROUNDS"); do
  next=$([ $current = A ] && echo B || echo A)
  cp "$T/$next.yaml" "$R/etc/mirror-agent/mirrors.d/.state.tmp" && mv "$R/etc/mirror-agent/mirrors.d/.state.tmp" "$R/etc/mirror-agent/mirrors.d/state.yaml"
  "$AGENT" apply --root "$R" > /dev/null 2>&1 &
  pid=$!
  # A random moment inside the apply (a full apply here takes a few hundred ms).
  # (CRASH_SLEEP=S fixes the moment: the negative control, a moment after every apply ended,
  # must make this script fail for lack of mid-run kills.)
  sleep "${CRASH_SLEEP:-0.$(printf '%03d' $((RANDOM % 400)))}"
  kill -9 "$pid" 2>/dev/null
  # Mid-run only if the SIGKILL is what ended it (status 128 + 9): kill(2) also succeeds on a
  # child that has already exited but not been reaped, which is no crash at all.
  wait "$pid" 2>/dev/null; rc=$?
  if [ "$rc" -eq 137 ]; then kills=$((kills + 1)); fi
  if out=$(check_tree); then pass; else fail "round $round: after kill -9: $out"; fi
  "$AGENT" apply --root "$R" > /dev/null 2>&1 || fail "round $round: the next apply failed"
  if out=$(check_clean "$next"); then pass; else fail "round $round: after the next run: $out"; fi
  current=$next
done
echo "# $ROUNDS rounds, $kills applies killed mid-run"
# Rounds whose apply finished before the kill prove nothing about crashes: at least a quarter
# must have been killed mid-run, or the test did not test what it says (too fast a machine, or
# an apply that no longer takes long enough: then raise the state's size).
if [ $((kills * 4)) -ge "$ROUNDS" ]; then pass; else fail "only $kills of $ROUNDS applies were killed mid-run (need >= 1/4)"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
