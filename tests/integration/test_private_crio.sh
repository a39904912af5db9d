# Private mirrors for CRI-O / containers/image (issue 15, item 3), judged by skopeo reading the
# *system* configuration: the scratch root's /etc/containers (registries.conf.d drop-in and
# certs.d) bind-mounted over /etc/containers in a private mount namespace. Debian's
# docker-registry on loopback serves the mirrors: one with TLS from a test CA and htpasswd
# (bcrypt) authentication, one that requires a client certificate. skopeo does not read
# crio.conf, so the agent's auth file is passed with --authfile: that is what CRI-O does with the
# global_auth_file the agent's crio.conf.d drop-in sets (SystemContext.AuthFilePath).
# Every success has its failing control. Sourced by run.sh, with lib.sh loaded.

source "$(dirname "${BASH_SOURCE[0]}")/private_lib.sh"
pm_fixtures

pm_registry AUTH "$TEST_SERVER_CRT" "$TEST_SERVER_KEY" "auth:" "  htpasswd: {realm: mirror-agent-test, path: \"$PM/htpasswd\"}"
pm_registry MTLS "$TEST_SERVER_CRT" "$TEST_SERVER_KEY" "    clientcas: [\"$PM/pki/client-ca.crt\"]"
pm_registry ROT "$PM/pki/server2.crt" "$PM/pki/server2.key"

img="$H_TMP/oci-private"
make_oci_image "$img" 1
pm_push() { # REF [skopeo copy args]
  local ref=$1; shift
  timeout 120 skopeo --insecure-policy copy --quiet --retry-times 2 --dest-cert-dir "$PM/push-certs" "$@" "oci:$img:1" "docker://$ref" >&2
}
check "private: image pushed to the htpasswd mirror (with its credentials)" pm_push "$PM_AUTH_ADDR/library/hello:1" --dest-creds "$PM_USER:$PM_PASS"
check "private: image pushed to the client-certificate mirror" pm_push "$PM_MTLS_ADDR/library/hello:1"
check "private: image pushed to the rotation mirror" pm_push "$PM_ROT_ADDR/library/hello:1"

R=$(mktemp -d "$H_TMP/root.XXXXXX")
mkdir -p "$R/etc/mirror-agent/mirrors.d" "$R/etc/crio"
printf 'runtimes: [crio]\n' > "$R/etc/mirror-agent/agent.yaml"
cp "$TEST_CA_CRT" "$PM/pki/ca.pem"
cp "$TEST_CA_CRT" "$PM/pki/rot-ca.pem"
# Real host paths (not under the root): the agent reads them from the root, so they live in it.
mkdir -p "$R/pki"
cp "$PM/pki/ca.pem" "$PM/pki/rot-ca.pem" "$PM/pki/node.pem" "$PM/pki/node-key.pem" "$R/pki/"
chmod 0600 "$R/pki/node-key.pem"
cat > "$R/etc/mirror-agent/mirrors.d/private.yaml" <<YAML
mirrors:
  private.invalid:
    endpoint: ["https://$PM_AUTH_ADDR"]
  mtls.invalid:
    endpoint: ["https://$PM_MTLS_ADDR"]
  rotated.invalid:
    endpoint: ["https://$PM_ROT_ADDR"]
configs:
  "$PM_AUTH_ADDR":
    tls: {ca_file: /pki/ca.pem}
    auth: {username: $PM_USER, password: "$PM_PASS"}
  "$PM_MTLS_ADDR":
    tls: {ca_file: /pki/ca.pem, cert_file: /pki/node.pem, key_file: /pki/node-key.pem}
  "$PM_ROT_ADDR":
    tls: {ca_file: /pki/rot-ca.pem}
YAML
# The input holds the password: root's alone, as an admin keeps it.
chmod 0600 "$R/etc/mirror-agent/mirrors.d/private.yaml"
"$AGENT" apply --root "$R" --diff > "$PM/apply.out" 2> "$PM/apply.err"
"$AGENT" apply --root "$R" --dry-run --json > "$PM/apply.json" 2>&1
CERTS="$R/etc/containers/certs.d"
check "private: apply writes ca.crt for the htpasswd mirror" test -s "$CERTS/$PM_AUTH_ADDR/ca.crt"
check "private: apply writes client.cert and a 0600 client.key for the mTLS mirror" \
  bash -c "test -s '$CERTS/$PM_MTLS_ADDR/client.cert' && test \"\$(stat -c %a '$CERTS/$PM_MTLS_ADDR/client.key')\" = 600"
check "private: the auth file is 0600 and the crio.conf.d drop-in points CRI-O at it" \
  bash -c "test \"\$(stat -c %a '$R/etc/containers/mirror-agent-auth.json')\" = 600 &&
    grep -qx 'global_auth_file = \"/etc/containers/mirror-agent-auth.json\"' '$R/etc/crio/crio.conf.d/99-mirror-agent-auth.conf'"
check "private: the manifest owns the certs.d files and the auth file" \
  bash -c "grep -q 'certs.d/$PM_MTLS_ADDR/client.key' '$R/var/lib/mirror-agent/owned-files' && grep -q mirror-agent-auth.json '$R/var/lib/mirror-agent/owned-files'"

# pm_skopeo ROOT AUTHFILE REF [args]: containers/image with ROOT's /etc/containers as the system one.
pm_skopeo() {
  local root=$1 authfile=$2 ref=$3; shift 3
  timeout 60 unshare -m --propagation private sh -c '
    mount --bind "$1/etc/containers" /etc/containers || exit 99
    a=$2; r=$3; shift 3
    exec env -u REGISTRY_AUTH_FILE HOME=/nonexistent skopeo --insecure-policy inspect --raw --retry-times 0 --authfile "$a" "$@" "docker://$r"' \
    sh "$root" "$authfile" "$ref" "$@" > /dev/null
}
export -f pm_skopeo
AUTHFILE=/etc/containers/mirror-agent-auth.json
EMPTY=$PM/empty-auth.json
echo '{"auths": {}}' > "$EMPTY"

check "private: skopeo pulls through the htpasswd mirror with certs.d and the agent's auth file" \
  pm_skopeo "$R" "$AUTHFILE" private.invalid/library/hello:1
check "private: ... and the mirror's log shows the authenticated manifest request" \
  grep -q "\"GET /v2/library/hello/manifests/1 HTTP/[0-9.]*\" 200" "$PM_AUTH_LOG"
check "private: control: without the credentials the same pull fails with 401" \
  bash -c "! pm_skopeo '$R' '$EMPTY' private.invalid/library/hello:1 2> '$PM/noauth.err'; grep -qi 'unauthorized\|401\|authentication required' '$PM/noauth.err'"
# A kubelet pull secret reaches CRI-O as SystemContext.DockerAuthConfig; skopeo --creds sets the
# same field. containers/image clears it for a mirror on another host, which then uses the auth
# file: image pull secrets do not break mirror credentials.
check "private: with pull-secret credentials for the source (skopeo --creds), the mirror still uses the auth file" \
  pm_skopeo "$R" "$AUTHFILE" private.invalid/library/hello:1 --creds "someone:their-pull-secret"
check "private: skopeo copy pulls the image through the mirror" \
  bash -c "timeout 60 unshare -m --propagation private sh -c 'mount --bind \"$R/etc/containers\" /etc/containers && HOME=/nonexistent skopeo --insecure-policy copy --quiet --retry-times 0 --authfile $AUTHFILE docker://private.invalid/library/hello:1 dir:$PM/pulled' && ls $PM/pulled/manifest.json"

check "private: skopeo pulls through the client-certificate mirror with certs.d" \
  pm_skopeo "$R" "$EMPTY" mtls.invalid/library/hello:1
R_CA_ONLY=$(mktemp -d "$H_TMP/root.XXXXXX")
mkdir -p "$R_CA_ONLY/etc/containers/certs.d/$PM_MTLS_ADDR"
cp -a "$R/etc/containers/registries.conf.d" "$R_CA_ONLY/etc/containers/"
cp "$CERTS/$PM_MTLS_ADDR/ca.crt" "$R_CA_ONLY/etc/containers/certs.d/$PM_MTLS_ADDR/"
check "private: control: without client.cert/client.key the same pull fails in the TLS handshake" \
  bash -c "! pm_skopeo '$R_CA_ONLY' '$EMPTY' mtls.invalid/library/hello:1 2> '$PM/nocert.err'; grep -qi 'certificate\|tls' '$PM/nocert.err'"
R_NONE=$(mktemp -d "$H_TMP/root.XXXXXX")
mkdir -p "$R_NONE/etc/containers"
cp -a "$R/etc/containers/registries.conf.d" "$R_NONE/etc/containers/"
check "private: control: without certs.d the htpasswd mirror's certificate is not trusted" \
  bash -c "! pm_skopeo '$R_NONE' '$R/etc/containers/mirror-agent-auth.json' private.invalid/library/hello:1 2> '$PM/noca.err'; grep -qi 'unknown authority\|x509' '$PM/noca.err'"

# Rotation: the rotation mirror's certificate is from a second CA; the CA file names the first.
check "private: control: the rotation mirror fails while the CA file holds the old CA" \
  bash -c "! pm_skopeo '$R' '$EMPTY' rotated.invalid/library/hello:1 2> '$PM/rot.err'; grep -qi 'unknown authority\|x509' '$PM/rot.err'"
cp "$PM/pki/ca2.crt" "$R/pki/rot-ca.pem"
"$AGENT" apply --root "$R" > "$PM/apply-rot.out" 2>&1
check "private: after the CA file is rotated, apply refreshes the copy and the pull succeeds" \
  pm_skopeo "$R" "$EMPTY" rotated.invalid/library/hello:1
check "private: a second apply writes nothing" bash -c "'$AGENT' apply --root '$R' | grep -q '^no changes'"

# Secrets: never in the agent's output, never in a file others can read.
pm_b64=$(printf '%s:%s' "$PM_USER" "$PM_PASS" | base64 -w0)
pm_key=$(sed -n 2p "$R/pki/node-key.pem")
pm_secret_scan() {
  ! grep -rlF -e "$PM_PASS" -e "$pm_b64" -e "$pm_key" "$PM/apply.out" "$PM/apply.err" "$PM/apply.json" "$PM/apply-rot.out" &&
    ! find "$R/etc" "$R/var" -type f -perm -o=r -exec grep -lF -e "$PM_PASS" -e "$pm_b64" -e "$pm_key" {} +
}
check "private: no password, auth or private key in apply's output (--diff, --json) or any file others can read" pm_secret_scan
check "private: control: the scan finds the password in the 0600 auth file and the key in client.key" \
  bash -c "grep -qF '$pm_b64' '$R/etc/containers/mirror-agent-auth.json' && grep -qF '$pm_key' '$CERTS/$PM_MTLS_ADDR/client.key'"

# The daemon follows a rotated CA: the CA file is a Kubernetes Secret mount (ca.crt ->
# ..data/ca.crt, ..data -> a timestamped directory, swapped by rename), as kubelet rotates it.
R3=$(mktemp -d "$H_TMP/root.XXXXXX")
mkdir -p "$R3/etc/mirror-agent/mirrors.d" "$R3/secret/..2026_12_01_old"
printf 'runtimes: [crio]\nstatus: {file: /run/mirror-agent/status.json}\ndaemon: {debounce: 100ms}\nprobe: {enabled: false}\n' > "$R3/etc/mirror-agent/agent.yaml"
cp "$TEST_CA_CRT" "$R3/secret/..2026_12_01_old/ca.crt"
ln -s ..2026_12_01_old "$R3/secret/..data"
ln -s ..data/ca.crt "$R3/secret/ca.crt"
printf 'mirrors:\n  rotated.invalid:\n    endpoint: ["https://%s"]\nconfigs:\n  "%s":\n    tls: {ca_file: /secret/ca.crt}\n' "$PM_ROT_ADDR" "$PM_ROT_ADDR" > "$R3/etc/mirror-agent/mirrors.d/rot.yaml"
"$AGENT" run --root "$R3" > "$PM/daemon.log" 2>&1 &
PM_DAEMON=$!
H_PIDS+=("$PM_DAEMON")
ROT_COPY="$R3/etc/containers/certs.d/$PM_ROT_ADDR/ca.crt"
check "private daemon: the first pass copies the CA" wait_until 10 test -s "$ROT_COPY"
check "private daemon: control: the old CA does not verify the rotation mirror" \
  bash -c "! pm_skopeo '$R3' '$EMPTY' rotated.invalid/library/hello:1 2>/dev/null"
mkdir "$R3/secret/..2026_12_01_new"
cp "$PM/pki/ca2.crt" "$R3/secret/..2026_12_01_new/ca.crt"
ln -s ..2026_12_01_new "$R3/secret/..data_tmp"
mv -T "$R3/secret/..data_tmp" "$R3/secret/..data"
check "private daemon: the secret's rotation is copied without any desired-state change" \
  wait_until 10 grep -qF "$(sed -n 2p "$PM/pki/ca2.crt")" "$ROT_COPY"
check "private daemon: ... and the pull through the rotation mirror now succeeds" \
  pm_skopeo "$R3" "$EMPTY" rotated.invalid/library/hello:1
check "private daemon: the journal/stderr calls it a TLS change, not drift" \
  bash -c "! grep -q 'repaired drift' '$PM/daemon.log'"
kill "$PM_DAEMON" 2>/dev/null; wait "$PM_DAEMON" 2>/dev/null

# Removal: the credentials and TLS settings go, so do the files.
cat > "$R/etc/mirror-agent/mirrors.d/private.yaml" <<YAML
mirrors:
  private.invalid:
    endpoint: ["https://$PM_AUTH_ADDR"]
YAML
"$AGENT" apply --root "$R" > "$PM/apply-rm.out" 2>&1
check "private: files no longer wanted are removed (certs.d, auth file, crio.conf.d drop-in)" \
  bash -c "! test -e '$CERTS/$PM_AUTH_ADDR/ca.crt' && ! test -e '$R/etc/containers/mirror-agent-auth.json' && ! test -e '$R/etc/crio/crio.conf.d/99-mirror-agent-auth.conf'"
check "private: ... and removing the auth file is not shown as a diff" bash -c "! grep -qF '$pm_b64' '$PM/apply-rm.out'"

# An admin's own certs.d file is never overwritten without adopt.
R2=$(mktemp -d "$H_TMP/root.XXXXXX")
mkdir -p "$R2/etc/mirror-agent/mirrors.d" "$R2/pki" "$R2/etc/containers/certs.d/$PM_AUTH_ADDR"
printf 'runtimes: [crio]\n' > "$R2/etc/mirror-agent/agent.yaml"
cp "$R/pki/ca.pem" "$R2/pki/"
echo "admin's CA" > "$R2/etc/containers/certs.d/$PM_AUTH_ADDR/ca.crt"
printf 'mirrors:\n  private.invalid:\n    endpoint: ["https://%s"]\nconfigs:\n  "%s":\n    tls: {ca_file: /pki/ca.pem}\n' "$PM_AUTH_ADDR" "$PM_AUTH_ADDR" > "$R2/etc/mirror-agent/mirrors.d/p.yaml"
"$AGENT" apply --root "$R2" > "$PM/apply-admin.out" 2>&1
check "private: an admin's own ca.crt is left alone (and said so) without adopt" \
  bash -c "grep -qx \"admin's CA\" '$R2/etc/containers/certs.d/$PM_AUTH_ADDR/ca.crt' && grep -q 'not written by mirror-agent' '$PM/apply-admin.out'"
