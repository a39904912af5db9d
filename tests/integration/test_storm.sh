# Issue 22: a persistent write failure is retried on the announced schedule (1, 2, 4, ... 60 s),
# not per event, and logs once per retry; the other runtime's files stay in force meanwhile.
# The host is emulated the way the unit's ProtectSystem=strict makes it: /etc read-only, with
# /etc/containerd (a ReadWritePaths= entry) writable, and no /etc/containers at all, while
# agent.yaml asks for crio explicitly. Sourced by run.sh; takes about 65 s.

S=$(mktemp -d "$H_TMP/storm.XXXXXX")
mkdir -p "$S/etc/mirror-agent/mirrors.d" "$S/etc/containerd"
cat > "$S/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd, crio]
daemon: {debounce: 50ms}
probe: {enabled: false}
YAML
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5996"]\n' > "$S/etc/mirror-agent/mirrors.d/a.yaml"
storm_ok=0
# (A bind mount copies the flags of the mount it comes from, so /etc/containerd is bound first.)
if mount --bind "$S/etc" "$S/etc" && mount --bind "$S/etc/containerd" "$S/etc/containerd" && mount -o remount,bind,ro "$S/etc"; then
  storm_ok=1
fi
check "an /etc read-only but for /etc/containerd can be made (needs root)" test "$storm_ok" = 1
if [ "$storm_ok" = 1 ]; then
  # Every log line stamped with a monotonic time by a reader, so the gaps can be measured.
  # (bash's own clock, in the reader subshell: nothing to start up, so no line is stamped late.)
  "$AGENT" run --root "$S" > >(while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done > "$H_TMP/storm.log") 2>&1 &
  SPID=$!
  H_PIDS+=($SPID)
  # Activity in a watched directory that the retry will look at anyway: it must not start
  # passes of its own while a retry is due.
  (for i in $(seq 1 20); do mkdir -p "$S/etc/containerd/certs.d" && touch "$S/etc/containerd/certs.d/unrelated-$i"; sleep 0.5; done) &
  sleep 62
  kill -TERM "$SPID"; wait "$SPID" 2>/dev/null
  sleep 0.2
  grep -c 'retrying in' "$H_TMP/storm.log" > "$H_TMP/storm.count" || true
  echo "# storm: $(cat "$H_TMP/storm.count") failing passes, $(wc -l < "$H_TMP/storm.log") log lines in 62 s:"
  sed "s|$S||g; s/^/#   /" "$H_TMP/storm.log" | cut -c1-200
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
  check "a persistent failure logs one line per retry: at most 25 lines in all (got $lines)" test "$lines" -le 25
  check "status names what failed: the crio drop-in" grep -q 'containers' "$S/run/mirror-agent/status.json"
  check "the containerd hosts.toml is in force all the same (partial success kept)" test -f "$S/etc/containerd/certs.d/docker.io/hosts.toml"
  check "status says which runtime failed and which is ok" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["name"]: x for x in d["runtimes"]}
print(json.dumps(d["runtimes"], indent=1))
c, o = r["containerd"], r["crio"]
sys.exit(0 if "error" not in c and c["state"] != "write-failed" and o["state"] == "write-failed" and o["error"].endswith("/etc/containers: cannot create directory: Read-only file system") else 1)' "$S/run/mirror-agent/status.json"
  umount "$S/etc/containerd"; umount "$S/etc"
fi
