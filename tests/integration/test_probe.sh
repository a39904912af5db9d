# HealthProbe against real listeners on loopback: a registry (up), an HTTPS registry that wants
# a client certificate (up with it, down without), a closed port, a hung listener, a 500.
# Then the daemon with probe.onUnhealthy: demote, a real ctr pull past the hung mirror, and the
# metrics file read by Prometheus' own parser. Sourced by run.sh.

# A client certificate from the test CA, and a registry that requires one.
make_test_ca
openssl req -newkey rsa:2048 -nodes -subj "/CN=mirror-agent-node" -keyout "$H_TMP/client.key" -out "$H_TMP/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > "$H_TMP/client.ext"
openssl x509 -req -in "$H_TMP/client.csr" -CA "$TEST_CA_CRT" -CAkey "$TEST_CA_KEY" -CAcreateserial -days 2 -extfile "$H_TMP/client.ext" -out "$H_TMP/client.crt" 2>/dev/null
mtls_port=$(free_port)
mkdir -p "$H_TMP/mtls/data"
cat > "$H_TMP/mtls/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $H_TMP/mtls/data}}
http:
  addr: 127.0.0.1:$mtls_port
  tls:
    certificate: $TEST_SERVER_CRT
    key: $TEST_SERVER_KEY
    clientcas: [$TEST_CA_CRT]
YAML
docker-registry serve "$H_TMP/mtls/config.yml" > "$H_TMP/mtls/log" 2>&1 &
H_PIDS+=($!)
wait_until 20 curl -fsS --cacert "$TEST_CA_CRT" --cert "$H_TMP/client.crt" --key "$H_TMP/client.key" "https://127.0.0.1:$mtls_port/v2/"
start_registry PROBED
start_hung_listener
start_http_500
closed_port=$(free_port)

P=$(mktemp -d "$H_TMP/probe.XXXXXX")
mkdir -p "$P/etc/mirror-agent/mirrors.d"
printf 'runtimes: [containerd]\nprobe: {timeout: 1s, connectTimeout: 1s}\n' > "$P/etc/mirror-agent/agent.yaml"
cat > "$P/etc/mirror-agent/mirrors.d/probe.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: a.invalid
    mirrors:
    - http://$REG_PROBED_ADDR
    - url: https://127.0.0.1:$mtls_port/with-cert
      tls: {ca: $TEST_CA_CRT, clientCertificate: $H_TMP/client.crt, clientKey: $H_TMP/client.key}
    - http://127.0.0.1:$closed_port
    - http://127.0.0.1:$HUNG_PORT
    - http://127.0.0.1:$ERR_PORT
  - source: b.invalid
    mirrors:
    - url: https://127.0.0.1:$mtls_port/without-cert
      tls: {ca: $TEST_CA_CRT}
    - https://127.0.0.1:$mtls_port/untrusted
YAML
"$AGENT" probe --root "$P" --json > "$H_TMP/probe.json" 2> "$H_TMP/probe.err"
probe_state() { # URL-PREFIX -> "up|down|reason"
  python3 - "$H_TMP/probe.json" "$1" <<'PY'
import json, sys
r = [x for x in json.load(open(sys.argv[1]))["results"] if x["url"].startswith(sys.argv[2])]
print(("up" if r[0]["up"] else "down") + "|" + (r[0].get("error") or "")) if r else print("missing")
PY
}
check "the registry is up" test "$(probe_state "http://$REG_PROBED_ADDR/v2/")" = "up|"
# The same URL with and without the client certificate is probed once per TLS setting.
with_cert=$(python3 -c "import json; r=json.load(open('$H_TMP/probe.json'))['results']; print(sum(1 for x in r if x['url']=='https://127.0.0.1:$mtls_port/v2/' and x['up']))")
without_cert=$(python3 -c "import json; r=json.load(open('$H_TMP/probe.json'))['results']; print([x['error'] for x in r if x['url']=='https://127.0.0.1:$mtls_port/v2/' and not x['up']])")
check "the client-certificate registry is up with its certificate" test "$with_cert" = 1
check "and down without it, or without the CA, as TLS failures ($without_cert)" python3 -c "import sys; e=$without_cert; sys.exit(0 if len(e)==2 and all(x.startswith('TLS') for x in e) else 1)"
check "a closed port is down: connection refused" test "$(probe_state "http://127.0.0.1:$closed_port/")" = "down|connection refused"
check "a hung listener is down: timed out" bash -c "probe=\$(python3 -c \"import json; print([x['error'] for x in json.load(open('$H_TMP/probe.json'))['results'] if x['url'].startswith('http://127.0.0.1:$HUNG_PORT/')][0])\"); [[ \"\$probe\" == *timed\\ out* ]]"
check "a 500 is down: HTTP 500" test "$(probe_state "http://127.0.0.1:$ERR_PORT/")" = "down|HTTP 500"
check "the round took about one timeout, not the sum" python3 -c "import json,sys; r=json.load(open('$H_TMP/probe.json'))['results']; sys.exit(0 if max(x['latencySeconds'] for x in r) < 2.5 else 1)"

# --- demote: the hung mirror leaves hosts.toml after N rounds and comes back after M -------------
start_registry GOOD
push_image "$H_TMP/oci-hello" 1 "$REG_GOOD_ADDR/library/hello:1" >/dev/null 2>&1 || { make_oci_image "$H_TMP/oci-hello" 1; push_image "$H_TMP/oci-hello" 1 "$REG_GOOD_ADDR/library/hello:1" >/dev/null; }
start_hung_listener
hung=$HUNG_PORT
H=$(mktemp -d "$H_TMP/demote.XXXXXX")
mkdir -p "$H/etc/mirror-agent/mirrors.d" "$H/var/lib/prometheus/node-exporter"
cat > "$H/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd]
daemon: {debounce: 50ms}
probe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 2, successThreshold: 2, onUnhealthy: demote}
YAML
cat > "$H/etc/mirror-agent/mirrors.d/demote.yaml" <<YAML
mirrors:
  demote.invalid:
    endpoint: ["http://127.0.0.1:$hung", "http://$REG_GOOD_ADDR"]
YAML
"$AGENT" run --root "$H" > "$H_TMP/demote.log" 2>&1 &
H_PIDS+=($!)
HT="$H/etc/containerd/certs.d/demote.invalid/hosts.toml"
check "at first both mirrors are in hosts.toml" wait_until 10 grep -q "127.0.0.1:$hung" "$HT"
check "the hung mirror is left out after 2 failed rounds" wait_until 15 bash -c "! grep -q '127.0.0.1:$hung' '$HT'"
check "the change is logged once, as down" test "$(grep -c "mirror http://127.0.0.1:$hung/v2/ is down" "$H_TMP/demote.log")" = 1
check "status.json shows the endpoint down with its reason" python3 -c "
import json,sys; s=json.load(open('$H/run/mirror-agent/status.json'))
p=[x for x in s['probes'] if x['url']=='http://127.0.0.1:$hung/v2/'][0]
sys.exit(0 if p['state']=='down' and 'timed out' in p['last']['error'] else 1)"
[ -n "${CTRD_SOCK:-}" ] || start_containerd
start=$(date +%s%N)
check "a real ctr pull through the result does not wait on the hung mirror" ctr_pull "$H/etc/containerd/certs.d" demote.invalid/library/hello:1
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "# pull after demotion: ${elapsed} ms"
check "and is quick (< 5 s)" test "$elapsed" -lt 5000
ctr_rmi demote.invalid/library/hello:1
check "the metrics file parses with Prometheus' own parser" python3 - "$H/var/lib/prometheus/node-exporter/mirror_agent.prom" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
up = {s.labels["endpoint"]: s.value for s in families["mirror_agent_mirror_up"].samples}
assert any(v == 0 for v in up.values()), up
assert any(v == 1 for v in up.values()), up
assert "mirror_agent_probe_duration_seconds" in families
assert any(s.labels["result"] == "ok" and s.value >= 1 for s in families["mirror_agent_reconcile"].samples), families["mirror_agent_reconcile"].samples
assert families["mirror_agent_last_reconcile_timestamp_seconds"].samples[0].value > 1e9
assert "mirror_agent_runtime_restarts" in families
PY
# The hung listener turns into a real answer on the same port.
kill_port_listener() { python3 - "$1" <<'PY'
import os, signal, subprocess, sys
port = sys.argv[1]
out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
for part in out.split("pid=")[1:]:
    os.kill(int(part.split(",")[0]), signal.SIGKILL)
PY
}
kill_port_listener "$hung"
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$hung" &
H_PIDS+=($!)
check "the mirror comes back after 2 good rounds" wait_until 15 grep -q "127.0.0.1:$hung" "$HT"
check "and is logged once as up again" wait_until 5 bash -c "[ \"\$(grep -c 'mirror http://127.0.0.1:$hung/v2/ is up again' '$H_TMP/demote.log')\" = 1 ]"
