# The inotify queue overflows while the daemon is not reading (SIGSTOP): more events than
# fs.inotify.max_queued_events (read, never changed) pile up in mirrors.d, the kernel drops the
# rest and queues IN_Q_OVERFLOW, and the last, valid change is among the dropped. The daemon must
# say so and read everything again. Sourced by run.sh.
#
# The flood uses names the daemon ignores on purpose (its own temporary-file prefix): an event for
# any other name in mirrors.d makes the daemon re-read everything anyway, which would hide a
# broken overflow rescan. Here only IN_Q_OVERFLOW can tell it that the final change happened.

V=$(mktemp -d "$H_TMP/overflow.XXXXXX")
chmod 755 "$V"
mkdir -p "$V/etc/mirror-agent/mirrors.d" "$V/etc/containerd"
printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\n' > "$V/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5999"]\n' > "$V/etc/mirror-agent/mirrors.d/10-first.yaml"
"$AGENT" run --root "$V" > "$H_TMP/overflow.log" 2>&1 &
VPID=$!
H_PIDS+=($VPID)
check "overflow: the daemon applies the first state" wait_until 10 test -f "$V/etc/containerd/certs.d/docker.io/hosts.toml"
max_queued=$(cat /proc/sys/fs/inotify/max_queued_events)
kill -STOP "$VPID"
# Three events per round (IN_CREATE, IN_CLOSE_WRITE, IN_DELETE), alternating between two names so
# that no two queued events are alike (the kernel merges an event equal to the last one queued).
# Bounded: max_queued + 3000 events, a few seconds at most.
flood_events=$(timeout 120 python3 - "$V/etc/mirror-agent/mirrors.d" "$max_queued" <<'PY'
import os, sys
d, limit = sys.argv[1], int(sys.argv[2])
rounds = (limit + 3000) // 3 + 1
for i in range(rounds):
    p = os.path.join(d, ".mirror-agent-tmp-flood-%s" % "ab"[i % 2])
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.unlink(p)
print(rounds * 3)
PY
)
# The final, valid change: a new fragment and an edit of the first one.
printf 'mirrors:\n  quay.io:\n    endpoint: ["http://127.0.0.1:5998"]\n' > "$V/etc/mirror-agent/mirrors.d/20-final.yaml"
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5997"]\n' > "$V/etc/mirror-agent/mirrors.d/10-first.yaml"
kill -CONT "$VPID"
check "overflow: ${flood_events:-no} events queued while stopped, more than max_queued_events ($max_queued)" test "${flood_events:-0}" -gt "$max_queued"
check "overflow: the daemon logs that the inotify queue overflowed" wait_until 10 grep -q 'inotify event queue overflowed' "$H_TMP/overflow.log"
check "overflow: it converges to the final state (the new fragment is rendered)" wait_until 10 test -f "$V/etc/containerd/certs.d/quay.io/hosts.toml"
check "overflow: and the edit of the first fragment" wait_until 10 grep -q '127.0.0.1:5997' "$V/etc/containerd/certs.d/docker.io/hosts.toml"
check "overflow: the daemon is still running" kill -0 "$VPID"
kill -TERM "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null
