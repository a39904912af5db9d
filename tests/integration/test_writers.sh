# RuntimeWriters through the real consumers: containerd's resolver (ctr --hosts-dir) and
# containers/image (skopeo --registries-conf), pulling from real registries on loopback.
# Sourced by run.sh, with lib.sh loaded.

start_registry MIRROR
start_registry UPSTREAM
start_registry SECURE tls
start_containerd

img="$H_TMP/oci-hello"
make_oci_image "$img" 1
# The mirror holds the image under its plain name, under a namespace, and the upstream has its own.
push_image "$img" 1 "$REG_MIRROR_ADDR/library/hello:1" >/dev/null
mirror_digest=$(push_image "$img" 1 "$REG_MIRROR_ADDR/quay/library/hello:1")
push_image "$img" 1 "$REG_SECURE_ADDR/library/hello:1" >/dev/null
push_image "$img" 1 "$REG_UPSTREAM_ADDR/only-upstream/hello:1" >/dev/null
push_image "$img" 1 "$REG_UPSTREAM_ADDR/library/hello:1" >/dev/null

# A scratch root per case; the agent writes only under it.
new_root() {
  local r
  r=$(mktemp -d "$H_TMP/root.XXXXXX")
  mkdir -p "$r/etc/mirror-agent/mirrors.d"
  printf 'runtimes: [containerd, crio]\n%s' "${1:-}" > "$r/etc/mirror-agent/agent.yaml"
  echo "$r"
}
hosts_dir() { echo "$1/etc/containerd/certs.d"; }
dropin() { echo "$1/etc/containers/registries.conf.d/99-mirror-agent.conf"; }
# served_since NAME SINCE REGEX: the registry's access log, after line SINCE (registry_log_lines
# taken before the action), has a line matching REGEX (grep -E).
served_since() { local var="REG_$1_LOG"; tail -n +"$(( $2 + 1 ))" "${!var}" | grep -Eq -- "$3"; }
skopeo_inspect() { # ROOT REF: inspect through the rendered drop-in only
  timeout 60 skopeo --registries-conf "$(dropin "$1")" inspect --no-tags --retry-times 0 "docker://$2" >/dev/null 2>&1
}

# --- a plain-HTTP mirror for an unresolvable upstream -------------------------------------
R=$(new_root)
cat > "$R/etc/mirror-agent/mirrors.d/10-mirror.yaml" <<YAML
mirrors:
  upstream.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
check "apply writes hosts.toml and the CRI-O drop-in" "$AGENT" apply --root "$R"
check "containerd has no way without the files" bash -c "! ctr_pull '$H_TMP/empty-hosts' upstream.invalid/library/hello:1"
check "ctr pulls upstream.invalid through the plain-HTTP mirror" ctr_pull "$(hosts_dir "$R")" upstream.invalid/library/hello:1
check "the mirror was asked on behalf of upstream.invalid (?ns=)" registry_log_has MIRROR 'ns=upstream.invalid'
check "skopeo cannot reach upstream.invalid without the drop-in" bash -c "! timeout 60 skopeo inspect --no-tags --retry-times 0 docker://upstream.invalid/library/hello:1 >/dev/null 2>&1"
check "skopeo inspects upstream.invalid through the drop-in" skopeo_inspect "$R" upstream.invalid/library/hello:1
check "a second apply changes nothing" bash -c "'$AGENT' apply --root '$R' --json | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r[\"changed\"] is False and r[\"written\"]==[] else 1)'"
ctr_rmi upstream.invalid/library/hello:1

# --- an HTTPS mirror with a test CA --------------------------------------------------------
R=$(new_root)
mkdir -p "$R$(dirname "$TEST_CA_CRT")" && cp "$TEST_CA_CRT" "$R$TEST_CA_CRT"
cat > "$R/etc/mirror-agent/mirrors.d/10-secure.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: secure-upstream.invalid
    mirrors:
    - url: https://$REG_SECURE_ADDR
      tls: {ca: $TEST_CA_CRT}
YAML
check "apply with a CA" "$AGENT" apply --root "$R"
check "hosts.toml names the CA" grep -q "ca = \"$TEST_CA_CRT\"" "$(hosts_dir "$R")/secure-upstream.invalid/hosts.toml"
check "ctr pulls through the HTTPS mirror, trusting the test CA" ctr_pull "$(hosts_dir "$R")" secure-upstream.invalid/library/hello:1
ctr_rmi secure-upstream.invalid/library/hello:1
sed -i '/^  ca = /d' "$(hosts_dir "$R")/secure-upstream.invalid/hosts.toml"
check "without the CA the same pull fails (the CA is what made it work)" bash -c "! ctr_pull '$(hosts_dir "$R")' secure-upstream.invalid/library/hello:1"
ctr_rmi secure-upstream.invalid/library/hello:1

# --- a mirror that keeps the source under a namespace (override_path) ----------------------
R=$(new_root)
cat > "$R/etc/mirror-agent/mirrors.d/10-ns.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: quay.invalid
    mirrors: ["http://$REG_MIRROR_ADDR/quay"]
YAML
check "apply a namespaced mirror" "$AGENT" apply --root "$R"
check "hosts.toml uses the namespace as API root with override_path" grep -q "override_path = true" "$(hosts_dir "$R")/quay.invalid/hosts.toml"
# The mirror also holds the image without the namespace (library/hello), so a pull that worked
# with the namespace dropped would succeed too: only the access log lines after the pull tell.
seen=$(registry_log_lines MIRROR)
check "ctr pulls quay.invalid/library/hello from <mirror>/quay/library/hello" ctr_pull "$(hosts_dir "$R")" quay.invalid/library/hello:1
check "the mirror served /v2/quay/library/hello for quay.invalid (?ns=), not /v2/library/hello" \
  served_since MIRROR "$seen" '"(GET|HEAD) /v2/quay/library/hello/manifests/1\?ns=quay\.invalid HTTP/1\.1" 200'
check "control: that log check fails for the un-namespaced path" fails \
  served_since MIRROR "$seen" '"(GET|HEAD) /v2/library/hello/manifests/1\?ns=quay\.invalid HTTP/1\.1" 200'
ctr_rmi quay.invalid/library/hello:1
seen=$(registry_log_lines MIRROR)
check "skopeo pulls through location <mirror>/quay" skopeo_inspect "$R" quay.invalid/library/hello:1
check "and the mirror served skopeo /v2/quay/library/hello" served_since MIRROR "$seen" '"GET /v2/quay/library/hello/manifests/1 HTTP/1\.1" 200'
# Negative control: without override_path containerd appends /v2 to the path
# (<mirror>/quay/v2/...), which the mirror does not serve, and quay.invalid does not resolve.
sed -i '/override_path = true/d' "$(hosts_dir "$R")/quay.invalid/hosts.toml"
check "control: with override_path removed from hosts.toml the same pull fails" fails ctr_pull "$(hosts_dir "$R")" quay.invalid/library/hello:1
ctr_rmi quay.invalid/library/hello:1

# --- NeverContactSource: a reachable upstream that must not be asked -----------------------
for policy in AllowContactingSource NeverContactSource; do
  R=$(new_root "insecureRegistries: [\"$REG_UPSTREAM_ADDR\"]
")
  cat > "$R/etc/mirror-agent/mirrors.d/10-policy.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: $REG_UPSTREAM_ADDR
    mirrorSourcePolicy: $policy
    mirrors: ["http://$REG_MIRROR_ADDR"]
YAML
  check "apply $policy" "$AGENT" apply --root "$R"
  before=$(wc -l < "$REG_UPSTREAM_LOG")
  if [ "$policy" = AllowContactingSource ]; then
    check "Allow: an image only the upstream has is pulled from it" ctr_pull "$(hosts_dir "$R")" "$REG_UPSTREAM_ADDR/only-upstream/hello:1"
    check "Allow: skopeo falls back to the upstream too" skopeo_inspect "$R" "$REG_UPSTREAM_ADDR/only-upstream/hello:1"
    check "Allow: the upstream's log shows those requests (so silence below means something)" test "$(wc -l < "$REG_UPSTREAM_LOG")" -gt "$before"
    ctr_rmi "$REG_UPSTREAM_ADDR/only-upstream/hello:1"
  else
    check "Never: an image only the upstream has cannot be pulled" bash -c "! ctr_pull '$(hosts_dir "$R")' '$REG_UPSTREAM_ADDR/only-upstream/hello:1'"
    check "Never: skopeo refuses the source as blocked" bash -c "timeout 60 skopeo --registries-conf '$(dropin "$R")' inspect --no-tags --retry-times 0 'docker://$REG_UPSTREAM_ADDR/only-upstream/hello:1' 2>&1 | grep -qi blocked"
    check "Never: an image the mirror has is pulled from the mirror" ctr_pull "$(hosts_dir "$R")" "$REG_UPSTREAM_ADDR/library/hello:1"
    check "Never: skopeo inspects it through the mirror" skopeo_inspect "$R" "$REG_UPSTREAM_ADDR/library/hello:1"
    after=$(wc -l < "$REG_UPSTREAM_LOG")
    check "Never: the upstream registry saw no request at all" test "$before" -eq "$after"
    ctr_rmi "$REG_UPSTREAM_ADDR/library/hello:1"
  fi
done

# --- CRI-O: digest-only vs tag-only mirrors -------------------------------------------------
for kind in ImageDigestMirrorSet ImageTagMirrorSet; do
  R=$(new_root "insecureRegistries: [\"$REG_MIRROR_ADDR\"]
")
  list=$([ $kind = ImageDigestMirrorSet ] && echo imageDigestMirrors || echo imageTagMirrors)
  cat > "$R/etc/mirror-agent/mirrors.d/10-$kind.yaml" <<YAML
apiVersion: config.openshift.io/v1
kind: $kind
spec:
  $list:
  - source: upstream.invalid/library
    mirrors: [$REG_MIRROR_ADDR/quay/library]
YAML
  check "apply $kind" "$AGENT" apply --root "$R"
  if [ $kind = ImageDigestMirrorSet ]; then
    check "digest-only: skopeo pulls by digest through the mirror" skopeo_inspect "$R" "upstream.invalid/library/hello@$mirror_digest"
    check "digest-only: a tag pull skips the mirror (and fails)" bash -c "! skopeo --registries-conf '$(dropin "$R")' inspect --no-tags --retry-times 0 docker://upstream.invalid/library/hello:1 >/dev/null 2>&1"
  else
    check "tag-only: skopeo pulls by tag through the mirror" skopeo_inspect "$R" "upstream.invalid/library/hello:1"
    check "tag-only: a digest pull skips the mirror (and fails)" bash -c "! skopeo --registries-conf '$(dropin "$R")' inspect --no-tags --retry-times 0 docker://upstream.invalid/library/hello@$mirror_digest >/dev/null 2>&1"
  fi
done

# --- invalid input writes nothing -----------------------------------------------------------
R=$(new_root)
cat > "$R/etc/mirror-agent/mirrors.d/10-mirror.yaml" <<YAML
mirrors:
  upstream.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
"$AGENT" apply --root "$R" >/dev/null 2>&1
snapshot=$(find "$R/etc/containerd" "$R/etc/containers" -type f -exec sha256sum {} + | sort)
printf 'mirrors:\n  upstream.invalid:\n    endpoint: ["ftp://nope"]\n' > "$R/etc/mirror-agent/mirrors.d/20-broken.yaml"
"$AGENT" apply --root "$R" > "$H_TMP/broken.out" 2>&1; rc=$?
check "broken desired state exits 2" test "$rc" -eq 2
check "the error names file:line:column" grep -q "20-broken.yaml:3:16: mirror \"ftp://nope\" has scheme \"ftp\"" "$H_TMP/broken.out"
check "and nothing changed on disk" test "$snapshot" = "$(find "$R/etc/containerd" "$R/etc/containers" -type f -exec sha256sum {} + | sort)"
