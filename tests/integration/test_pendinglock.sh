# The pending-actions record in the state directory is updated by the daemon and by `apply`:
# read-modify-write under an exclusive flock on pending-actions.json.lock, waited for at most
# 5 s. Here another process (standing in for the daemon mid-update) holds the lock:
# apply neither blocks forever nor writes around it: it reports the lock, and fixes nothing it
# could not record (config.toml untouched). Once the lock is free apply records and fixes.
# (FileLockTests shows that updates are lost without the lock.) Sourced by run.sh.

L=$(mktemp -d "$H_TMP/plock.XXXXXX")
chmod 755 "$L"
mkdir -p "$L/etc/mirror-agent/mirrors.d" "$L/etc/containerd" "$L/var/lib/mirror-agent"
printf 'version = 2\n' > "$L/etc/containerd/config.toml"
printf 'runtimes: [containerd]\nprobe: {enabled: false}\n' > "$L/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5000"]\n' > "$L/etc/mirror-agent/mirrors.d/a.yaml"
LOCKFILE="$L/var/lib/mirror-agent/pending-actions.json.lock"
_h_spawn "$H_TMP/plock-holder.log" timeout 60 python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); fcntl.flock(fd, fcntl.LOCK_EX); time.sleep(30)' "$LOCKFILE"
LHOLDER=$H_LAST_PID
wait_until 5 bash -c "grep -q \"\$(stat -c %i '$LOCKFILE' 2>/dev/null || echo none)\" /proc/locks"
start=$(date +%s)
"$AGENT" apply --root "$L" > "$H_TMP/plock-apply1.out" 2>&1; rc=$?
took=$(( $(date +%s) - start ))
check "pending lock: apply waits a bounded time for a held lock (${took}s) and fails to act (exit $rc)" test "$rc" = 1 -a "$took" -le 15
check "pending lock: and says why" grep -q 'pending-actions.json.lock: still locked by another mirror-agent' "$H_TMP/plock-apply1.out"
check "pending lock: config.toml is not fixed without its record" test "$(cat "$L/etc/containerd/config.toml")" = "version = 2"
kill -TERM "$LHOLDER" 2>/dev/null
wait_until 5 _h_dead "$LHOLDER"
"$AGENT" apply --root "$L" > "$H_TMP/plock-apply2.out" 2>&1
check "pending lock: once it is free, apply fixes config.toml" grep -q config_path "$L/etc/containerd/config.toml"
check "pending lock: and records the restart it calls for" grep -q 'config.toml fixed' "$L/var/lib/mirror-agent/pending-actions.json"
