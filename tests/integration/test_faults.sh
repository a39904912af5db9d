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
# Issue 15: the credentials are written for containerd, into config.toml made 0600; every other
# written file, and every file others could read, is checked for them.
check "the credentials are written into containerd's config.toml, mode 0600" wait_until 10 bash -c "grep -q 'S3cr3t-Pa55w0rd' '$F/etc/containerd/config.toml' && [ \"\$(stat -c %a '$F/etc/containerd/config.toml')\" = 600 ]"
f_readable=$(find "$F" -type f -perm /044 ! -path "$F/etc/mirror-agent/*")
check "no credential appears in logs, status, metrics, JSON output, hosts.toml or any written file others can read" lacks 'S3cr3t-Pa55w0rd|QmFzZTY0U2VjcmV0|T0k3n-V4lue' "$H_TMP/faults.log" "$H_TMP/validate.json" "$H_TMP/apply.json" "$H_TMP/status.json" "$F/etc/containerd/certs.d" "$F/run" $f_readable

# absent_or_whole FILE: FILE does not exist, or it is a whole hosts.toml: not empty (an empty
# file parses as valid TOML), valid TOML, and with the [host."..."] table and the header every
# rendered file has. A write cut short at the real name fails this.
absent_or_whole() {
  [ -e "$1" ] || return 0
  python3 - "$1" <<'PY'
import sys, tomllib
text = open(sys.argv[1], "rb").read().decode()
doc = tomllib.loads(text)
assert text.startswith("# Managed by mirror-agent."), "no header"
assert isinstance(doc.get("host"), dict) and doc["host"], "no [host] table"
PY
}
: > "$H_TMP/empty-hosts.toml"
check "control: an empty hosts.toml is not 'whole' (it parses as TOML all the same)" fails absent_or_whole "$H_TMP/empty-hosts.toml"
printf '# Managed by mirror-agent.\nserver = "https://ghcr.io"\n[host."http://127.0.0' > "$H_TMP/cut-hosts.toml"
check "control: a hosts.toml cut short is not 'whole'" fails absent_or_whole "$H_TMP/cut-hosts.toml"

# A full disk: the hosts directory on a tiny tmpfs that is filled up.
mount -t tmpfs -o size=64k tmpfs "$F/etc/containerd/certs.d" || true
if mountpoint -q "$F/etc/containerd/certs.d"; then
  head -c 60000 /dev/zero > "$F/etc/containerd/certs.d/.filler" 2>/dev/null
  head -c 65536 /dev/zero >> "$F/etc/containerd/certs.d/.filler" 2>/dev/null
  printf 'mirrors:\n  ghcr.io:\n    endpoint: ["http://127.0.0.1:5998"]\n' > "$F/etc/mirror-agent/mirrors.d/more.yaml"
  check "with the disk full the pass fails and says so in status.json" wait_until 10 bash -c "grep -q '\"result\" : \"failed\"' '$F/run/mirror-agent/status.json'"
  check "the daemon keeps running" kill -0 "$FPID"
  check "it retries with backoff" wait_until 10 bash -c "[ \"\$(grep -c 'retrying in' '$H_TMP/faults.log')\" -ge 2 ]"
  check "no half-written file is left at a real name" absent_or_whole "$F/etc/containerd/certs.d/ghcr.io/hosts.toml"
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

# A read-only /etc/containers with both runtimes: one pass writes both runtimes' files in one
# batch, and CRI-O's failure is CRI-O's alone: containerd's hosts.toml is written and its
# config.toml fix (done only when containerd's files are all in place) still happens.
R2=$(mktemp -d "$H_TMP/faults-ro2.XXXXXX")
mkdir -p "$R2/etc/mirror-agent/mirrors.d" "$R2/etc/containers"
printf 'runtimes: [containerd, crio]\nprobe: {enabled: false}\n' > "$R2/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  quay.io:\n    endpoint: ["http://127.0.0.1:5997"]\n' > "$R2/etc/mirror-agent/mirrors.d/ro.yaml"
mount --bind "$R2/etc/containers" "$R2/etc/containers" && mount -o remount,bind,ro "$R2/etc/containers"
if mountpoint -q "$R2/etc/containers"; then
  "$AGENT" apply --root "$R2" > "$H_TMP/faults-ro2.out" 2>&1; rc=$?
  umount "$R2/etc/containers"
  check "with /etc/containers read-only, apply exits 1 and names CRI-O's directory" \
    bash -c "[ $rc -eq 1 ] && grep -q 'etc/containers/registries.conf.d: cannot create directory: Read-only file system' '$H_TMP/faults-ro2.out'"
  check "containerd's hosts.toml is written in the same pass" test -f "$R2/etc/containerd/certs.d/quay.io/hosts.toml"
  check "and containerd's config.toml fix goes on (the failure is not counted against containerd)" grep -q 'config_path' "$R2/etc/containerd/config.toml"
  check "control: CRI-O's drop-in is not there" test ! -e "$R2/etc/containers/registries.conf.d/99-mirror-agent.conf"
else
  check "a read-only bind mount of /etc/containers can be made (needs root)" false
fi

# A --root that is not /: a config fix is reported as pending before any bus is tried.
cp /etc/containerd/config.toml "$F/etc/containerd/config.toml" 2>/dev/null || printf 'version = 2\n' > "$F/etc/containerd/config.toml"
"$AGENT" apply --root "$F" > "$H_TMP/nodbus.out" 2>&1; rc=$?
check "apply with --root exits 0" test "$rc" -eq 0
check "and reports the containerd restart as pending because of --root" grep -q 'restart pending: --root is' "$H_TMP/nodbus.out"
kill -TERM "$FPID"; wait "$FPID" 2>/dev/null

# No D-Bus, for real: `apply` on this host's / (--root /), in a private mount namespace where /etc
# and /var/lib are overlays onto scratch directories (nothing reaches the host's files) and /run
# is an empty tmpfs. With /run/systemd/system present (systemd "running") the agent has to try
# the bus: the system bus socket and systemd's private socket are both absent. Without it, it
# must say systemd is not running. Either way: hosts.toml written, restart pending, exit 0.
nobus_apply() { # MODE (systemd|nosystemd) -> output in $H_TMP/nobus-MODE.out
  local S; S=$(mktemp -d "$H_TMP/nobus.XXXXXX")
  mkdir -p "$S/etc-up" "$S/etc-work" "$S/var-up" "$S/var-work"; chmod 755 "$S/etc-up" "$S/var-up"
  timeout 60 unshare -m --propagation private bash -c '
    S=$1 AGENT=$2 MODE=$3
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$S/etc-up,workdir=$S/etc-work" /etc || exit 90
    mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$S/var-up,workdir=$S/var-work" /var/lib || exit 90
    mount -t tmpfs -o mode=755 tmpfs /run || exit 90
    [ "$MODE" = nosystemd ] || mkdir -p /run/systemd/system
    rm -rf /etc/mirror-agent /var/lib/mirror-agent
    mkdir -p /etc/mirror-agent/mirrors.d /etc/containerd
    printf "version = 2\n" > /etc/containerd/config.toml
    printf "runtimes: [containerd]\nprobe: {enabled: false}\n" > /etc/mirror-agent/agent.yaml
    [ "$MODE" = never ] && printf "restart: {policy: never}\n" >> /etc/mirror-agent/agent.yaml
    printf "mirrors:\n  nobus.invalid:\n    endpoint: [\"http://127.0.0.1:5996\"]\n" > /etc/mirror-agent/mirrors.d/nobus.yaml
    "$AGENT" apply --root /; echo "exit $?"
    test -f /etc/containerd/certs.d/nobus.invalid/hosts.toml && echo "hosts.toml written"
    grep -q containerdRestart /var/lib/mirror-agent/pending-actions.json 2>/dev/null && echo "restart recorded"
  ' _ "$S" "$AGENT" "$1" > "$H_TMP/nobus-$1.out" 2>&1
  sed 's/^/#   /' "$H_TMP/nobus-$1.out"
}
nobus_apply systemd
check "no D-Bus (systemd present, no bus socket): apply on / exits 0" grep -qx 'exit 0' "$H_TMP/nobus-systemd.out"
check "no D-Bus: the bus was tried and the restart is pending with the bus error" grep -q 'restart pending: cannot connect to the system D-Bus (nor, as root, to systemd.s private socket)' "$H_TMP/nobus-systemd.out"
check "no D-Bus: the hosts.toml files are in force all the same" grep -qx 'hosts.toml written' "$H_TMP/nobus-systemd.out"
check "no D-Bus: the restart stays recorded for the next run (pending-actions.json)" grep -qx 'restart recorded' "$H_TMP/nobus-systemd.out"
check "control: the --root run above never reached the bus (its message is not the bus error)" lacks 'D-Bus' "$H_TMP/nodbus.out"
nobus_apply nosystemd
check "no systemd: apply on / exits 0 and says systemd is not running" bash -c "grep -qx 'exit 0' '$H_TMP/nobus-nosystemd.out' && grep -q 'restart pending: systemd is not running here' '$H_TMP/nobus-nosystemd.out'"
# restart.policy: never, on / with systemd present: the policy decides before any bus is tried,
# the restart is reported pending for that reason and stays recorded.
nobus_apply never
check "policy never: apply on / exits 0, the restart pending because of the policy (not a bus error)" \
  bash -c "grep -qx 'exit 0' '$H_TMP/nobus-never.out' && grep -q 'restart pending: restart policy is never' '$H_TMP/nobus-never.out' && lacks 'D-Bus' '$H_TMP/nobus-never.out'"
check "policy never: the restart stays recorded in pending-actions.json" grep -qx 'restart recorded' "$H_TMP/nobus-never.out"
check "the namespace left the host alone (no /etc/mirror-agent/mirrors.d/nobus.yaml on the host)" test ! -e /etc/mirror-agent/mirrors.d/nobus.yaml
