# shellcheck shell=bash
# Private-mirror fixtures shared by tests/integration/test_private_crio.sh and
# tests/e2e/case_private_crio.sh (needs lib.sh): a test CA (make_test_ca), a client CA with a
# node certificate, a second CA with its own server certificate (rotation), an htpasswd file with
# a bcrypt entry (htpasswd -B), and pm_registry to start docker-registry with extra settings.
pm_fixtures() {
make_test_ca
PM=$H_TMP/private-crio
mkdir -p "$PM/pki" "$PM/push-certs"
PM_USER=mirror-robot
PM_PASS="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
htpasswd -Bbc "$PM/htpasswd" "$PM_USER" "$PM_PASS" 2>/dev/null

# A client CA and a client certificate it signed (the mTLS mirror trusts only that CA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=mirror-agent client CA" \
  -keyout "$PM/pki/client-ca.key" -out "$PM/pki/client-ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=node" \
  -keyout "$PM/pki/node-key.pem" -out "$PM/pki/node.csr" 2>/dev/null
printf '%s\n' 'extendedKeyUsage=clientAuth' > "$PM/pki/node.ext"
openssl x509 -req -in "$PM/pki/node.csr" -CA "$PM/pki/client-ca.crt" -CAkey "$PM/pki/client-ca.key" -CAcreateserial \
  -days 2 -extfile "$PM/pki/node.ext" -out "$PM/pki/node.pem" 2>/dev/null
# A second CA and a server certificate from it: the CA rotation case.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=mirror-agent rotated CA" \
  -keyout "$PM/pki/ca2.key" -out "$PM/pki/ca2.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$PM/pki/server2.key" -out "$PM/pki/server2.csr" 2>/dev/null
printf '%s\n' 'subjectAltName=IP:127.0.0.1' 'extendedKeyUsage=serverAuth' > "$PM/pki/server2.ext"
openssl x509 -req -in "$PM/pki/server2.csr" -CA "$PM/pki/ca2.crt" -CAkey "$PM/pki/ca2.key" -CAcreateserial \
  -days 2 -extfile "$PM/pki/server2.ext" -out "$PM/pki/server2.crt" 2>/dev/null
cp "$TEST_CA_CRT" "$PM/push-certs/ca.crt"
cat "$PM/pki/ca2.crt" >> "$PM/push-certs/ca.crt"
cp "$PM/pki/node.pem" "$PM/push-certs/client.cert"
cp "$PM/pki/node-key.pem" "$PM/push-certs/client.key"
# The TLS files desired state names live in a root-owned directory of their own.
chmod 0755 "$PM" "$PM/pki"
chmod 0600 "$PM/pki/"*.key "$PM/pki/node-key.pem"

}

# pm_registry NAME CERT KEY EXTRA...: docker-registry over TLS with extra config lines; ready
# when the port answers a TLS handshake (its /v2/ may want credentials or a certificate).
pm_registry() {
  local name=$1 cert=$2 key=$3 dir port; shift 3
  dir="$PM/registry-$name"
  mkdir -p "$dir/data"
  port=$(free_port) || return 1
  {
    printf '%s\n' "version: 0.1" "log:" "  level: warn" "  formatter: text" "  accesslog: {disabled: false}" \
      "storage:" "  filesystem: {rootdirectory: \"$dir/data\"}" "  maintenance: {uploadpurging: {enabled: false}}" \
      "http:" "  addr: 127.0.0.1:$port" "  secret: mirror-agent-harness" "  tls:" "    certificate: \"$cert\"" "    key: \"$key\""
    printf '%s\n' "$@"
  } > "$dir/config.yml"
  _h_spawn "$dir/log" docker-registry serve "$dir/config.yml"
  local pid=$H_LAST_PID
  wait_until 20 bash -c "kill -0 $pid && timeout 2 openssl s_client -connect 127.0.0.1:$port </dev/null >/dev/null 2>&1" || return 1
  export "PM_${name}_ADDR=127.0.0.1:$port" "PM_${name}_LOG=$dir/log"
}

