# Test harness for the integration and end-to-end suites: real registries, a private containerd,
# a tiny OCI image, a pass/fail reporter. Everything listens on 127.0.0.1 only, every process is
# tracked by pid and ended by harness_cleanup, every wait is bounded.

H_PIDS=()
H_PASSED=0
H_FAILED=0

harness_init() {
  H_TMP=$(mktemp -d /tmp/mirror-agent-it.XXXXXX)
  export H_TMP
}

harness_cleanup() {
  local pid
  for pid in "${H_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${H_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  H_PIDS=()
  # containerd leaves mounts under its root only when it ran containers; we run none.
  [ -n "${H_TMP:-}" ] && rm -rf "$H_TMP"
}

# wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds or the time is up.
wait_until() {
  local limit=$1; shift
  local tries=$((limit * 10))
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# make_test_ca: a CA and a server certificate for 127.0.0.1 / localhost. Exports TEST_CA_CRT,
# TEST_SERVER_CRT, TEST_SERVER_KEY.
make_test_ca() {
  [ -n "${TEST_CA_CRT:-}" ] && return 0
  local d="$H_TMP/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mirror-agent test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
  export TEST_CA_CRT="$d/ca.crt" TEST_SERVER_CRT="$d/server.crt" TEST_SERVER_KEY="$d/server.key"
}

# start_registry NAME [tls]: Debian's docker-registry (distribution 2.8) on a free loopback port.
# Exports REG_<NAME>_PORT, REG_<NAME>_ADDR, REG_<NAME>_LOG (and REG_<NAME>_CA with tls).
start_registry() {
  local name=$1 tls=${2:-} port dir scheme=http
  port=$(free_port)
  dir="$H_TMP/registry-$name"
  mkdir -p "$dir/data"
  {
    echo "version: 0.1"
    echo "log: {level: info, formatter: text, accesslog: {disabled: false}}"
    echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [ "$tls" = tls ]; then
      make_test_ca
      echo "  tls: {certificate: $TEST_SERVER_CRT, key: $TEST_SERVER_KEY}"
      scheme=https
    fi
  } > "$dir/config.yml"
  docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  H_PIDS+=($!)
  eval "export REG_${name}_PORT=$port REG_${name}_ADDR=127.0.0.1:$port REG_${name}_LOG=$dir/log"
  [ "$tls" = tls ] && eval "export REG_${name}_CA=$TEST_CA_CRT"
  wait_until 20 curl -fsS ${TEST_CA_CRT:+--cacert "$TEST_CA_CRT"} "$scheme://127.0.0.1:$port/v2/" \
    || { echo "registry $name did not start:"; cat "$dir/log"; return 1; }
}

registry_log_has() { # NAME PATTERN
  local var="REG_$1_LOG"
  grep -q -- "$2" "${!var}"
}

# make_oci_image DIR TAG: a one-layer linux/amd64 image as an OCI layout.
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
    info = tarfile.TarInfo("hello.txt"); info.size = len(body); info.mtime = 0
    tar.addfile(info, io.BytesIO(body))
layer_tar = raw.getvalue()
layer = gzip.compress(layer_tar, mtime=0)
layer_digest, layer_size = put(layer)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}}).encode()
config_digest, config_size = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]}).encode()
manifest_digest, manifest_size = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": manifest_digest, "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": tag}}]},
    open(os.path.join(out, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci-layout"), "w"))
PY
}

# push_image OCI_DIR TAG REF: copies to a loopback registry; prints the manifest digest.
push_image() {
  local certs=()
  [ -n "${TEST_CA_CRT:-}" ] && certs=(--dest-cert-dir "$(dirname "$TEST_CA_CRT")")
  timeout 120 skopeo copy --quiet --dest-tls-verify=false "oci:$1:$2" "docker://$3" >/dev/null || return 1
  python3 -c 'import hashlib,json,sys; i=json.load(open(sys.argv[1]+"/index.json")); print(i["manifests"][0]["digest"])' "$1"
}

# start_containerd: a private containerd (no systemd, no CRI) for ctr pulls. Exports CTRD_SOCK.
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
TOML
  containerd --config "$d/config.toml" > "$d/log" 2>&1 &
  H_PIDS+=($!)
  export CTRD_SOCK="$d/containerd.sock"
  wait_until 30 ctr --address "$CTRD_SOCK" version || { echo "containerd did not start:"; cat "$d/log"; return 1; }
}

ctr_pull() { # HOSTS_DIR REF [ctr args]
  local hosts=$1 ref=$2; shift 2
  timeout 60 ctr --address "$CTRD_SOCK" -n harness image pull --hosts-dir "$hosts" "$@" "$ref" >/dev/null 2>&1
}

ctr_rmi() { ctr --address "$CTRD_SOCK" -n harness image rm "$1" >/dev/null 2>&1; true; }

# start_hung_listener: accepts connections and never answers. Exports HUNG_PORT.
start_hung_listener() {
  HUNG_PORT=$(free_port)
  python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
held = []
end = time.time() + 3600
while time.time() < end:
    c, _ = s.accept(); held.append(c)
' "$HUNG_PORT" &
  H_PIDS+=($!)
  export HUNG_PORT
  wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $HUNG_PORT), 1).close()"
}

# start_http_500: answers every request with 500. Exports ERR_PORT.
start_http_500() {
  ERR_PORT=$(free_port)
  python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers()
    do_HEAD = do_GET
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$ERR_PORT" &
  H_PIDS+=($!)
  export ERR_PORT
  wait_until 10 curl -s -o /dev/null "http://127.0.0.1:$ERR_PORT/"
}

# check NAME CMD...: one reported test.
check() {
  local name=$1; shift
  if "$@" > "$H_TMP/check.out" 2>&1; then
    H_PASSED=$((H_PASSED + 1)); echo "ok - $name"
  else
    H_FAILED=$((H_FAILED + 1)); echo "not ok - $name"; sed 's/^/#   /' "$H_TMP/check.out" | tail -20
  fi
}

summary() {
  echo "$H_PASSED passed, $H_FAILED failed"
  [ "$H_FAILED" -eq 0 ]
}

export -f ctr_pull ctr_rmi registry_log_has 2>/dev/null
