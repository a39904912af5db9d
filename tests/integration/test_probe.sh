# HealthProbe against real listeners on loopback, one per cause, each checked in the probe
# table, in `mirror-agent status` (text and status.json) and in the metrics; then what this node
# gets wrong itself (no trust store, unreadable CA file) is a node error and demotes nothing.
# Then the daemon with probe.onUnhealthy: demote, a real ctr pull past the hung mirror, and the
# metrics file read by Prometheus' own parser. Sourced by run.sh.

make_test_ca
P=$(mktemp -d "$H_TMP/probe.XXXXXX")
PKI=$P/etc/mirror-agent/pki   # TLS files live in the root: the prober reads them through it
mkdir -p "$P/etc/mirror-agent/mirrors.d" "$PKI" "$P/var/lib/prometheus/node-exporter"
cp "$TEST_CA_CRT" "$PKI/ca.crt"
# The test CA in the root's system trust store, installed the way ca-certificates installs one:
# a .crt in /usr/local/share/ca-certificates, then update-ca-certificates builds the bundle.
install_ca_like_debian() { # ROOT CA_CRT
  mkdir -p "$1/usr/local/share/ca-certificates" "$1/usr/share/ca-certificates" "$1/etc/ssl/certs" "$1/etc/ca-certificates/update.d"
  cp "$2" "$1/usr/local/share/ca-certificates/mirror-agent-test-ca.crt"
  : > "$1/etc/ca-certificates.conf"
  update-ca-certificates --certsconf "$1/etc/ca-certificates.conf" --certsdir "$1/usr/share/ca-certificates" \
    --localcertsdir "$1/usr/local/share/ca-certificates" --etccertsdir "$1/etc/ssl/certs" --hooksdir "$1/etc/ca-certificates/update.d" >/dev/null
}
install_ca_like_debian "$P" "$TEST_CA_CRT"

# More certificates: a client one from the test CA, a server one from a CA nobody trusts, one for
# another name, one expired.
mkcert() { # NAME CA_CRT CA_KEY DAYS SAN EKU
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$5" "$6" > "$PKI/$1.ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$2" -CAkey "$3" -CAcreateserial -days "$4" -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=nobody trusts me" \
  -keyout "$PKI/other-ca.key" -out "$PKI/other-ca.crt" 2>/dev/null
mkcert client "$TEST_CA_CRT" "$TEST_CA_KEY" 2 "DNS:node" clientAuth
mkcert untrusted "$PKI/other-ca.crt" "$PKI/other-ca.key" 2 "IP:127.0.0.1" serverAuth
mkcert othername "$TEST_CA_CRT" "$TEST_CA_KEY" 2 "DNS:other.example" serverAuth
mkcert expired "$TEST_CA_CRT" "$TEST_CA_KEY" -1 "IP:127.0.0.1" serverAuth

# start_tls_server NAME CERT KEY [openssl s_server args]: openssl s_server on a free port.
start_tls_server() {
  local name=$1 cert=$2 key=$3 port; shift 3
  port=$(free_port)
  _h_spawn "$H_TMP/tls-$name.log" openssl s_server -accept "127.0.0.1:$port" -cert "$cert" -key "$key" -www -quiet "$@"
  wait_until 10 _h_port_open "$H_LAST_PID" "$port" || { echo "harness: s_server $name did not start" >&2; return 1; }
  printf -v "TLS_${name}_PORT" %s "$port"
}
start_tls_server UNTRUSTED "$PKI/untrusted.crt" "$PKI/untrusted.key"
start_tls_server OTHERNAME "$PKI/othername.crt" "$PKI/othername.key"
start_tls_server EXPIRED "$PKI/expired.crt" "$PKI/expired.key"
start_tls_server CLIENTCERT "$TEST_SERVER_CRT" "$TEST_SERVER_KEY" -Verify 1 -CAfile "$TEST_CA_CRT"

# A server that answers every request with 404 (something, but not a registry).
start_http_404() {
  NF_PORT=$(free_port)
  _h_spawn "$H_TMP/http404.log" python3 -u -c "$_H_PY_GUARD"'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$NF_PORT" "$$" "$H_MAX_LIFETIME"
  wait_until 10 _h_port_open "$H_LAST_PID" "$NF_PORT"
}
start_http_404
# A listener whose accept queue is full: the kernel drops new SYNs, so a connect never completes
# (a TCP connect timeout on loopback, as from a firewall that drops packets).
start_full_listener() {
  FULL_PORT=$(free_port)
  _h_spawn "$H_TMP/full.log" python3 -u -c "$_H_PY_GUARD"'
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
held = []
for _ in range(4):  # fill the accept queue; they are never accepted
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", int(sys.argv[1])))
    except BlockingIOError: pass
    held.append(c)
print("full", flush=True)
while True: time.sleep(60)
' "$FULL_PORT" "$$" "$H_MAX_LIFETIME"
  wait_until 10 grep -q full "$H_TMP/full.log"
}
start_full_listener
start_registry PROBED
start_registry PROBEDTLS tls
start_hung_listener
closed_port=$(free_port)

# One registry per case, so each row's endpoint and cause are easy to find everywhere.
# CASE|URL in the desired state|TLS yaml|expected state after one probe|cause code|words in the cause
CASES=$(cat <<EOF
up-http|http://$REG_PROBED_ADDR||up|-|
up-https-system-ca|https://$REG_PROBEDTLS_ADDR||up|-|
up-https-client-cert|https://127.0.0.1:$TLS_CLIENTCERT_PORT|{clientCertificate: /etc/mirror-agent/pki/client.crt, clientKey: /etc/mirror-agent/pki/client.key}|up|-|
refused-http|http://127.0.0.1:$closed_port||failing|connection-refused|connection refused
refused-https|https://127.0.0.1:$closed_port||failing|connection-refused|connection refused
connect-timeout-http|http://127.0.0.1:$FULL_PORT||failing|connect-timeout|timed out connecting
connect-timeout-https|https://127.0.0.1:$FULL_PORT||failing|connect-timeout|timed out connecting
hung-http|http://127.0.0.1:$HUNG_PORT||failing|answer-timeout|timed out waiting for an answer
hung-https|https://127.0.0.1:$HUNG_PORT||failing|tls-handshake-timeout|timed out in the TLS handshake
unknown-ca|https://127.0.0.1:$TLS_UNTRUSTED_PORT||failing|tls-unknown-ca|TLS handshake failed: unknown CA
name-mismatch|https://127.0.0.1:$TLS_OTHERNAME_PORT||failing|tls-name-mismatch|TLS handshake failed: name mismatch
expired|https://127.0.0.1:$TLS_EXPIRED_PORT||failing|tls-expired|TLS handshake failed: certificate expired
client-cert-required|https://localhost:$TLS_CLIENTCERT_PORT||failing|tls-client-certificate-required|TLS handshake failed: client certificate required
not-a-registry|http://127.0.0.1:$NF_PORT||failing|not-a-registry|HTTP 404: not a registry answer
EOF
)
{
  echo "apiVersion: mirror-agent/v1"
  echo "kind: MirrorSet"
  echo "spec:"
  echo "  registries:"
  while IFS='|' read -r name url tls _; do
    echo "  - source: $name.invalid"
    if [ -n "$tls" ]; then echo "    mirrors: [{url: \"$url\", tls: $tls}]"; else echo "    mirrors: [\"$url\"]"; fi
  done <<< "$CASES"
} > "$P/etc/mirror-agent/mirrors.d/cases.yaml"
cat > "$P/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd]
daemon: {debounce: 50ms}
probe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 3}
YAML

# 1. mirror-agent probe: one round, the cause of each.
"$AGENT" probe --root "$P" --json > "$H_TMP/probe.json" 2> "$H_TMP/probe.err"
echo "# probe exit $?"
"$AGENT" probe --root "$P" > "$H_TMP/probe.txt" 2>&1
sed 's/^/#   /' "$H_TMP/probe.txt"
probe_row() { # SOURCE -> "up|-|" or "down|code|words"
  python3 - "$H_TMP/probe.json" "$1" <<'PY2'
import json, sys
r = [x for x in json.load(open(sys.argv[1]))["results"] if sys.argv[2] in x["registries"]]
print(("up" if r[0]["up"] else "down") + "|" + (r[0].get("cause") or "-") + "|" + (r[0].get("error") or "")) if r else print("missing")
PY2
}
while IFS='|' read -r name url tls state code words; do
  want=$([ "$state" = up ] && echo up || echo down)
  check "probe: $name is $want${words:+: $words}" bash -c '
    got=$1; want=$2; code=$3; words=$4
    echo "got: $got"
    [ "${got%%|*}" = "$want" ] || exit 1
    rest=${got#*|}; [ "${rest%%|*}" = "$code" ] || exit 1
    [[ "${rest#*|}" == "$words"* ]]' _ "$(probe_row "$name.invalid")" "$want" "$code" "$words"
  if [ -n "$words" ]; then
    check "probe table: $name shows the same words" grep -qF -- "$words" "$H_TMP/probe.txt"
  fi
done <<< "$CASES"

# "A round takes about one timeout, not the sum": the probes of a round are in flight together,
# at most probe.concurrency at once. Judged by the listeners, not by a clock: 12 endpoints that
# accept and never answer (127.0.0.2-13, one port), and the listener records the largest number
# of connections it held open at once. All 12 at once with the default concurrency; with
# probe.concurrency: 3 (the control: what a serial or capped prober looks like) never more than 3.
start_peak_listener() { # NAME: exports PEAK_<NAME>_PORT, its log's last line is "peak N"
  local port; port=$(free_port)
  _h_spawn "$H_TMP/peak-$1.log" python3 -u -c "$_H_PY_GUARD"'
import selectors, socket
port = int(sys.argv[1]); sel = selectors.DefaultSelector(); peak = 0; open_conns = set()
for i in range(2, 14):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.%d" % i, port)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "listen")
print("ready", flush=True)
while True:
    events = sel.select()
    for key, _ in events:  # closes first, so a close and the next connect are never both counted
        if key.data == "conn":
            try: gone = key.fileobj.recv(65536) == b""
            except OSError: gone = True
            if gone:
                sel.unregister(key.fileobj); open_conns.discard(key.fileobj); key.fileobj.close()
    for key, _ in events:
        if key.data == "listen":
            c, _ = key.fileobj.accept(); c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, "conn"); open_conns.add(c)
            if len(open_conns) > peak:
                peak = len(open_conns); print("peak", peak, flush=True)
' "$port" "$$" "$H_MAX_LIFETIME"
  wait_until 10 grep -q ready "$H_TMP/peak-$1.log" || { echo "harness: peak listener did not start" >&2; return 1; }
  printf -v "PEAK_$1_PORT" %s "$port"
}
peak_of() { awk '$1 == "peak" { p = $2 } END { print p + 0 }' "$H_TMP/peak-$1.log"; }
peak_root() { # NAME PORT [agent.yaml probe settings]
  local r="$H_TMP/peak-root-$1"
  mkdir -p "$r/etc/mirror-agent/mirrors.d"
  printf 'runtimes: [containerd]\nprobe: {timeout: 1s, connectTimeout: 1s%s}\n' "${3:-}" > "$r/etc/mirror-agent/agent.yaml"
  { echo "mirrors:"; for i in $(seq 2 13); do printf '  peak%s.invalid:\n    endpoint: ["http://127.0.0.%s:%s"]\n' "$i" "$i" "$2"; done; } \
    > "$r/etc/mirror-agent/mirrors.d/peak.yaml"
  echo "$r"
}
start_peak_listener ALL
start_peak_listener CAPPED
"$AGENT" probe --root "$(peak_root ALL "$PEAK_ALL_PORT")" > "$H_TMP/peak-all.out" 2>&1
"$AGENT" probe --root "$(peak_root CAPPED "$PEAK_CAPPED_PORT" ', concurrency: 3')" > "$H_TMP/peak-capped.out" 2>&1
check "one round: all 12 hung endpoints were in flight at once (about one timeout, not the sum; peak $(peak_of ALL))" test "$(peak_of ALL)" -eq 12
check "control: with probe.concurrency 3, never more than 3 in flight (peak $(peak_of CAPPED))" bash -c "[ $(peak_of CAPPED) -ge 1 ] && [ $(peak_of CAPPED) -le 3 ]"
check "and the capped round still probed all 12" grep -qE '^12 endpoints: 0 up, 12 down$' "$H_TMP/peak-capped.out"
check "probe: the summary counts every endpoint" grep -qE '^14 endpoints: 3 up, 11 down$' "$H_TMP/probe.txt"

# 2. The daemon: after its first round every endpoint is counted, failing ones with k/3 and cause.
"$AGENT" run --root "$P" > "$H_TMP/cases-daemon.log" 2>&1 &
H_PIDS+=($!)
cases_pid=$!
first_round() { python3 -c "
import json,sys; s=json.load(open('$P/run/mirror-agent/status.json'))
sys.exit(0 if s['probes'] and all(p.get('last') for p in s['probes']) else 1)"; }
check "the daemon's first round is in status.json" wait_until 20 first_round
"$AGENT" status --root "$P" > "$H_TMP/status.txt" 2>&1
"$AGENT" status --root "$P" --json > "$H_TMP/status.json" 2>&1
sed 's/^/#   /' "$H_TMP/status.txt"
cp "$P/var/lib/prometheus/node-exporter/mirror_agent.prom" "$H_TMP/cases.prom"
check "STATUS line counts every endpoint (3 up, 11 failing 1/3) and names one with its cause" \
  grep -qE '^status: +1[0-9] registries, 14 mirrors: 3 up, 11 failing \(1/3\) \[.* failing \(1/3\): .+\]' "$H_TMP/status.txt"
status_row() { # SOURCE -> "state|code|error"
  python3 - "$H_TMP/status.json" "$1" <<'PY2'
import json, sys
p = [x for x in json.load(open(sys.argv[1]))["probes"] if sys.argv[2] in x["registries"]]
if not p: print("missing"); sys.exit()
last = p[0].get("last") or {}
print(p[0]["state"] + "|" + (last.get("cause") or "-") + "|" + (last.get("error") or ""))
PY2
}
metric_cause() { # ENDPOINT-PREFIX -> cause label of mirror_agent_probe_cause, state of mirror_agent_mirror_state
  python3 - "$H_TMP/cases.prom" "$1" <<'PY2'
import sys
from prometheus_client.parser import text_string_to_metric_families
f = {m.name: m for m in text_string_to_metric_families(open(sys.argv[1]).read())}
cause = [s.labels["cause"] for s in f["mirror_agent_probe_cause"].samples if s.labels["endpoint"].startswith(sys.argv[2])]
state = [s.labels["state"] for s in f["mirror_agent_mirror_state"].samples if s.labels["endpoint"].startswith(sys.argv[2]) and s.value == 1]
print((cause[0] if cause else "-") + "|" + ",".join(state))
PY2
}
while IFS='|' read -r name url tls state code words; do
  ep=${url/localhost/localhost}/v2/
  check "status.json: $name is $state${code:+ ($code)}" bash -c '
    got=$1; echo "got: $got"; [ "${got%%|*}" = "$2" ] && rest=${got#*|} && [ "${rest%%|*}" = "$3" ] && [[ "${rest#*|}" == "$4"* ]]' \
    _ "$(status_row "$name.invalid")" "$state" "$code" "$words"
  check "status text: $name listed as $state with its cause" bash -c 'grep -F -- "$1" "$3" | grep -F -- "$2"' _ "$ep" "${words:-up}" "$H_TMP/status.txt"
  check "metrics: $name state $state, cause $code" bash -c 'got=$1; echo "got: $got"; [ "$got" = "$2" ]' _ "$(metric_cause "$ep")" "$code|$state"
done <<< "$CASES"
check "the journal names the first failure with the same words" grep -qF "is failing (1/3): TLS handshake failed: client certificate required" "$H_TMP/cases-daemon.log"
check "after 3 rounds the refused HTTPS mirror is down, still counted" wait_until 20 python3 -c "
import json,sys; s=json.load(open('$P/run/mirror-agent/status.json'))
p=[x for x in s['probes'] if 'refused-https.invalid' in x['registries']][0]
sys.exit(0 if p['state']=='down' else 1)"
check "and logged once as down with its cause" bash -c "[ \"\$(grep -c 'mirror https://127.0.0.1:$closed_port/v2/ is down (connection refused)' '$H_TMP/cases-daemon.log')\" = 1 ]"
kill "$cases_pid" 2>/dev/null; wait "$cases_pid" 2>/dev/null

# 3. This node's own failures: no trust store, an unreadable CA file. Never a mirror failure.
Q=$(mktemp -d "$H_TMP/notrust.XXXXXX")
mkdir -p "$Q/etc/mirror-agent/mirrors.d" "$Q/var/lib/prometheus/node-exporter"
cat > "$Q/etc/mirror-agent/mirrors.d/m.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: system-ca.invalid
    mirrors: ["https://$REG_PROBEDTLS_ADDR", "http://$REG_PROBED_ADDR"]
  - source: own-ca.invalid
    mirrors: [{url: "https://$REG_PROBEDTLS_ADDR/own", tls: {ca: /etc/mirror-agent/ca.crt}}]
  - source: missing-ca.invalid
    mirrors: [{url: "https://$REG_PROBEDTLS_ADDR/missing", tls: {ca: /etc/mirror-agent/missing.crt}}, "http://$REG_PROBED_ADDR"]
YAML
cp "$TEST_CA_CRT" "$Q/etc/mirror-agent/ca.crt"
cat > "$Q/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd]
daemon: {debounce: 50ms}
probe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 1, onUnhealthy: demote}
YAML
"$AGENT" probe --root "$Q" > "$H_TMP/notrust.txt" 2>&1
rc=$?
sed 's/^/#   /' "$H_TMP/notrust.txt"
check "probe without a trust store exits 1 (a node error, not a mirror one)" test "$rc" = 1
check "and names the missing trust store" grep -q 'node configuration error: no system trust store (none of /etc/ssl/certs/ca-certificates.crt' "$H_TMP/notrust.txt"
check "and the unreadable CA file" grep -q 'node configuration error: cannot read /etc/mirror-agent/missing.crt: no such file' "$H_TMP/notrust.txt"
check "a mirror with its own CA is still judged on it (up)" grep -qE "^https://$REG_PROBEDTLS_ADDR/v2/ \(ca /etc/mirror-agent/ca.crt\) +up " "$H_TMP/notrust.txt"
"$AGENT" run --root "$Q" > "$H_TMP/notrust-daemon.log" 2>&1 &
H_PIDS+=($!)
notrust_pid=$!
QT="$Q/etc/containerd/certs.d/system-ca.invalid/hosts.toml"
check "the daemon's rounds run" wait_until 20 grep -q 'no system trust store' "$Q/run/mirror-agent/status.json"
sleep 3  # three more rounds with failureThreshold 1: a mirror failure would have been demoted by now
check "the HTTPS mirror is not demoted (still in hosts.toml)" grep -q "$REG_PROBEDTLS_ADDR" "$QT"
check "nor the one whose CA file is missing" grep -q "$REG_PROBEDTLS_ADDR" "$Q/etc/containerd/certs.d/missing-ca.invalid/hosts.toml"
check "status.json: both unknown, the node errors name the causes" python3 -c "
import json,sys; s=json.load(open('$Q/run/mirror-agent/status.json'))
st={p['id']:p['state'] for p in s['probes']}; print(st, s['nodeErrors'])
assert sum(1 for v in st.values() if v=='unknown')==2 and 'demoted' not in st.values() and 'down' not in st.values()
assert any('no system trust store' in e for e in s['nodeErrors']) and any('missing.crt' in e for e in s['nodeErrors'])"
"$AGENT" status --root "$Q" > "$H_TMP/notrust-status.txt" 2>&1
grep -E '^(status|mirrors|node error|  )' "$H_TMP/notrust-status.txt" | sed 's/^/#   /'
check "the STATUS line leads with the node error" grep -qE '^status: +node configuration error: no system trust store .*\(\+1 more\); 3 registries, 5 mirrors \(4 endpoints\): 2 up, 2 unknown' "$H_TMP/notrust-status.txt"
check "the journal says it once, at error level" bash -c "[ \"\$(grep -c 'no system trust store' '$H_TMP/notrust-daemon.log')\" = 1 ]"
check "metrics: 2 node configuration errors, no mirror down" python3 - "$Q/var/lib/prometheus/node-exporter/mirror_agent.prom" <<'PY2'
import sys
from prometheus_client.parser import text_string_to_metric_families
f = {m.name: m for m in text_string_to_metric_families(open(sys.argv[1]).read())}
assert f["mirror_agent_node_config_errors"].samples[0].value == 2, f["mirror_agent_node_config_errors"].samples
causes = sorted(s.labels["cause"] for s in f["mirror_agent_probe_cause"].samples)
assert causes == ["node-no-trust-store", "node-unreadable-file"], causes
assert not any(s.value == 0 for s in f["mirror_agent_mirror_up"].samples), f["mirror_agent_mirror_up"].samples
PY2
kill "$notrust_pid" 2>/dev/null; wait "$notrust_pid" 2>/dev/null

# --- demote: the hung mirror leaves hosts.toml after N rounds and comes back after M -------------
start_registry GOOD
push_image "$H_TMP/oci-hello" 1 "$REG_GOOD_ADDR/library/hello:1" >/dev/null 2>&1 || { make_oci_image "$H_TMP/oci-hello" 1; push_image "$H_TMP/oci-hello" 1 "$REG_GOOD_ADDR/library/hello:1" >/dev/null; }
start_hung_listener
hung=$HUNG_PORT
H=$(mktemp -d "$H_TMP/demote.XXXXXX")
mkdir -p "$H/etc/mirror-agent/mirrors.d" "$H/var/lib/prometheus/node-exporter"
cat > "$H/etc/mirror-agent/agent.yaml" <<YAML
runtimes: [containerd, crio]
daemon: {debounce: 50ms}
probe: {interval: 1s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 2, successThreshold: 2, onUnhealthy: demote}
YAML
cat > "$H/etc/mirror-agent/mirrors.d/demote.yaml" <<YAML
mirrors:
  demote.invalid:
    endpoint: ["http://127.0.0.1:$hung", "http://$REG_GOOD_ADDR"]
YAML
"$AGENT" run --root "$H" > "$H_TMP/demote.log" 2>&1 &
DEMOTE_PID=$!
H_PIDS+=($!)
HT="$H/etc/containerd/certs.d/demote.invalid/hosts.toml"
HD="$H/etc/containers/registries.conf.d/99-mirror-agent.conf"
check "at first both mirrors are in hosts.toml" wait_until 10 grep -q "127.0.0.1:$hung" "$HT"
mkdir -p "$H_TMP/undemoted/demote.invalid"; cp "$HT" "$H_TMP/undemoted/demote.invalid/hosts.toml"
check "and in the CRI-O drop-in" wait_until 10 grep -q "127.0.0.1:$hung" "$HD"
check "the hung mirror is left out after 2 failed rounds" wait_until 15 lacks "127.0.0.1:$hung" "$HT"
check "and out of the CRI-O drop-in (demotion for CRI-O)" wait_until 15 lacks "127.0.0.1:$hung" "$HD"
g_seen=$(registry_log_lines GOOD)
check "skopeo pulls through the demoted drop-in without waiting on the hung mirror" \
  timeout 30 skopeo --registries-conf "$HD" inspect --no-tags --retry-times 0 docker://demote.invalid/library/hello:1
check "and the good mirror served it" bash -c "tail -n +$((g_seen + 1)) '$REG_GOOD_LOG' | grep -Eq '\"GET /v2/library/hello/manifests/1 HTTP/1\\.1\" 200'"
check "the change is logged once, as down" test "$(grep -c "mirror http://127.0.0.1:$hung/v2/ is down" "$H_TMP/demote.log")" = 1
check "status.json shows the endpoint demoted with its reason" python3 -c "
import json,sys; s=json.load(open('$H/run/mirror-agent/status.json'))
p=[x for x in s['probes'] if x['url']=='http://127.0.0.1:$hung/v2/'][0]
sys.exit(0 if p['state']=='demoted' and 'timed out waiting for an answer' in p['last']['error'] else 1)"
[ -n "${CTRD_SOCK:-}" ] || start_containerd
# Judged by the hung listener, not by a clock: with the agent paused (no probe connects), the
# pull through the demoted hosts.toml must never connect to the hung mirror; the control sends
# the same pull through the hosts.toml from before the demotion, which must try it.
kill -STOP "$DEMOTE_PID"
h_seen=$(wc -l < "$HUNG_LOG")
check "a real ctr pull through the result works" ctr_pull "$H/etc/containerd/certs.d" demote.invalid/library/hello:1
check "and never connected to the hung mirror (its listener accepted nothing)" test "$(wc -l < "$HUNG_LOG")" = "$h_seen"
ctr_rmi demote.invalid/library/hello:1
timeout 15 ctr --address "$CTRD_SOCK" -n harness image pull --hosts-dir "$H_TMP/undemoted" demote.invalid/library/hello:1 >/dev/null 2>&1
check "control: the same pull through the hosts.toml from before the demotion connects to the hung mirror" test "$(wc -l < "$HUNG_LOG")" -gt "$h_seen"
ctr_rmi demote.invalid/library/hello:1
kill -CONT "$DEMOTE_PID"
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
