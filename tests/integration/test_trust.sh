# Issue 19: a hostile fragment or a local user cannot hang, crash, or read through the agent.
# A secret scan (with its negative control), a FIFO in mirrors.d under a running daemon, a huge
# duration on SIGHUP, and the unit's exposure against the README's figure. Sourced by run.sh.

T=$(mktemp -d "$H_TMP/trust.XXXXXX")
chmod 755 "$T"
mkdir -p "$T/etc/mirror-agent/mirrors.d" "$T/etc/containerd" "$T/var/lib/prometheus/node-exporter"
cat > "$T/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd]
daemon: {debounce: 50ms}
probe: {enabled: false}
YAML
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5999"]\n' > "$T/etc/mirror-agent/mirrors.d/10-good.yaml"

# --- the secrets, one per way a secret reaches the agent ------------------------------------
S_K3S="K3s-Auth-$RANDOM$RANDOM"; S_URL="Url-Userinfo-$RANDOM$RANDOM"; S_TOML="Toml-Auth-$RANDOM$RANDOM"
S_ROOTONLY="Root-Only-$RANDOM$RANDOM"; S_HEADER="Header-Token-$RANDOM$RANDOM"
SECRETS="$S_K3S|$S_URL|$S_TOML|$S_ROOTONLY|$S_HEADER"
# containerd's config.toml with registry credentials (0600, as an admin keeps such a file), and no
# config_path: the fix shows it as diff context.
cat > "$T/etc/containerd/config.toml" <<TOML
version = 2

[plugins."io.containerd.grpc.v1.cri".registry]

[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example".auth]
  password = "$S_TOML"
  username = "puller"
TOML
chmod 600 "$T/etc/containerd/config.toml"
# A root-only file, and a symlink to it made by another user.
printf '%s: here\n' "$S_ROOTONLY" > "$T/etc/root-only"
chmod 600 "$T/etc/root-only"

trust_secret_files() {
  # k3s auth of the wrong shape, a mirror URL with userinfo, a header token with a line break.
  printf 'configs:\n  r.example:\n    auth: "admin:%s"\n' "$S_K3S" > "$T/etc/mirror-agent/mirrors.d/20-auth.yaml"
  printf 'mirrors:\n  quay.io:\n    endpoint: ["https://admin:%s@m.example"]\n' "$S_URL" > "$T/etc/mirror-agent/mirrors.d/30-url.yaml"
  printf 'apiVersion: mirror-agent/v1\nkind: MirrorSet\nspec:\n  registries:\n    - source: ghcr.io\n      mirrors:\n        - url: https://m.example\n          headers: {Authorization: "Bearer %s\\nX: 1"}\n' "$S_HEADER" > "$T/etc/mirror-agent/mirrors.d/40-header.yaml"
}

O="$T.out"; mkdir -p "$O"
"$AGENT" apply --root "$T" --json > "$O/apply-good.json" 2> "$O/apply-good.err"
check "the valid state applies first (the fix of config.toml keeps its mode 0600)" test "$(stat -c %a "$T/etc/containerd/config.toml")" = 600
# Back to a config.toml that needs the fix, so --diff shows the auth table as context.
python3 - "$T/etc/containerd/config.toml" <<'PY'
import sys, re
p = sys.argv[1]; s = open(p).read()
open(p, "w").write(re.sub(r'\n\s*config_path = .*\n', '\n', s))
PY
"$AGENT" apply --root "$T" --dry-run --diff > "$O/diff.out" 2> "$O/diff.err"
check "apply --diff shows config.toml's auth table as context" grep -q 'registry.configs."r.example".auth' "$O/diff.out"
check "with the password redacted" grep -q 'password = "<redacted>"' "$O/diff.out"

ln -s ../../root-only "$T/etc/mirror-agent/mirrors.d/50-link.yaml"
chown -h nobody:nogroup "$T/etc/mirror-agent/mirrors.d/50-link.yaml"
trust_secret_files
# A plain value (no secret) that the full message quotes: the journal and validate may say it,
# STATUS=, status.json, status and metrics may not (they name a problem by place and kind).
V_PLAIN="Quoted-Input-$RANDOM$RANDOM"
printf 'mirrors:\n  docker.io:\n    endpoint: ["ftp://%s.example"]\n' "$V_PLAIN" > "$T/etc/mirror-agent/mirrors.d/05-plain.yaml"
# STATUS= is caught on a notify socket of our own, as systemd would receive it.
_h_spawn "$O/notify.err" timeout 600 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "ab", 0) as f:
    while True: f.write(s.recv(65536).replace(b"\n", b" ") + b"\n")' "$T.notify" "$O/notify.log"
wait_until 5 test -S "$T.notify"
NOTIFY_SOCKET="$T.notify" "$AGENT" run --root "$T" > "$O/daemon.log" 2>&1 &
TPID=$!
H_PIDS+=($TPID)
check "the daemon reports the bad files" wait_until 10 grep -q '"result" : "invalid"' "$T/run/mirror-agent/status.json"
"$AGENT" validate --root "$T" > "$O/validate.out" 2> "$O/validate.err"
"$AGENT" validate --root "$T" --json > "$O/validate.json" 2>&1
"$AGENT" apply --root "$T" --json > "$O/apply.json" 2>&1
"$AGENT" apply --root "$T" --dry-run --diff > "$O/apply-diff.out" 2>&1
"$AGENT" status --root "$T" > "$O/status.out" 2>&1
"$AGENT" status --root "$T" --json > "$O/status.json" 2>&1
check "validate quotes the planted plain value (so the checks below can see it)" grep -q "$V_PLAIN" "$O/validate.err" "$O/validate.out"
check "the daemon's log (the journal) says the whole message" grep -q "05-plain.yaml:3:.*$V_PLAIN" "$O/daemon.log"
check "status.json names the problem by place and kind" grep -q '"error" : ".*05-plain.yaml:3:[0-9]*: invalid mirror (+[0-9]* more)"' "$T/run/mirror-agent/status.json"
check "STATUS= names it by kind and place" grep -q 'STATUS=error: invalid mirror at .*05-plain.yaml:3:[0-9]* and [0-9]* more' "$O/notify.log"
check "status exits 2 for invalid input and points at validate" bash -c "'$AGENT' status --root '$T' >/dev/null 2>&1; test \$? = 2 && grep -q 'details: *mirror-agent validate' '$O/status.out'"
check "the plain value is in none of status.json, STATUS=, status, status --json or metrics" bash -c "! grep -rl '$V_PLAIN' '$T/run' '$O/notify.log' '$O/status.out' '$O/status.json' '$T/var/lib/prometheus' 2>/dev/null | grep ."
check "the refusal names the symlink and why" grep -q '50-link.yaml:1:1: refusing to trust this file: the symlink .*50-link.yaml is owned by uid' "$O/validate.err" "$O/validate.out"
check "the k3s auth of the wrong shape is reported without its value" grep -q 'auth must be a mapping.*its value is not shown' "$O/validate.err" "$O/validate.out"
check "the URL is reported with its userinfo redacted" grep -q 'https://\*\*\*@m.example' "$O/validate.err" "$O/validate.out"

# The scan: every output above, the daemon's log, status.json, metrics, and every file under the
# root that a non-root user can read (as nobody, so the kernel decides).
trust_scan() {
  local found=0
  # (grep exits 2 when one of its paths is missing even if another matched: judge by its output.)
  grep -rlE "$SECRETS" "$O" "$T/run" "$T/var/lib/prometheus" 2>/dev/null | grep . && found=1
  chmod o+x "$H_TMP"
  setpriv --reuid=nobody --regid=nogroup --clear-groups grep -rlE "$SECRETS" "$T" 2>/dev/null | grep -v -e '/mirrors.d/' | grep . && found=1
  chmod o-x "$H_TMP"
  [ "$found" = 0 ]
}
check "no planted secret in stdout, stderr, --json, --diff, the log, status.json, metrics or any file a non-root user can read" trust_scan
# Negative control: a secret where the scan looks is found.
echo "$S_TOML" > "$T/var/lib/prometheus/node-exporter/planted.prom"
check "negative control: the scan finds a secret planted in the metrics directory" bash -c "$(declare -f trust_scan); SECRETS='$SECRETS' O='$O' T='$T' H_TMP='$H_TMP'; ! trust_scan"
rm -f "$T/var/lib/prometheus/node-exporter/planted.prom"
cp "$T/etc/containerd/config.toml" "$T/etc/containerd/world-readable-copy.toml"; chmod 644 "$T/etc/containerd/world-readable-copy.toml"
check "negative control: the scan finds a secret in a world-readable file" bash -c "$(declare -f trust_scan); SECRETS='$SECRETS' O='$O' T='$T' H_TMP='$H_TMP'; ! trust_scan"
rm -f "$T/etc/containerd/world-readable-copy.toml"
rm -f "$T"/etc/mirror-agent/mirrors.d/[2345]0-*.yaml "$T/etc/mirror-agent/mirrors.d/05-plain.yaml"

# --- a FIFO in mirrors.d under the running daemon ---------------------------------------------
check "the daemon is back to a good state" wait_until 10 grep -q '"result" : "ok"' "$T/run/mirror-agent/status.json"
mkfifo "$T/etc/mirror-agent/mirrors.d/60-fifo.yaml"
check "a FIFO in mirrors.d is reported, not read" wait_until 10 grep -q '60-fifo.yaml:1:1: not a regular file' "$T/run/mirror-agent/status.json"
rm -f "$T/etc/mirror-agent/mirrors.d/60-fifo.yaml"
printf 'mirrors:\n  registry.k8s.io:\n    endpoint: ["http://127.0.0.1:5996"]\n' > "$T/etc/mirror-agent/mirrors.d/70-later.yaml"
check "and a later valid change is applied" wait_until 10 test -f "$T/etc/containerd/certs.d/registry.k8s.io/hosts.toml"

# --- a duration past Int64 nanoseconds on SIGHUP ----------------------------------------------
cp "$T/etc/mirror-agent/agent.yaml" "$O/agent.yaml.good"
printf 'runtimes: [containerd]\ndaemon: {debounce: 2562048h}\nprobe: {enabled: false}\n' > "$T/etc/mirror-agent/agent.yaml"
kill -HUP "$TPID"
check "a huge duration on SIGHUP is a range error with file:line:col" wait_until 10 grep -q 'agent.yaml:2:20: daemon.debounce "2562048h" is out of range: at most 1h' "$O/daemon.log"
check "and the previous settings stay in force" grep -q 'agent.yaml is invalid; the previous settings stay in force' "$O/daemon.log"
check "and the daemon keeps running" kill -0 "$TPID"
cp "$O/agent.yaml.good" "$T/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  gcr.io:\n    endpoint: ["http://127.0.0.1:5995"]\n' > "$T/etc/mirror-agent/mirrors.d/80-after.yaml"
check "and applies later changes" wait_until 10 test -f "$T/etc/containerd/certs.d/gcr.io/hosts.toml"
start=$(date +%s%N); kill -TERM "$TPID"; wait "$TPID" 2>/dev/null
check "SIGTERM ends it" bash -c "! kill -0 $TPID 2>/dev/null"

# --- a node error naming a TLS file: in status.json (root's), not in STATUS= (everyone's) ------
N=$(mktemp -d "$H_TMP/trustnode.XXXXXX"); chmod 755 "$N"
mkdir -p "$N/etc/mirror-agent/mirrors.d" "$N/etc/containerd"
printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s}\n' > "$N/etc/mirror-agent/agent.yaml"
N_PLAIN="Ca-Path-$RANDOM$RANDOM"
# (Nothing listens on 127.0.0.1:5994: the CA file is loaded, and missed, before any connection.)
printf 'mirrors:\n  docker.io:\n    endpoint: ["https://127.0.0.1:5994"]\nconfigs:\n  "127.0.0.1:5994":\n    tls: {ca_file: /etc/mirror-agent/%s.crt}\n' "$N_PLAIN" > "$N/etc/mirror-agent/mirrors.d/a.yaml"
_h_spawn "$H_TMP/trustnode-notify.err" timeout 600 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "ab", 0) as f:
    while True: f.write(s.recv(65536).replace(b"\n", b" ") + b"\n")' "$N.notify" "$H_TMP/trustnode-notify.log"
wait_until 5 test -S "$N.notify"
NOTIFY_SOCKET="$N.notify" "$AGENT" run --root "$N" > "$H_TMP/trustnode.log" 2>&1 &
NPID=$!
H_PIDS+=($NPID)
check "node error: status.json (root's) names the unreadable CA file" wait_until 15 grep -q "cannot read /etc/mirror-agent/$N_PLAIN.crt" "$N/run/mirror-agent/status.json"
check "node error: STATUS= says a TLS file cannot be read, without its path" wait_until 10 grep -q 'STATUS=node configuration error: cannot read a TLS file named in the desired state' "$H_TMP/trustnode-notify.log"
check "node error: the path is not in STATUS=" bash -c "! grep -q '$N_PLAIN' '$H_TMP/trustnode-notify.log'"
kill -TERM "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null

# --- the unit: exposure no higher than the README says ----------------------------------------
readme_exposure=$(python3 -c 'import re,sys; m=re.search(r"\*\*exposure\s+([0-9.]+)\*\*", open(sys.argv[1]).read()); print(m.group(1) if m else "")' "$here/../../README.md")
unit_exposure=$(systemd-analyze security --offline=yes "$here/../../packaging/systemd/mirror-agent.service" --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for mirror-agent.service: \([0-9.]*\).*/\1/p')
check "the unit's exposure (offline) ${unit_exposure:-none} <= the README's ${readme_exposure:-none}" python3 -c "import sys; sys.exit(0 if '$unit_exposure' and '$readme_exposure' and float('$unit_exposure') <= float('$readme_exposure') else 1)"
