# shellcheck shell=bash
# Private mirrors for CRI-O / containers/image, as deployed (issue 15, item 3): the installed
# daemon writes /etc/containers/certs.d/<host>/ (ca.crt, client.cert, client.key), its 0600 auth
# file and the crio.conf.d drop-in setting global_auth_file, and restarts crio.service (the
# STAND-IN unit of run.sh: CRI-O is not in Debian) because global_auth_file is read only at start.
# The judge is skopeo inside the machine (a TEST-SIDE package) reading the SYSTEM configuration
# (registries.conf.d and /etc/containers/certs.d, no --registries-conf, no --cert-dir): it pulls
# through docker-registry on the host's loopback with TLS from a test CA and htpasswd (bcrypt)
# authentication, and through one that requires a client certificate. skopeo does not read
# crio.conf: it gets the agent's auth file with --authfile, which is what CRI-O does with
# global_auth_file. Every pull has its failing control. Leaves the agent active, agent.yaml
# untouched, and the files it made removed again.
source "$here/../integration/private_lib.sh"
pm_fixtures
pm_ok=1
pm_registry AUTH "$TEST_SERVER_CRT" "$TEST_SERVER_KEY" "auth:" "  htpasswd: {realm: mirror-agent-test, path: \"$PM/htpasswd\"}" || pm_ok=0
pm_registry MTLS "$TEST_SERVER_CRT" "$TEST_SERVER_KEY" "    clientcas: [\"$PM/pki/client-ca.crt\"]" || pm_ok=0
pm_push() { # REF [skopeo copy args]
  local ref=$1; shift
  timeout 120 skopeo --insecure-policy copy --quiet --retry-times 2 --dest-cert-dir "$PM/push-certs" "$@" "oci:$H_TMP/oci:1" "docker://$ref" >&2
}
pm_setup() { [ "$pm_ok" = 1 ] && pm_push "$PM_AUTH_ADDR/library/hello:1" --dest-creds "$PM_USER:$PM_PASS" && pm_push "$PM_MTLS_ADDR/library/hello:1"; }
check "private CRI-O: the htpasswd and client-certificate mirrors run and hold the image" pm_setup

echo "# skopeo $(inside skopeo --version 2>/dev/null | awk '{ print $3 }') in the machine"
pm_crio_pid=$(mainpid crio.service)
mkdir -p "$M/etc/pki-mirror-test"
cp "$TEST_CA_CRT" "$M/etc/pki-mirror-test/ca.pem"
cp "$PM/pki/node.pem" "$M/etc/pki-mirror-test/node.pem"
install -m 0600 "$PM/pki/node-key.pem" "$M/etc/pki-mirror-test/node-key.pem"
pm_file="$M/etc/mirror-agent/mirrors.d/60-private-crio.yaml"
install -m 0600 /dev/null "$pm_file"
cat > "$pm_file" <<YAML
mirrors:
  private.invalid:
    endpoint: ["https://$PM_AUTH_ADDR"]
  mtls.invalid:
    endpoint: ["https://$PM_MTLS_ADDR"]
configs:
  "$PM_AUTH_ADDR":
    tls: {ca_file: /etc/pki-mirror-test/ca.pem}
    auth: {username: $PM_USER, password: "$PM_PASS"}
  "$PM_MTLS_ADDR":
    tls: {ca_file: /etc/pki-mirror-test/ca.pem, cert_file: /etc/pki-mirror-test/node.pem, key_file: /etc/pki-mirror-test/node-key.pem}
YAML
pm_certs="$M/etc/containers/certs.d"
check "private CRI-O: the daemon writes certs.d (ca.crt; client.cert and a 0600 client.key)" \
  wait_until 30 bash -c "test -s '$pm_certs/$PM_AUTH_ADDR/ca.crt' && test -s '$pm_certs/$PM_MTLS_ADDR/client.cert' && [ \"\$(stat -c %a '$pm_certs/$PM_MTLS_ADDR/client.key' 2>/dev/null)\" = 600 ]"
check "private CRI-O: the auth file (0600) and the crio.conf.d drop-in" \
  wait_until 30 bash -c "[ \"\$(stat -c %a '$M/etc/containers/mirror-agent-auth.json' 2>/dev/null)\" = 600 ] && grep -q 'global_auth_file = \"/etc/containers/mirror-agent-auth.json\"' '$M/etc/crio/crio.conf.d/99-mirror-agent-auth.conf'"
check "private CRI-O: crio.service is restarted (not reloaded) for global_auth_file" \
  wait_until 60 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value crio.service); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != '$pm_crio_pid' ]"
check "private CRI-O: the journal says why" \
  wait_until 30 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'global_auth_file in /etc/crio/crio.conf.d/99-mirror-agent-auth.conf changed: crio.service restarted'"

echo '{"auths": {}}' > "$M/root/empty-auth.json"
# pm_inside REF [skopeo args]: containers/image as deployed, system configuration.
pm_inside() { local ref=$1; shift; inside timeout 60 skopeo --insecure-policy inspect --raw --retry-times 0 "$@" "docker://$ref" >/dev/null; }
pm_seen=$(wc -l < "$PM_AUTH_LOG")
check "private CRI-O: skopeo (system certs.d, the agent's auth file) pulls through the htpasswd mirror" \
  pm_inside private.invalid/library/hello:1 --authfile /etc/containers/mirror-agent-auth.json
check "private CRI-O: ... and the mirror served the manifest" \
  bash -c "tail -n +$((pm_seen + 1)) '$PM_AUTH_LOG' | grep -Eq '\"(GET|HEAD) /v2/library/hello/manifests/1 HTTP/1\\.1\" 200'"
check "private CRI-O: with source credentials (--creds, as a pull secret sets them) the mirror still gets the auth file's" \
  pm_inside private.invalid/library/hello:1 --authfile /etc/containers/mirror-agent-auth.json --creds "someone:their-pull-secret"
# The wording differs by version: "unauthorized: authentication required" (1.9), "authentication
# required" (later); either is the registry's 401.
pm_noauth() {
  ! pm_inside private.invalid/library/hello:1 --authfile /root/empty-auth.json 2> "$H_TMP/pm-noauth.err" &&
    grep -qi 'unauthorized\|401\|authentication required' "$H_TMP/pm-noauth.err" || { cat "$H_TMP/pm-noauth.err"; return 1; }
}
check "private CRI-O: control: without the credentials the pull fails (401)" pm_noauth
check "private CRI-O: control: without certs.d (an empty --cert-dir) the mirror is not trusted" \
  fails pm_inside private.invalid/library/hello:1 --authfile /etc/containers/mirror-agent-auth.json --cert-dir /nonexistent
check "private CRI-O: skopeo pulls through the client-certificate mirror with certs.d" \
  pm_inside mtls.invalid/library/hello:1 --authfile /root/empty-auth.json
inside mkdir -p /root/ca-only
inside cp "/etc/containers/certs.d/$PM_MTLS_ADDR/ca.crt" /root/ca-only/
check "private CRI-O: control: with the CA but no client certificate the pull fails" \
  fails pm_inside mtls.invalid/library/hello:1 --authfile /root/empty-auth.json --cert-dir /root/ca-only

pm_b64=$(printf '%s:%s' "$PM_USER" "$PM_PASS" | base64 -w0)
pm_key=$(sed -n 2p "$PM/pki/node-key.pem")
pm_scan() {
  { inside journalctl -u mirror-agent --no-pager -q -o verbose; inside mirror-agent status --json; inside mirror-agent apply --dry-run --diff; inside mirror-agent apply --dry-run --json
    inside cat /run/mirror-agent/status.json; inside sh -c 'cat /var/lib/prometheus/node-exporter/*.prom' 2>/dev/null
    inside sh -c 'find /etc /run /var/lib/mirror-agent -type f -perm -o=r -print0 2>/dev/null | xargs -0 cat 2>/dev/null' 
  } 2>&1 | grep -cF -e "$PM_PASS" -e "$pm_b64" -e "$pm_key"
}
pm_clean() { [ "$(pm_scan)" = 0 ]; }
check "private CRI-O: no password, auth or key in the journal, status, --json, --diff, metrics or a file others can read" pm_clean
check "private CRI-O: control: the same scan sees them in the 0600 auth file and key" \
  bash -c "grep -qF '$pm_b64' '$M/etc/containers/mirror-agent-auth.json' && grep -qF '$pm_key' '$pm_certs/$PM_MTLS_ADDR/client.key'"

# Put things back: the file goes, so do certs.d, the auth file and the drop-in (CRI-O restarted).
rm -f "$pm_file"
check "private CRI-O: removing the desired state removes certs.d, the auth file and the crio.conf.d drop-in" \
  wait_until 30 bash -c "! test -e '$pm_certs/$PM_AUTH_ADDR/ca.crt' && ! test -e '$M/etc/containers/mirror-agent-auth.json' && ! test -e '$M/etc/crio/crio.conf.d/99-mirror-agent-auth.conf'"
rm -rf "$M/etc/pki-mirror-test" "$M/root/empty-auth.json" "$M/root/ca-only"
check "private CRI-O: the agent is still active" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ]"
check "private CRI-O: and nothing is left pending (crio.service restarted without the drop-in)" \
  wait_until 60 bash -c "! grep -qE '\"(crioRestart|crioReload)\"' '$M/var/lib/mirror-agent/pending-actions.json' 2>/dev/null"
