# Issue 22: a persistent write failure is retried on the announced schedule (1, 2, 4, ... 60 s),
# not per event, and logs one line per retry; the other runtime's files stay in force meanwhile.
# Then the case of explicit crio on a host without /etc/containers under the unit's
# ProtectSystem=strict: a configuration error, said once, not retried. Sourced by run.sh; takes
# about 75 s.

# --- a file where a directory must be: retried on the schedule --------------------------------
S=$(mktemp -d "$H_TMP/storm.XXXXXX")
mkdir -p "$S/etc/mirror-agent/mirrors.d" "$S/etc/containerd" "$S/etc/containers"
printf 'not a directory\n' > "$S/etc/containers/registries.conf.d"
cat > "$S/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd, crio]
daemon: {debounce: 50ms}
probe: {enabled: false}
YAML
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5996"]\n' > "$S/etc/mirror-agent/mirrors.d/a.yaml"
# Every log line stamped by bash's own clock in the reader subshell (nothing to start up, so no
# line is stamped late), so the gaps between passes can be measured.
"$AGENT" run --root "$S" > >(while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done > "$H_TMP/storm.log") 2>&1 &
SPID=$!
H_PIDS+=($SPID)
# Activity in a watched directory that the retry looks at anyway: it must not start passes of
# its own while a retry is due.
(for i in $(seq 1 40); do mkdir -p "$S/etc/containerd/certs.d" && touch "$S/etc/containerd/certs.d/unrelated-$i"; sleep 0.5; done) &
sleep 62
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null
sleep 0.2
grep -c 'retrying in' "$H_TMP/storm.log" > "$H_TMP/storm.count" || true
echo "# storm: $(cat "$H_TMP/storm.count") failing passes, $(wc -l < "$H_TMP/storm.log") log lines in 62 s:"
sed "s|$S||g; s/^/#   /" "$H_TMP/storm.log" | cut -c1-220
# The announced schedule: failures at 0, 1, 3, 7, 15, 31 s (the next, at 63 s, is past the window).
check "over 62 s of a persistent failure there are 6 failing passes (1, 2, 4, 8, 16, 32 s apart)" test "$(cat "$H_TMP/storm.count")" -eq 6
check "each retry comes after the delay it announced, and not more than 1 s later" python3 - "$H_TMP/storm.log" <<'PY'
import re, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1])]
fails = [(float(t), m) for t, m in rows if "retrying in" in m]
ok = len(fails) >= 2
for (t0, m0), (t1, _) in zip(fails, fails[1:]):
    s = re.search(r"retrying in ([0-9.]+) seconds", m0)
    announced = float(s.group(1)) if s else -1
    gap = t1 - t0
    print("announced %.1f s, next pass after %.3f s" % (announced, gap))
    if not (announced - 0.05 <= gap <= announced + 1.0):
        ok = False
sys.exit(0 if ok else 1)
PY
lines=$(wc -l < "$H_TMP/storm.log")
# Start-up and the first failure say everything once; each retry after that is one line.
check "a persistent failure logs one line per retry: at most 20 lines in all (got $lines)" test "$lines" -le 20
check "the containerd hosts.toml is in force all the same (partial success kept)" test -f "$S/etc/containerd/certs.d/docker.io/hosts.toml"
check "status names exactly what failed, for crio only" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["name"]: x for x in d["runtimes"]}
print(json.dumps(d["runtimes"], indent=1))
c, o = r["containerd"], r["crio"]
sys.exit(0 if "error" not in c and c["state"] != "write-failed" and o["state"] == "write-failed" and "/etc/containers/registries.conf.d" in o["error"] else 1)' "$S/run/mirror-agent/status.json"

# --- /etc read-only but for /etc/containerd, no /etc/containers: a configuration error ---------
E=$(mktemp -d "$H_TMP/storm-ro.XXXXXX")
mkdir -p "$E/etc/mirror-agent/mirrors.d" "$E/etc/containerd"
cp "$S/etc/mirror-agent/agent.yaml" "$E/etc/mirror-agent/agent.yaml"
cp "$S/etc/mirror-agent/mirrors.d/a.yaml" "$E/etc/mirror-agent/mirrors.d/a.yaml"
ro_ok=0
# As ProtectSystem=strict with ReadWritePaths=-/etc/containerd makes it. (A bind mount copies
# the flags of the mount it comes from, so /etc/containerd is bound first.)
if mount --bind "$E/etc" "$E/etc" && mount --bind "$E/etc/containerd" "$E/etc/containerd" && mount -o remount,bind,ro "$E/etc"; then
  ro_ok=1
fi
check "an /etc read-only but for /etc/containerd can be made (needs root)" test "$ro_ok" = 1
if [ "$ro_ok" = 1 ]; then
  "$AGENT" run --root "$E" > "$H_TMP/storm-ro.log" 2>&1 &
  EPID=$!
  H_PIDS+=($EPID)
  check "containerd's files are written" wait_until 10 test -f "$E/etc/containerd/certs.d/docker.io/hosts.toml"
  (for i in $(seq 1 10); do touch "$E/etc/containerd/certs.d/unrelated-$i"; sleep 0.5; done) &
  sleep 10
  check "the missing /etc/containers is reported once, as a configuration error that says what to do" test "$(grep -c 'crio is in runtimes, but .*/etc/containers does not exist and is read-only to mirror-agent.*mkdir -p' "$H_TMP/storm-ro.log")" -eq 1
  check "and not retried over 10 s" lacks 'retrying in' "$H_TMP/storm-ro.log"
  check "status: containerd ok, crio config-error with the message" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["name"]: x for x in d["runtimes"]}
print(json.dumps(d["runtimes"], indent=1))
c, o = r["containerd"], r["crio"]
sys.exit(0 if "error" not in c and o["state"] == "config-error" and "mkdir -p" in o["error"] else 1)' "$E/run/mirror-agent/status.json"
  kill -TERM "$EPID"; wait "$EPID" 2>/dev/null
  umount "$E/etc/containerd"; umount "$E/etc"
fi
