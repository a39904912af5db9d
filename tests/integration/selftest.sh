#!/usr/bin/env bash
# Self-test of lib.sh, without mirror-agent: every hosts.toml and registries.conf here is written
# by hand, so when the agent's suite fails, this tells whether the harness or the agent is to
# blame. Each positive check has a negative control next to it (no mirror config -> no pull;
# no CA -> no TLS), otherwise a pass could come from somewhere else than what it claims.
# Usage: tests/integration/selftest.sh   (root; installs missing packages via apt)
# Prints ok / not ok per check and a final "N passed, N failed"; exit status 0 only if all pass.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

harness_install_deps || { echo "0 passed, 1 failed"; exit 1; }
harness_init || { echo "0 passed, 1 failed"; exit 1; }
harness_trap

REF=upstream.invalid/library/hello:1

# --- the reporter ------------------------------------------------------------------------------
reporter_counts_failures() (
  H_PASSED=0 H_FAILED=0
  check "inner pass" true >/dev/null
  check "inner fail" false >/dev/null
  out=$(summary) && return 1
  [ "$out" = "1 passed, 1 failed" ]
)
check "summary prints 'N passed, N failed' and fails when a check failed" reporter_counts_failures

# --- registries ----------------------------------------------------------------------------------
echo "# registries"
start_registry PLAIN || { echo "not ok - plain registry starts"; summary; exit 1; }
start_registry SECURE tls || { echo "not ok - TLS registry starts"; summary; exit 1; }
check "plain registry answers GET /v2/ over http" curl -fsS --max-time 5 "http://$REG_PLAIN_ADDR/v2/"
check "TLS registry answers GET /v2/, trusting only the test CA" \
  curl -fsS --max-time 5 --cacert "$REG_SECURE_CA" "https://$REG_SECURE_ADDR/v2/"
check "TLS registry is refused without the test CA" \
  bash -c "! curl -fsS --max-time 5 'https://$REG_SECURE_ADDR/v2/'"
check "the server certificate names IP 127.0.0.1 and localhost" bash -c \
  "openssl x509 -in '$TEST_SERVER_CRT' -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1, DNS:localhost'"
check "registries listen on loopback only" bash -c \
  "ss -Hltn | awk '{print \$4}' | grep -E ':($REG_PLAIN_PORT|$REG_SECURE_PORT)\$' | grep -vq '^127.0.0.1:' && exit 1 || true"
check "the access log records requests at log level warn" registry_log_has PLAIN '"GET /v2/ HTTP/1.1" 200'

# --- image -----------------------------------------------------------------------------------------
echo "# image"
IMG="$H_TMP/oci-hello"
make_oci_image "$IMG" 1
layout_digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$IMG/index.json")
check "the OCI layout is readable by containers/image" skopeo inspect --raw "oci:$IMG:1"
plain_digest=$(push_image "$IMG" 1 "$REG_PLAIN_ADDR/library/hello:1")
check "push to the plain registry prints a sha256 digest" bash -c "[[ '$plain_digest' =~ ^sha256:[0-9a-f]{64}\$ ]]"
check "the pushed digest is the layout's manifest digest" test "$plain_digest" = "$layout_digest"
secure_digest=$(push_image "$IMG" 1 "$REG_SECURE_ADDR/library/hello:1")
check "push to the TLS registry (certificate verified against the test CA)" test "$secure_digest" = "$layout_digest"
check "skopeo sees the same digest in the registry" test "$(timeout 60 skopeo inspect --tls-verify=false \
  --format '{{.Digest}}' "docker://$REG_PLAIN_ADDR/library/hello:1")" = "$plain_digest"

# --- containerd through a hand-written hosts.toml ------------------------------------------------
# containerd resolves a tag with HEAD .../manifests/<tag>, then GETs the manifest and blobs by
# digest; every request to a mirror host carries ?ns=<the registry the image was asked from>.
echo "# containerd"
start_containerd || { echo "not ok - containerd starts"; summary; exit 1; }
check "private containerd answers on its own socket" ctr --address "$CTRD_SOCK" version

PLAIN_HOSTS="$H_TMP/hosts-plain"
mkdir -p "$PLAIN_HOSTS/upstream.invalid" "$H_TMP/hosts-empty"
cat > "$PLAIN_HOSTS/upstream.invalid/hosts.toml" <<TOML
server = "https://upstream.invalid"

[host."http://$REG_PLAIN_ADDR"]
  capabilities = ["pull", "resolve"]
TOML
check "without hosts.toml the pull fails (upstream.invalid does not exist)" bash -c "! ctr_pull '$H_TMP/hosts-empty' $REF"
ctr_rmi "$REF"
check "ctr pulls $REF through the plain mirror" ctr_pull "$PLAIN_HOSTS" "$REF"
check "the plain mirror's log shows ?ns=upstream.invalid" \
  registry_log_has PLAIN '"HEAD /v2/library/hello/manifests/1?ns=upstream.invalid HTTP/1.1" 200'
check "the pulled image has the pushed digest" bash -c \
  "ctr --address '$CTRD_SOCK' -n harness image ls | grep -F '$REF' | grep -qF '$plain_digest'"
ctr_rmi "$REF"
check "ctr_rmi removed it" bash -c "out=\$(ctr --address '$CTRD_SOCK' -n harness image ls -q) && ! printf '%s\n' \"\$out\" | grep -qxF '$REF'"

TLS_HOSTS="$H_TMP/hosts-tls"
mkdir -p "$TLS_HOSTS/upstream.invalid"
cat > "$TLS_HOSTS/upstream.invalid/hosts.toml" <<TOML
server = "https://upstream.invalid"

[host."https://$REG_SECURE_ADDR"]
  capabilities = ["pull", "resolve"]
  ca = "$TEST_CA_CRT"
TOML
check "ctr pulls $REF through the TLS mirror with ca = test CA" ctr_pull "$TLS_HOSTS" "$REF"
check "the TLS mirror's log shows ?ns=upstream.invalid" \
  registry_log_has SECURE '"HEAD /v2/library/hello/manifests/1?ns=upstream.invalid HTTP/1.1" 200'
ctr_rmi "$REF"
sed -i '/^  ca = /d' "$TLS_HOSTS/upstream.invalid/hosts.toml"
check "without the ca line the same pull fails (the CA is what made it work)" bash -c "! ctr_pull '$TLS_HOSTS' $REF"
ctr_rmi "$REF"

# --- skopeo through a hand-written registries.conf ----------------------------------------------
echo "# skopeo"
# Note: --registries-conf replaces registries.conf only; /etc/containers/registries.conf.d/*.conf
# are still merged in. Nothing there may mention upstream.invalid, or these checks mean little.
check "no system drop-in mentions upstream.invalid" bash -c "[ ! -e /etc/containers/registries.conf.d ] || { grep -rq upstream.invalid /etc/containers/registries.conf.d; [ \$? -eq 1 ]; }"
CONF="$H_TMP/registries.conf"
cat > "$CONF" <<TOML
[[registry]]
prefix = "upstream.invalid"
location = "upstream.invalid"

[[registry.mirror]]
location = "$REG_PLAIN_ADDR"
insecure = true
TOML
: > "$H_TMP/registries-empty.conf"
check "without the mirror skopeo cannot inspect $REF" bash -c \
  "! timeout 60 skopeo --registries-conf '$H_TMP/registries-empty.conf' inspect --no-tags --retry-times 0 docker://$REF"
before=$(registry_log_lines PLAIN)
check "skopeo inspects $REF through the mirror" bash -c \
  "timeout 60 skopeo --registries-conf '$CONF' inspect --no-tags --retry-times 0 docker://$REF > '$H_TMP/skopeo.json'"
check "and reports the pushed digest" bash -c "grep -q '\"Digest\": \"$plain_digest\"' '$H_TMP/skopeo.json'"
check "and the request reached the plain mirror" test "$(registry_log_lines PLAIN)" -gt "$before"

SECURE_CONF="$H_TMP/registries-tls.conf"
sed "s|$REG_PLAIN_ADDR|$REG_SECURE_ADDR|; /insecure/d" "$CONF" > "$SECURE_CONF"
check "skopeo inspects through the TLS mirror with --cert-dir (CA only)" bash -c \
  "timeout 60 skopeo --registries-conf '$SECURE_CONF' inspect --no-tags --retry-times 0 --cert-dir '$TEST_CA_DIR' docker://$REF"
check "and not without it" bash -c \
  "! timeout 60 skopeo --registries-conf '$SECURE_CONF' inspect --no-tags --retry-times 0 docker://$REF"

# --- misbehaving endpoints ---------------------------------------------------------------------
echo "# stubs"
start_hung_listener || echo "not ok - hung listener starts"
start_http_500 || echo "not ok - http-500 server starts"
check "the hung listener accepts but never answers (curl times out, exit 28)" bash -c \
  "curl -sS --max-time 2 -o /dev/null http://127.0.0.1:$HUNG_PORT/v2/; [ \$? -eq 28 ]"
check "and logs the connection" grep -q accepted "$HUNG_LOG"
check "the 500 server answers 500" test "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ERR_PORT/v2/")" = 500
check "to HEAD as well" test "$(curl -s --max-time 5 -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ERR_PORT/v2/x/manifests/1")" = 500
check "and logs the requests" grep -q 'HEAD /v2/x/manifests/1' "$ERR_LOG"

# --- cleanup -------------------------------------------------------------------------------------
echo "# cleanup"
# A nested harness that exits normally: its EXIT trap must end its registry and remove its dir.
# shellcheck disable=SC2016
child='source "$1/lib.sh"; harness_init; harness_trap; start_registry CHILD || exit 1
  echo "$H_TMP ${H_PIDS[*]}" > "$2"'
bash -c "$child" _ "$here" "$H_TMP/child1" 2>/dev/null
read -r c1_tmp c1_pids < "$H_TMP/child1"
all_dead() { local p; for p in "$@"; do _h_dead "$p" || return 1; done; return 0; }
check "a normal exit ends every process it started" all_dead $c1_pids
check "and removes its scratch dir" test ! -e "$c1_tmp"
# A nested harness that is SIGKILLed (no trap can run): the watchdog must do the same.
# (In a subshell, so the "Killed" job notice goes to its /dev/null, not into the report.)
(bash -c "$child"'; kill -9 $$' _ "$here" "$H_TMP/child2"; true) 2>/dev/null
read -r c2_tmp c2_pids < "$H_TMP/child2"
check "after SIGKILL the watchdog ends every process" wait_until 20 all_dead $c2_pids
check "and removes the scratch dir" wait_until 10 test ! -e "$c2_tmp"

summary
