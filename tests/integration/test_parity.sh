# Issue 13: pasted k3s registries.yaml and OpenShift IDMS mean what they mean in k3s, containerd
# and OpenShift, judged by real pulls through the rendered files: containerd (ctr --hosts-dir) and
# containers/image (skopeo --registries-conf). Every check that a registry served a pull reads
# that registry's access log for the GET of the pulled repository's manifest, counted from just
# before the pull (the setup's pushes are PUTs, and earlier pulls are before the mark). Each
# feature also has a negative control: the same check run against a file with the feature taken
# out must fail. Sourced by run.sh, with lib.sh loaded.

start_registry PAR_SRC       # plays the source registry (plain HTTP, loopback)
start_registry PAR_MIR       # a plain-HTTP mirror
start_registry PAR_TLS tls   # HTTPS with the harness's test CA
[ -n "${CTRD_SOCK:-}" ] || start_containerd

par_img="$H_TMP/oci-parity"
make_oci_image "$par_img" 1
push_image "$par_img" 1 "$REG_PAR_SRC_ADDR/par/hello:1" >/dev/null
push_image "$par_img" 1 "$REG_PAR_SRC_ADDR/par/only-source:1" >/dev/null
par_digest=$(push_image "$par_img" 1 "$REG_PAR_MIR_ADDR/par/hello:1")
push_image "$par_img" 1 "$REG_PAR_TLS_ADDR/par/hello:1" >/dev/null

# A name for this machine that is not loopback by its spelling (containerd and k3s decide that
# on the name: `localhost` or a loopback IP literal), yet resolves to a loopback address here:
# the hostname (127.0.0.1 here, 127.0.1.1 on a stock Debian). Registries listening on that
# address and reached by that name play ordinary, HTTPS-by-default registries.
PAR_HN=$(hostname)
PAR_HN_IP=$(getent ahostsv4 "$PAR_HN" 2>/dev/null | awk 'NR == 1 { print $1 }')
par_hn_ok=no
case "$PAR_HN_IP" in 127.*) par_hn_ok=yes ;; esac
# par_start_named NAME [tls]: a registry on $PAR_HN_IP, reached as $PAR_HN:PORT, holding
# par/hello:1; with tls, its certificate (from the harness's test CA) names the hostname.
# Sets PAR_<NAME>_ADDR (hostname:port), PAR_<NAME>_PORT and PAR_<NAME>_LOG.
par_start_named() {
  local name=$1 tls=${2:-} dir="$H_TMP/registry-PAR_$1" port scheme=http tlsline=""
  mkdir -p "$dir/data"
  if [ "$tls" = tls ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$PAR_HN" \
      -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null || return 1
    printf '%s\n' "subjectAltName=DNS:$PAR_HN" 'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature' \
      'extendedKeyUsage=serverAuth' > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$TEST_CA_CRT" -CAkey "$TEST_CA_KEY" -CAcreateserial \
      -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null || return 1
    scheme=https tlsline="  tls: {certificate: \"$dir/server.crt\", key: \"$dir/server.key\"}"
  fi
  port=$(free_port) || return 1
  printf 'version: 0.1\nlog:\n  level: warn\n  formatter: text\n  accesslog: {disabled: false}\nstorage:\n  filesystem: {rootdirectory: "%s"}\nhttp:\n  addr: %s:%s\n  secret: mirror-agent-harness\n%s\n' \
    "$dir/data" "$PAR_HN_IP" "$port" "$tlsline" > "$dir/config.yml"
  _h_spawn "$dir/log" docker-registry serve "$dir/config.yml"
  printf -v "PAR_${name}_ADDR" '%s' "$PAR_HN:$port"
  printf -v "PAR_${name}_PORT" '%s' "$port"
  printf -v "PAR_${name}_LOG" '%s' "$dir/log"
  wait_until 20 _h_probe_registry "$H_LAST_PID" "$scheme://$PAR_HN:$port/v2/" || return 1
  timeout 120 skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$par_img:1" "docker://$PAR_HN_IP:$port/par/hello:1" >&2
}
par_named=no
if [ "$par_hn_ok" = yes ] && par_start_named NSRC && par_start_named NTLS tls; then par_named=yes; fi

par_root() {
  local r
  r=$(mktemp -d "$H_TMP/parity-root.XXXXXX")
  mkdir -p "$r/etc/mirror-agent/mirrors.d"
  printf 'runtimes: [containerd, crio]\n%s' "${1:-}" > "$r/etc/mirror-agent/agent.yaml"
  echo "$r"
}
par_hosts() { echo "$1/etc/containerd/certs.d"; }
par_dropin() { echo "$1/etc/containers/registries.conf.d/99-mirror-agent.conf"; }
# par_mark LOGFILE: its current line count; par_got LOGFILE MARK PATTERN: PATTERN in the lines
# written after MARK.
par_mark() { wc -l < "$1"; }
par_got() { tail -n "+$(($2 + 1))" "$1" | grep -q -- "$3"; }
par_pull() { # HOSTS_DIR REF: a fresh pull: the image is forgotten before and after, so its
  # manifest must be fetched (GET) from a registry every time.
  local rc
  ctr_rmi "$2"
  ctr_pull "$1" "$2"; rc=$?
  ctr_rmi "$2"
  return $rc
}
par_get() { echo "\"GET /v2/$1/manifests/"; }
par_not() { if "$@"; then return 1; fi; return 0; }

# --- item 1: a plain-HTTP endpoint on the registry's own host is kept -----------------------
if [ "$par_named" = yes ]; then
  src="$PAR_NSRC_ADDR"
  R=$(par_root)
  cat > "$R/etc/mirror-agent/mirrors.d/registries.yaml" <<YAML
mirrors:
  "$src":
    endpoint:
      - http://$src
YAML
  check "item 1: apply the k3d-docs shape" "$AGENT" apply --root "$R"
  f="$(par_hosts "$R")/${PAR_HN}_${PAR_NSRC_PORT}_/hosts.toml"
  check "item 1: server stays https, the http endpoint is a [host]" bash -c "grep -q '^server = \"https://$src\"' '$f' && grep -q '^\[host.\"http://$src\"\]' '$f'"
  m=$(par_mark "$PAR_NSRC_LOG")
  check "item 1: ctr pulls through the plain-HTTP endpoint" par_pull "$(par_hosts "$R")" "$src/par/hello:1"
  check "item 1: the registry's log has the GET of par/hello's manifest" par_got "$PAR_NSRC_LOG" "$m" "$(par_get par/hello)"
  # Negative control: what the agent wrote before (the upstream over HTTPS as the only [host]).
  sed -i "s|^\[host.\"http://$src\"\]|[host.\"https://$src\"]|" "$f"
  check "item 1 control: with only HTTPS the same pull fails" par_not par_pull "$(par_hosts "$R")" "$src/par/hello:1"
else
  check "item 1: registries reached by the hostname ($PAR_HN -> $PAR_HN_IP) could be started" false
fi

# --- item 2: the source listed before its mirrors is asked first ---------------------------
# The source is spelled by the hostname so that it sorts after the mirror (127.0.0.1:...): a
# merge that took the source's own entry for a contradicting order (what the agent did before)
# would put the mirror first, whatever the ports.
if [ "$par_named" = yes ]; then
src="$PAR_NSRC_ADDR"
R=$(par_root)
cat > "$R/etc/mirror-agent/mirrors.d/registries.yaml" <<YAML
mirrors:
  "$src":
    endpoint:
      - http://$src
      - http://$REG_PAR_MIR_ADDR
YAML
"$AGENT" apply --root "$R" > "$H_TMP/parity-apply.out" 2>&1
check "item 2: apply k3s [source, mirror]" test $? -eq 0
check "item 2: no warning about contradicting orders" lacks contradict "$H_TMP/parity-apply.out"
par_order_check() { # HOSTS_DIR: the pull is served by the source, and the mirror is not asked
  local ms mm
  ms=$(par_mark "$PAR_NSRC_LOG"); mm=$(par_mark "$REG_PAR_MIR_LOG")
  par_pull "$1" "$src/par/hello:1" && par_got "$PAR_NSRC_LOG" "$ms" "$(par_get par/hello)" &&
    ! par_got "$REG_PAR_MIR_LOG" "$mm" "$(par_get par/hello)"
}
check "item 2: ctr asks the source first, not the mirror" par_order_check "$(par_hosts "$R")"
# Negative control: the order the agent used to produce (mirror first) fails the same check.
f="$(par_hosts "$R")/${PAR_HN}_${PAR_NSRC_PORT}_/hosts.toml"
python3 - "$f" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, *tables = re.split(r'(?m)^(?=(?:# from [^\n]*\n)?\[host\.)', text)
open(sys.argv[1], "w").write(head + "".join(reversed(tables)))
PY
check "item 2 control: with the mirror first the same check fails" par_not par_order_check "$(par_hosts "$R")"

# The same through CRI-O's reader: an IDMS whose first mirror is the source.
R=$(par_root "insecureRegistries: [\"$src\", \"$REG_PAR_MIR_ADDR\"]
")
cat > "$R/etc/mirror-agent/mirrors.d/idms.yaml" <<YAML
apiVersion: config.openshift.io/v1
kind: ImageDigestMirrorSet
metadata: {name: source-first}
spec:
  imageDigestMirrors:
  - source: $src/par
    mirrors: [$src/par, $REG_PAR_MIR_ADDR/par]
YAML
"$AGENT" apply --root "$R" > "$H_TMP/parity-apply.out" 2>&1
check "item 2: apply an IDMS listing the source first" test $? -eq 0
check "item 2: no warning about contradicting orders for the IDMS" lacks contradict "$H_TMP/parity-apply.out"
par_skopeo_order() { # DROPIN
  local ms mm
  ms=$(par_mark "$PAR_NSRC_LOG"); mm=$(par_mark "$REG_PAR_MIR_LOG")
  timeout 60 skopeo --registries-conf "$1" inspect --no-tags --retry-times 0 "docker://$src/par/hello@$par_digest" >/dev/null 2>&1 &&
    par_got "$PAR_NSRC_LOG" "$ms" "$(par_get par/hello)" && ! par_got "$REG_PAR_MIR_LOG" "$mm" "$(par_get par/hello)"
}
check "item 2: skopeo asks the source (first mirror entry) first" par_skopeo_order "$(par_dropin "$R")"
cp "$(par_dropin "$R")" "$H_TMP/parity-dropin-swapped.conf"
python3 - "$H_TMP/parity-dropin-swapped.conf" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, *mirrors = re.split(r'(?m)^(?=(?:# from [^\n]*\n)?\[\[registry\.mirror\]\])', text)
open(sys.argv[1], "w").write(head + "".join(reversed(mirrors)))
PY
check "item 2 control: skopeo with the mirror first fails the same check" par_not par_skopeo_order "$H_TMP/parity-dropin-swapped.conf"
else
  check "item 2: registries reached by the hostname ($PAR_HN -> $PAR_HN_IP) could be started" false
fi

# --- item 3: configs."*" TLS is for _default only -------------------------------------------
if [ "$par_named" = yes ]; then
  R=$(par_root)
  mkdir -p "$R$(dirname "$TEST_CA_CRT")" && cp "$TEST_CA_CRT" "$R$TEST_CA_CRT"
  cat > "$R/etc/mirror-agent/mirrors.d/registries.yaml" <<YAML
mirrors:
  upstream.invalid:
    endpoint:
      - https://$PAR_NTLS_ADDR
configs:
  "*":
    tls:
      ca_file: $TEST_CA_CRT
YAML
  check "item 3: apply configs.\"*\" with a CA" "$AGENT" apply --root "$R"
  check "item 3: the CA is in _default/hosts.toml, with no server" bash -c "grep -q '^ca = \"$TEST_CA_CRT\"' '$(par_hosts "$R")/_default/hosts.toml' && lacks '^server' '$(par_hosts "$R")/_default/hosts.toml'"
  check "item 3: and not on upstream.invalid's mirror" lacks 'ca = ' "$(par_hosts "$R")/upstream.invalid/hosts.toml"
  check "item 3: the CRI-O drop-in has no insecure = true" lacks 'insecure = true' "$(par_dropin "$R")"
  m=$(par_mark "$PAR_NTLS_LOG")
  check "item 3: ctr pulls straight from a TLS registry with _default's CA" par_pull "$(par_hosts "$R")" "$PAR_NTLS_ADDR/par/hello:1"
  check "item 3: that registry's log has the GET" par_got "$PAR_NTLS_LOG" "$m" "$(par_get par/hello)"
  m=$(par_mark "$PAR_NTLS_LOG")
  check "item 3: upstream.invalid's mirror does not get _default's CA (as in k3s): that pull fails" par_not par_pull "$(par_hosts "$R")" upstream.invalid/par/hello:1
  check "item 3: ... on the certificate, after reaching the mirror" grep -q "x509\|certificate" "$H_TMP/ctr-pull.log"
  sed -i '/^ca = /d' "$(par_hosts "$R")/_default/hosts.toml"
  check "item 3 control: without _default's CA the direct pull fails" par_not par_pull "$(par_hosts "$R")" "$PAR_NTLS_ADDR/par/hello:1"
else
  check "item 3: registries reached by the hostname ($PAR_HN -> $PAR_HN_IP) could be started" false
fi

# --- item 4: a loopback source is reached over plain HTTP ------------------------------------
for spelling in "$REG_PAR_SRC_ADDR" "localhost:$REG_PAR_SRC_PORT"; do
  R=$(par_root)
  cat > "$R/etc/mirror-agent/mirrors.d/registries.yaml" <<YAML
mirrors:
  "$spelling":
    endpoint:
      - http://$REG_PAR_MIR_ADDR
YAML
  check "item 4 ($spelling): apply" "$AGENT" apply --root "$R"
  dir=$(par_hosts "$R")/$(echo "$spelling" | sed 's/:\(.*\)$/_\1_/')
  check "item 4 ($spelling): server is http://" grep -q "^server = \"http://$spelling\"" "$dir/hosts.toml"
  m=$(par_mark "$REG_PAR_SRC_LOG")
  check "item 4 ($spelling): an image only the source has comes from the source" par_pull "$(par_hosts "$R")" "$spelling/par/only-source:1"
  check "item 4 ($spelling): the source's log has the GET" par_got "$REG_PAR_SRC_LOG" "$m" "$(par_get par/only-source)"
  sed -i "s|^server = \"http://|server = \"https://|" "$dir/hosts.toml"
  check "item 4 control ($spelling): with an https server the same pull fails" par_not par_pull "$(par_hosts "$R")" "$spelling/par/only-source:1"
done
