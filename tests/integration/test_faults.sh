# R5 and R6: a full disk, a read-only /etc and no D-Bus: the daemon keeps running, reports,
# retries and loses nothing; registry credentials never show up in logs, status, metrics or
# files. Sourced by run.sh.

F=$(mktemp -d "$H_TMP/faults.XXXXXX")
mkdir -p "$F/etc/mirror-agent/mirrors.d" "$F/etc/containerd/certs.d" "$F/var/lib/prometheus/node-exporter"
cat > "$F/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd]
daemon: {debounce: 50ms}
probe: {enabled: false}
YAML
# k3s registries.yaml with credentials (R6).
cat > "$F/etc/mirror-agent/mirrors.d/k3s.yaml" <<YAML
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5999"]
configs:
  "127.0.0.1:5999":
    auth: {username: puller, password: S3cr3t-Pa55w0rd, auth: QmFzZTY0U2VjcmV0, identity_token: T0k3n-V4lue}
YAML
"$AGENT" run --root "$F" > "$H_TMP/faults.log" 2>&1 &
FPID=$!
H_PIDS+=($FPID)
check "the daemon applies the state with credentials in it" wait_until 10 test -f "$F/etc/containerd/certs.d/docker.io/hosts.toml"
"$AGENT" validate --root "$F" --json > "$H_TMP/validate.json" 2>&1
"$AGENT" apply --root "$F" --json --dry-run > "$H_TMP/apply.json" 2>&1
"$AGENT" status --root "$F" --json > "$H_TMP/status.json" 2>&1
check "no credential appears in logs, status, metrics, JSON output or written files" bash -c "! grep -rlE 'S3cr3t-Pa55w0rd|QmFzZTY0U2VjcmV0|T0k3n-V4lue' '$H_TMP/faults.log' '$H_TMP/validate.json' '$H_TMP/apply.json' '$H_TMP/status.json' '$F/etc/containerd' '$F/var' '$F/run'"
check "and the warning says they are not written" grep -q 'credentials for 127.0.0.1:5999 are not written by this version' "$H_TMP/faults.log"

# A full disk: the hosts directory on a tiny tmpfs that is filled up.
mount -t tmpfs -o size=64k tmpfs "$F/etc/containerd/certs.d" || true
if mountpoint -q "$F/etc/containerd/certs.d"; then
  head -c 60000 /dev/zero > "$F/etc/containerd/certs.d/.filler" 2>/dev/null
  head -c 65536 /dev/zero >> "$F/etc/containerd/certs.d/.filler" 2>/dev/null
  printf 'mirrors:\n  ghcr.io:\n    endpoint: ["http://127.0.0.1:5998"]\n' > "$F/etc/mirror-agent/mirrors.d/more.yaml"
  check "with the disk full the pass fails and says so in status.json" wait_until 10 bash -c "grep -q '\"result\" : \"failed\"' '$F/run/mirror-agent/status.json'"
  check "the daemon keeps running" kill -0 "$FPID"
  check "it retries with backoff" wait_until 10 bash -c "[ \"\$(grep -c 'retrying in' '$H_TMP/faults.log')\" -ge 2 ]"
  check "no half-written file is left at a real name" bash -c "! ls '$F/etc/containerd/certs.d/ghcr.io/hosts.toml' 2>/dev/null || python3 -c 'import tomllib,sys; tomllib.loads(open(sys.argv[1]).read())' '$F/etc/containerd/certs.d/ghcr.io/hosts.toml'"
  rm -f "$F/etc/containerd/certs.d/.filler"
  check "once there is room again, the retry puts it in force (nothing lost)" wait_until 70 test -f "$F/etc/containerd/certs.d/ghcr.io/hosts.toml"
  check "and status is ok again" wait_until 10 bash -c "grep -q '\"result\" : \"ok\"' '$F/run/mirror-agent/status.json'"
  umount "$F/etc/containerd/certs.d"
else
  check "a tmpfs can be mounted for the full-disk test (needs root)" false
fi

# A read-only /etc/containerd (bind mount remounted read-only).
mount --bind "$F/etc/containerd" "$F/etc/containerd" && mount -o remount,bind,ro "$F/etc/containerd"
if mountpoint -q "$F/etc/containerd"; then
  printf 'mirrors:\n  quay.io:\n    endpoint: ["http://127.0.0.1:5997"]\n' > "$F/etc/mirror-agent/mirrors.d/ro.yaml"
  check "with /etc/containerd read-only the pass fails and says so" wait_until 10 bash -c "grep -q 'Read-only file system' '$F/run/mirror-agent/status.json'"
  check "the daemon keeps running" kill -0 "$FPID"
  umount "$F/etc/containerd"
  check "writable again, the retry puts it in force" wait_until 70 test -f "$F/etc/containerd/certs.d/quay.io/hosts.toml"
else
  check "a read-only bind mount can be made (needs root)" false
fi

# No D-Bus / no systemd for this root: a config fix is reported as pending, nothing crashes.
cp /etc/containerd/config.toml "$F/etc/containerd/config.toml" 2>/dev/null || printf 'version = 2\n' > "$F/etc/containerd/config.toml"
"$AGENT" apply --root "$F" > "$H_TMP/nodbus.out" 2>&1; rc=$?
check "apply with no systemd for the root exits 0" test "$rc" -eq 0
check "and reports the containerd restart as pending" grep -q 'restart pending' "$H_TMP/nodbus.out"
kill -TERM "$FPID"; wait "$FPID" 2>/dev/null
