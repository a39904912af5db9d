# shellcheck shell=bash
# Test harness for the integration and end-to-end suites: real registries (Debian's
# docker-registry, distribution 2.8), a private containerd, a hand-made OCI image, stub servers
# that misbehave on purpose, and a tiny ok / not ok reporter.
#
# Ground rules, so a failing or interrupted run never leaves anything behind:
#   * everything listens on 127.0.0.1 only, and all state lives under $H_TMP;
#   * every process is started through _h_spawn, which records its pid; harness_cleanup ends
#     them (TERM, then KILL) and removes $H_TMP. Callers register it once:
#         harness_init; harness_trap
#     which is trap harness_cleanup EXIT plus INT/TERM traps that exit (see harness_trap);
#   * a watchdog started by harness_init ends the recorded processes if the calling shell dies
#     without running its trap (SIGKILL, OOM), because traps cannot cover that;
#   * every wait is bounded both in attempts and in wall-clock time.
#
# Call start_* functions directly, never inside $( ): a command substitution is a subshell, and
# the pid it records would be lost to the caller's harness_cleanup.
#
# The library only defines functions and variables; it sets no shell options, and works under
# `set -u` (and `set -e`, if a caller insists).

# Re-sourcing must not forget processes that are already running.
declare -p H_PIDS >/dev/null 2>&1 || H_PIDS=()
: "${H_PASSED:=0}" "${H_FAILED:=0}"
# Hard cap on how long any helper process may live, whatever happens to the caller.
: "${H_MAX_LIFETIME:=3600}"

# ----------------------------------------------------------------------------------------------
# Setup and teardown
# ----------------------------------------------------------------------------------------------

# harness_install_deps: install the tools the harness drives, only those that are missing.
harness_install_deps() {
  local -A pkg_for=([docker-registry]=docker-registry [skopeo]=skopeo [containerd]=containerd
    [ctr]=containerd [openssl]=openssl [python3]=python3 [curl]=curl [htpasswd]=apache2-utils [strace]=strace)
  local cmd pkgs=()
  for cmd in "${!pkg_for[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${pkg_for[$cmd]}")
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "harness: missing packages ${pkgs[*]} and not root; install them first" >&2
    return 1
  fi
  # Another apt may be running in the background (image provisioning writes "done" to
  # /tmp/apt.log when finished). Give it a bounded head start, then let apt itself wait for the
  # dpkg lock, also bounded: both timeouts fail loudly instead of hanging the suite.
  if [ -f /tmp/apt.log ]; then
    wait_until 300 grep -q done /tmp/apt.log || echo "harness: background apt not done after 300 s; trying anyway" >&2
  fi
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  echo "harness: installing ${pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${pkgs[@]}" >&2
}

# harness_init: a scratch directory ($H_TMP) and the watchdog. Call once per run.
harness_init() {
  H_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mirror-agent-it.XXXXXX") || return 1
  export H_TMP
  : > "$H_TMP/pids"
  _h_start_watchdog
}

# harness_trap: the recommended traps. EXIT does the work; INT/TERM turn into an exit so the
# script stops instead of resuming after the handler (which a bare `trap f INT` would do).
harness_trap() {
  trap harness_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# harness_cleanup: end every recorded process, newest first, then remove $H_TMP. Idempotent.
harness_cleanup() {
  local i pid
  for ((i = ${#H_PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${H_PIDS[$i]}" 2>/dev/null || true; done
  for ((i = ${#H_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${H_PIDS[$i]}
    # containerd flushes its metadata on TERM; give everyone up to 5 s before KILL, and KILL
    # another 5 s (a process stuck in the kernel cannot be reaped; then we skip it, not hang).
    if _h_bounded 50 0.1 _h_dead "$pid" || { kill -KILL "$pid" 2>/dev/null; _h_bounded 50 0.1 _h_dead "$pid"; }; then
      wait "$pid" 2>/dev/null || true # reap; also keeps bash from printing "Terminated" notices
    else
      echo "harness: pid $pid survived SIGKILL" >&2
    fi
  done
  H_PIDS=()
  if [ -n "${H_TMP:-}" ] && [ -d "$H_TMP" ]; then
    # A containerd killed mid-unpack can leave a snapshot mounted; rm -rf must not walk into it.
    local m
    awk -v p="$H_TMP/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts 2>/dev/null | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$H_TMP"
  fi
  unset TEST_CA_CRT TEST_CA_KEY TEST_CA_DIR TEST_SERVER_CRT TEST_SERVER_KEY CTRD_SOCK H_TLS_ADDRS
  return 0
}

# _h_spawn LOG CMD...: start CMD in the background with output to LOG and record its pid in
# H_PIDS (for harness_cleanup) and in $H_TMP/pids (for the watchdog). Sets H_LAST_PID.
# REGISTRY_* variables are dropped because docker-registry lets them override its config file.
_h_spawn() {
  local log=$1; shift
  (
    unset "${!REGISTRY_@}"
    exec "$@"
  ) > "$log" 2>&1 < /dev/null &
  H_LAST_PID=$!
  H_PIDS+=("$H_LAST_PID")
  # pid plus start time, so the watchdog never signals a recycled pid.
  echo "$H_LAST_PID $(_h_starttime "$H_LAST_PID")" >> "$H_TMP/pids"
}

_h_starttime() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
# _h_dead PID: gone, or a zombie. Orphans are reparented to pid 1, and a container's pid 1 may
# reap late (the sandbox this was written in does), so kill -0 alone would call a zombie alive.
_h_dead() {
  kill -0 "$1" 2>/dev/null || return 0
  [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# The watchdog polls the shell that called harness_init; once that shell is gone (or the
# lifetime cap is reached) it ends the recorded processes itself and removes $H_TMP.
# harness_cleanup normally kills it first, so in the ordinary case it never acts.
_h_start_watchdog() {
  _h_spawn "$H_TMP/watchdog.log" python3 -c '
import os, signal, sys, time
owner, pidfile, cap = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def stat(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(") ", 1)[1].split()
    except OSError:
        return None
def alive(pid):  # a zombie counts as dead: our orphans may wait a while for pid 1 to reap them
    st = stat(pid)
    return st is not None and st[0] != "Z"
def starttime(pid):
    st = stat(pid)
    return st and st[19]
end = time.monotonic() + cap
while alive(owner) and time.monotonic() < end:
    time.sleep(1)
try:
    recorded = [l.split() for l in open(pidfile)]
except OSError:
    sys.exit(0)
me = os.getpid()
ours = [int(p[0]) for p in recorded if len(p) == 2 and int(p[0]) != me and starttime(int(p[0])) == p[1]]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in ours:
        try: os.kill(pid, sig)
        except OSError: pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
# The scratch directory too, unless something is still mounted in it (then leave it to a human).
tmp = os.path.dirname(pidfile)
if not any(l.split()[1].startswith(tmp + "/") for l in open("/proc/self/mounts")):
    import shutil; shutil.rmtree(tmp, ignore_errors=True)
print("watchdog: owner gone or lifetime cap reached; ended", ours, flush=True)
' "$$" "$H_TMP/pids" "$H_MAX_LIFETIME"
}

# ----------------------------------------------------------------------------------------------
# Waiting
# ----------------------------------------------------------------------------------------------

# _h_bounded TRIES PAUSE CMD...: run CMD up to TRIES times, PAUSE seconds apart.
_h_bounded() {
  local tries=$1 pause=$2 n; shift 2
  for ((n = 0; n < tries; n++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep "$pause"
  done
  return 1
}

# wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds; give up after SECONDS of wall
# clock or SECONDS*10 attempts, whichever comes first. External commands are additionally run
# under `timeout` so one attempt that hangs cannot outlive the deadline; shell functions and
# builtins cannot be, so keep those non-blocking.
wait_until() {
  local limit=$1 n left; shift
  local deadline=$((SECONDS + limit)) tries=$((limit * 10))
  for ((n = 0; n < tries; n++)); do
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || return 1
    case $(type -t "$1") in
      file) timeout "$left" "$@" >/dev/null 2>&1 && return 0 ;;
      *) "$@" >/dev/null 2>&1 && return 0 ;;
    esac
    sleep 0.1
  done
  return 1
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago. There is an unavoidable window
# before the caller binds it, so start_* functions retry with a new port if their server dies.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ----------------------------------------------------------------------------------------------
# TLS
# ----------------------------------------------------------------------------------------------

# make_test_ca: a throwaway CA and one server certificate valid for IP 127.0.0.1 and localhost
# (Go rejects certificates without a SAN, so the CN alone would not do). Runs once per harness.
# Exports TEST_CA_CRT, TEST_CA_KEY, TEST_SERVER_CRT, TEST_SERVER_KEY, and TEST_CA_DIR: a directory
# holding only ca.crt, in the layout containers/image wants for --cert-dir (a *.key there
# without a matching *.cert is an error, which is why it is not the pki directory itself).
make_test_ca() {
  [ -n "${TEST_CA_CRT:-}" ] && [ -f "$TEST_CA_CRT" ] && return 0
  local d="$H_TMP/pki"
  mkdir -p "$d/ca-only"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=mirror-agent test CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || return 1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null || return 1
  cp "$d/ca.crt" "$d/ca-only/ca.crt"
  export TEST_CA_CRT="$d/ca.crt" TEST_CA_KEY="$d/ca.key" TEST_CA_DIR="$d/ca-only" \
    TEST_SERVER_CRT="$d/server.crt" TEST_SERVER_KEY="$d/server.key"
}

# ----------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------

# start_registry NAME [tls]: docker-registry on a free loopback port, storage under $H_TMP.
# Exports REG_<NAME>_PORT, REG_<NAME>_ADDR (127.0.0.1:PORT), REG_<NAME>_LOG, REG_<NAME>_URL
# (http:// or https://...), and with tls REG_<NAME>_CA (the CA that signed its certificate).
# NAME must be a valid shell identifier fragment (letters, digits, _).
#
# Logging: the request lines tests grep for, e.g.
#   "HEAD /v2/library/hello/manifests/1?ns=upstream.invalid HTTP/1.1" 200
# come from the access log, which distribution 2.8 writes straight to stdout in combined log
# format, outside logrus, so log.level does not filter it. Level warn therefore keeps every
# request line and drops the info-level "response completed" duplicate of each, so the log's
# line count tracks the request count (plus an error line per failed request).
start_registry() {
  local name=$1 tls=${2:-} port dir scheme=http attempt
  [[ $name =~ ^[A-Za-z0-9_]+$ ]] || { echo "start_registry: bad name '$name'" >&2; return 1; }
  dir="$H_TMP/registry-$name"
  mkdir -p "$dir/data"
  if [ "$tls" = tls ]; then make_test_ca || return 1; scheme=https; fi
  for attempt in 1 2 3; do
    port=$(free_port) || return 1
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: warn"
      echo "  formatter: text"
      echo "  accesslog: {disabled: false}"
      echo "storage:"
      echo "  filesystem: {rootdirectory: \"$dir/data\"}"
      echo "  delete: {enabled: true}"
      # No background upload purger: it only adds log noise during a short run.
      echo "  maintenance: {uploadpurging: {enabled: false}}"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      # A fixed secret silences the "No HTTP secret provided" warning on every start.
      echo "  secret: mirror-agent-harness"
      if [ "$tls" = tls ]; then
        echo "  tls: {certificate: \"$TEST_SERVER_CRT\", key: \"$TEST_SERVER_KEY\"}"
      fi
      # REG_HTPASSWD=FILE: basic authentication (bcrypt htpasswd; distribution needs TLS for it
      # and re-reads the file when its mtime changes).
      if [ -n "${REG_HTPASSWD:-}" ]; then
        echo "auth:"
        echo "  htpasswd: {realm: mirror-agent-test, path: \"$REG_HTPASSWD\"}"
      fi
      # REGISTRY_TOKEN_REALM=URL REGISTRY_TOKEN_CERT=PEM: Bearer tokens from that realm (issuer
      # explain-token-issuer, service mirror-agent-harness; tests/integration/token_service.py).
      if [ -n "${REGISTRY_TOKEN_REALM:-}" ]; then
        echo "auth:"
        echo "  token: {realm: \"$REGISTRY_TOKEN_REALM\", service: mirror-agent-harness, issuer: explain-token-issuer, rootcertbundle: \"$REGISTRY_TOKEN_CERT\"}"
      fi
    } > "$dir/config.yml"
    _h_spawn "$dir/log" docker-registry serve "$dir/config.yml"
    local pid=$H_LAST_PID
    # Ready when /v2/ answers 200 over the right scheme and the answer is ours (our pid alive:
    # a lost port race means someone else may be answering).
    if wait_until 20 _h_probe_registry "$pid" "$scheme://127.0.0.1:$port/v2/"; then
      export "REG_${name}_PORT=$port" "REG_${name}_ADDR=127.0.0.1:$port" \
        "REG_${name}_LOG=$dir/log" "REG_${name}_URL=$scheme://127.0.0.1:$port"
      if [ "$tls" = tls ]; then
        export "REG_${name}_CA=$TEST_CA_CRT"
        H_TLS_ADDRS="${H_TLS_ADDRS:-} 127.0.0.1:$port"
      fi
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    echo "harness: registry $name on port $port did not come up (attempt $attempt):" >&2
    tail -5 "$dir/log" >&2
  done
  return 1
}

_h_probe_registry() { # PID URL (a registry with authentication answers 401: up too)
  local code
  kill -0 "$1" 2>/dev/null &&
    code=$(curl -sS --max-time 2 ${TEST_CA_CRT:+--cacert "$TEST_CA_CRT"} -o /dev/null -w '%{http_code}' "$2") &&
    { [ "$code" = 200 ] || { [ -n "${REG_HTPASSWD:-}${REGISTRY_TOKEN_REALM:-}" ] && [ "$code" = 401 ]; }; } &&
    kill -0 "$1" 2>/dev/null
}

# registry_log_has NAME PATTERN: PATTERN (grep basic regex) appears in the registry's log.
registry_log_has() {
  local var="REG_$1_LOG"
  [ -n "${!var:-}" ] || { echo "registry_log_has: no registry $1" >&2; return 2; }
  grep -q -- "$2" "${!var}"
}

# registry_log_lines NAME: the number of lines in its log; snapshot it before an action and
# compare after, to prove a registry was (or was not) contacted.
registry_log_lines() {
  local var="REG_$1_LOG"
  wc -l < "${!var}"
}

# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------

# make_oci_image DIR TAG: a one-layer linux/amd64 image as an OCI image layout, built by hand so
# no image has to be downloaded. Deterministic (mtimes are zero), so the digest is stable.
make_oci_image() {
  python3 - "$1" "$2" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, tag = sys.argv[1], sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    body = b"hello from mirror-agent's test image\n"
    info = tarfile.TarInfo("hello.txt"); info.size = len(body); info.mtime = 0; info.mode = 0o644
    tar.addfile(info, io.BytesIO(body))
layer_tar = raw.getvalue()
layer = gzip.compress(layer_tar, mtime=0)
layer_digest, layer_size = put(layer)
# diff_ids are digests of the *uncompressed* layer; containerd checks them when it unpacks.
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}}).encode()
config_digest, config_size = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]}).encode()
manifest_digest, manifest_size = put(manifest)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
PY
}

# push_image OCI_DIR TAG REF: copy the layout's TAG to docker://REF and print the manifest
# digest the registry stored. To a registry started with `tls` the push verifies its
# certificate against the test CA (so a broken CA setup shows up here, not later); anything else
# is pushed with --dest-tls-verify=false, which for containers/image means "try https, fall back
# to plain http" -- that is how a plain-http loopback registry is reached.
push_image() {
  local dir=$1 tag=$2 ref=$3 host tls_args digestfile
  host=${ref%%/*}
  if [[ " ${H_TLS_ADDRS:-} " == *" $host "* ]]; then
    tls_args=(--dest-cert-dir "$TEST_CA_DIR")
  else
    tls_args=(--dest-tls-verify=false)
  fi
  digestfile=$(mktemp "$H_TMP/digest.XXXXXX")
  # --insecure-policy: the host's /etc/containers/policy.json is not ours to rely on.
  # --digestfile: the digest as pushed, no second round trip (the OCI manifest is stored
  # unchanged by distribution 2.8, so it equals the layout's digest too).
  # PUSH_CREDS=user:password for a registry with auth (start_registry with REG_HTPASSWD or a token realm).
  [ -n "${PUSH_CREDS:-}" ] && tls_args+=(--dest-creds "$PUSH_CREDS")
  timeout 120 skopeo --insecure-policy copy --quiet --retry-times 2 "${tls_args[@]}" \
    --digestfile "$digestfile" "oci:$dir:$tag" "docker://$ref" >&2 || return 1
  cat "$digestfile"; echo
}

# ----------------------------------------------------------------------------------------------
# containerd
# ----------------------------------------------------------------------------------------------

# start_containerd: a private containerd (not the system one, no systemd) for `ctr pull`.
# Exports CTRD_SOCK. The CRI plugin is disabled: it is not needed for pulls and is what makes
# containerd slow to start (and noisy) in a container. The opt plugin would otherwise create
# /opt/containerd on the host, so it points into $H_TMP too.
start_containerd() {
  local d="$H_TMP/containerd"
  mkdir -p "$d"
  cat > "$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd-ttrpc.sock"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
TOML
  _h_spawn "$d/log" containerd --config "$d/config.toml"
  export CTRD_SOCK="$d/containerd.sock" CTRD_LOG="$d/log"
  wait_until 30 _h_ctrd_up "$H_LAST_PID" || {
    echo "harness: containerd did not start:" >&2; tail -20 "$d/log" >&2; return 1; }
}

_h_ctrd_up() { kill -0 "$1" 2>/dev/null && timeout 5 ctr --address "$CTRD_SOCK" version; }

# ctr_pull HOSTS_DIR REF [ctr pull args]: pull REF through the hosts.toml files in HOSTS_DIR
# (namespace "harness"). Returns ctr's status (124 on the 60 s timeout). ctr's output goes to
# $H_TMP/ctr-pull.log; on failure its tail is printed to stderr so `check` shows why.
ctr_pull() {
  local hosts=$1 ref=$2 rc; shift 2
  timeout 60 ctr --address "$CTRD_SOCK" -n harness image pull --hosts-dir "$hosts" "$@" "$ref" \
    > "$H_TMP/ctr-pull.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || { echo "ctr pull $ref exited $rc:" >&2; grep -v '^\s*$' "$H_TMP/ctr-pull.log" | tail -5 >&2; }
  return $rc
}

# ctr_rmi REF: forget REF, and with --sync its now unreferenced blobs too, so the next pull of
# the same image has to fetch from a registry again instead of finding the content locally.
ctr_rmi() {
  timeout 30 ctr --address "$CTRD_SOCK" -n harness image rm --sync "$1" >/dev/null 2>&1
  return 0
}

# ----------------------------------------------------------------------------------------------
# Misbehaving endpoints
# ----------------------------------------------------------------------------------------------

# Python helpers exit on their own when the harness shell is gone or after H_MAX_LIFETIME, in
# addition to being tracked like every other process.
_H_PY_GUARD='
import os, sys, threading, time
def _guard(owner=int(sys.argv[2]), cap=float(sys.argv[3])):
    end = time.monotonic() + cap
    while time.monotonic() < end:
        try: os.kill(owner, 0)
        except ProcessLookupError: break
        time.sleep(1)
    os._exit(0)
threading.Thread(target=_guard, daemon=True).start()
'

# start_hung_listener: a loopback port that accepts connections and never sends a byte (an
# endpoint that hangs rather than refusing). Exports HUNG_PORT and HUNG_LOG (one line per
# accepted connection, so a test can show it was tried).
start_hung_listener() {
  local attempt
  for attempt in 1 2 3; do
    HUNG_PORT=$(free_port) || return 1
    HUNG_LOG="$H_TMP/hung-$HUNG_PORT.log"
    _h_spawn "$HUNG_LOG" python3 -u -c "$_H_PY_GUARD"'
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
held = []  # keep accepted sockets open: closing them would be an answer
while True:
    c, peer = s.accept(); held.append(c); print("accepted", peer, flush=True)
' "$HUNG_PORT" "$$" "$H_MAX_LIFETIME"
    export HUNG_PORT HUNG_LOG
    wait_until 10 _h_port_open "$H_LAST_PID" "$HUNG_PORT" && return 0
    kill "$H_LAST_PID" 2>/dev/null || true
  done
  echo "harness: hung listener did not start" >&2; return 1
}

# start_http_500: answers every request (any method, any path) with 500 and an empty body.
# Exports ERR_PORT and ERR_LOG (one line per request).
start_http_500() {
  local attempt
  for attempt in 1 2 3; do
    ERR_PORT=$(free_port) || return 1
    ERR_LOG="$H_TMP/http500-$ERR_PORT.log"
    _h_spawn "$ERR_LOG" python3 -u -c "$_H_PY_GUARD"'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer
    def log_message(self, fmt, *args):
        print(self.command, self.path, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$ERR_PORT" "$$" "$H_MAX_LIFETIME"
    export ERR_PORT ERR_LOG
    wait_until 10 _h_port_open "$H_LAST_PID" "$ERR_PORT" && return 0
    kill "$H_LAST_PID" 2>/dev/null || true
  done
  echo "harness: http-500 server did not start" >&2; return 1
}

# _h_port_open PID PORT: PID is alive and something accepts on 127.0.0.1:PORT (bash's /dev/tcp,
# so no extra process per attempt).
_h_port_open() {
  kill -0 "$1" 2>/dev/null || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null
}

# ----------------------------------------------------------------------------------------------
# Reporter
# ----------------------------------------------------------------------------------------------

# check NAME CMD...: run CMD, print "ok - NAME" or "not ok - NAME" followed by the last lines of
# CMD's output as "#" comments. Never fails itself, so a suite runs to the end under set -e.
check() {
  local name=$1 out; shift
  out="${H_TMP:-/tmp}/check.out"
  if "$@" > "$out" 2>&1; then
    H_PASSED=$((H_PASSED + 1)); echo "ok - $name"
  else
    H_FAILED=$((H_FAILED + 1)); echo "not ok - $name"; tail -20 "$out" | sed 's/^/#   /'
  fi
  return 0
}

# fails CMD...: CMD exits non-zero (for negative controls: `check "control: ..." fails CMD`).
fails() { ! "$@"; }

# lacks PATTERN PATH...: every PATH exists and is readable (a directory is searched
# recursively), and no line in them matches PATTERN (grep -E). Unlike `! grep`, a missing file or
# a grep error is a failure, not a pass.
lacks() {
  local pat=$1 f rc; shift
  [ $# -gt 0 ] || { echo "lacks: no path given"; return 2; }
  for f in "$@"; do
    [ -r "$f" ] || { echo "lacks: $f does not exist or cannot be read"; return 1; }
  done
  grep -Erq -- "$pat" "$@"; rc=$?
  case $rc in
    1) return 0 ;;
    0) echo "lacks: '$pat' found:"; grep -Ern -- "$pat" "$@" | head -5; return 1 ;;
    *) echo "lacks: grep failed ($rc)"; return 1 ;;
  esac
}

# output_lacks PATTERN CMD...: CMD exits 0 and no line of its output (stdout and stderr) matches
# PATTERN (grep -E). Unlike `! CMD | grep`, a CMD that fails (missing path, no such unit, a
# failing ldd) is a failure, not a pass.
output_lacks() {
  local pat=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  [ $rc -eq 0 ] || { echo "output_lacks: '$*' exited $rc:"; printf '%s\n' "$out" | tail -5; return 1; }
  if printf '%s\n' "$out" | grep -Eq -- "$pat"; then
    echo "output_lacks: '$pat' found:"; printf '%s\n' "$out" | grep -E -- "$pat" | head -5; return 1
  fi
  return 0
}

# summary: exactly one line "N passed, N failed"; non-zero status if anything failed (or if
# nothing ran at all, which is never a success).
summary() {
  echo "$H_PASSED passed, $H_FAILED failed"
  [ "$H_FAILED" -eq 0 ] && [ "$H_PASSED" -gt 0 ]
}

# Tests run some of these inside `bash -c "! ctr_pull ..."` to invert them.
export -f fails lacks output_lacks ctr_pull ctr_rmi registry_log_has registry_log_lines wait_until _h_bounded _h_dead 2>/dev/null
