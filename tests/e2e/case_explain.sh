# shellcheck shell=bash
# `mirror-agent explain` judged by the machine's own runtimes (the containerd of this suite:
# bookworm 1.6, trixie 1.7, sid 2.x; containers/image as skopeo, a TEST-SIDE package, reading the
# system /etc/containers/registries.conf and registries.conf.d). For each configuration the files
# are written where the runtime reads them inside the machine (or rendered by the running agent
# from a desired-state file: "ours"), `mirror-agent explain REF --json` run inside the machine
# predicts the first serving endpoint, the runtime pulls REF (containerd: a CRI PullImage on the
# machine's socket; containers/image: `skopeo inspect --raw`), and the registry whose access log
# shows the manifest request (containerd resolves with HEAD, containers/image GETs) must be the
# predicted one. Three loopback registries on the host: EXU is the source registry itself (so
# "the registry itself" is a real, judged answer), EXA and EXB mirrors; every one holds the image
# under each configuration's own repository name, so the first endpoint asked serves it and no
# other registry sees that repository's manifest request.
# Configurations that need another config.toml (a ':'-separated config_path; the deprecated
# registry.mirrors, which the CRI plugin reads only without config_path) are batched into one
# containerd restart each; config.toml is restored byte for byte afterwards.
# EXPLAIN_NEGATIVE_CONTROL=1 swaps every prediction for a wrong one: every comparison then fails
# (kept rows below do this once per runtime on every run).
# Sourced by run.sh; leaves the agent active, agent.yaml, certs.d, registries.conf(.d) and the
# desired state as found.

ce_saved_agent=$(sha256sum < "$M/etc/mirror-agent/agent.yaml")
ce_certs="$M/etc/containerd/certs.d"
ce_before=$(ls -A "$ce_certs" | sort)
start_registry EXU; start_registry EXA; start_registry EXB
make_test_ca
ce_img="$H_TMP/oci-case-explain"
make_oci_image "$ce_img" 1
ce_regs=(EXU EXA EXB)
ce_addr() { local v="REG_$1_ADDR"; echo "${!v}"; }
U=$(ce_addr EXU) A=$(ce_addr EXA) B=$(ce_addr EXB)
u_dir=${U/:/_}_  # containerd's host_port_ spelling
ce_digest=""
for repo in e0 e1 e2 e3 e4 e5 e6 e7 e8 e9 e10 e11 e12 e13 e14 e15 e16 e17 e18 e19 library/eshort \
  c1 kteam/app team/app team/other c4 c6 c7 renamed c9 library/cshort; do
  for reg in "${ce_regs[@]}"; do ce_digest=$(push_image "$ce_img" 1 "$(ce_addr "$reg")/$repo:1") || echo "# push of $repo to $reg failed"; done
done
echo "# explain case: source $U, mirrors A=$A B=$B, containerd $CONTAINERD_VERSION"

# ce_predict REF [RUNTIME]: explain's first endpoint host inside the machine ("blocked" / "none").
ce_predict() {
  inside mirror-agent explain --runtime "${2:-containerd}" --json "$1" | python3 -c '
import json, os, sys
e = json.load(sys.stdin)[0]
host = "blocked" if e["blocked"] else (e.get("firstEndpoint") or {}).get("host", "none")
if os.environ.get("EXPLAIN_NEGATIVE_CONTROL") == "1": host = "wrong:" + host
print(host)'
}
# ce_served REPO OBJECT [METHOD]: the registries whose log shows a manifest request (HEAD unless
# told) for it, as addresses.
ce_served() {
  local reg out=()
  for reg in "${ce_regs[@]}"; do
    registry_log_has "$reg" "\"${3:-HEAD} /v2/$1/manifests/$2[ ?]" && out+=("$(ce_addr "$reg")")
  done
  [ ${#out[@]} -eq 0 ] && out=(none)
  echo "${out[*]}"
}
ce_compare() {
  echo "explain predicted: $1"
  echo "registry logs show: $2"
  [ "$1" = "$2" ]
}
# ce_negative_of PREDICTED SERVED: a negative control's comparison must fail; only a real answer
# made wrong counts (the prediction is "wrong:<host>" and a registry served the pull).
ce_negative_of() {
  [[ $1 == wrong:?* ]] && [ "$2" != none ] || { echo "negative control without an answer: '$1' / '$2'"; return 1; }
  ! ce_compare "$1" "$2"
}
ce_hosts() { mkdir -p "$ce_certs/$1" && cat > "$ce_certs/$1/hosts.toml"; }
ce_clean() { local d; for d in "$@"; do rm -rf "${ce_certs:?}/$d"; done; }
ce_rows=0 ce_matches=0 cc_rows=0 cc_matches=0
# ce_judge NAME REF REPO OBJECT: predict, pull over CRI, compare.
ce_judge() {
  local name=$1 ref=$2 repo=$3 object=$4 predicted served
  predicted=$(ce_predict "$ref")
  cri_pull "$ref" --remove >/dev/null 2>"$H_TMP/ce-pull.err" || echo "# PullImage failed: $(tail -1 "$H_TMP/ce-pull.err")"
  served=$(ce_served "$repo" "$object")
  ce_rows=$((ce_rows + 1))
  [ "$predicted" = "$served" ] && ce_matches=$((ce_matches + 1))
  check "explain = CRI pull (containerd $CONTAINERD_VERSION): $name" ce_compare "$predicted" "$served"
}
# cc_skopeo REF: containers/image inside the machine, reading the system registries.conf(.d).
cc_skopeo() { inside timeout 60 skopeo inspect --raw "docker://$1"; }
# cc_judge NAME REF REPO OBJECT: explain --runtime crio, skopeo, compare.
cc_judge() {
  local name=$1 ref=$2 repo=$3 object=$4 predicted served
  predicted=$(ce_predict "$ref" crio)
  if cc_skopeo "$ref" >/dev/null 2>"$H_TMP/cc-skopeo.err"; then
    served=$(ce_served "$repo" "$object" GET)
  elif grep -qi blocked "$H_TMP/cc-skopeo.err"; then
    served=blocked
  else
    served="failed: $(tail -1 "$H_TMP/cc-skopeo.err")"
  fi
  cc_rows=$((cc_rows + 1))
  [ "$predicted" = "$served" ] && cc_matches=$((cc_matches + 1))
  check "explain = skopeo (containers/image): $name" ce_compare "$predicted" "$served"
}
ce_warns() { inside mirror-agent explain --runtime "$1" "$2" | grep -q -- "$3"; }

# --- ours: rendered by the running agent from a desired-state file, for both runtimes ------------
# U's mirror A (a host source: hosts.toml for containerd, a [[registry]] for CRI-O), and a
# repository-path source B/kteam with its mirror's namespace (CRI-O only: containerd's hosts.toml
# is per host, so containerd pulls B/kteam from B itself).
ce_ours="$M/etc/mirror-agent/mirrors.d/60-explain-case.yaml"
ce_dropin="$M/etc/containers/registries.conf.d/99-mirror-agent.conf"
cat > "$ce_ours" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: $U
    mirrors: ["http://$A"]
  - source: $B/kteam
    mirrors: ["http://$A/kteam"]
YAML
if wait_until 30 bash -c "grep -qs 'http://$A' '$ce_certs/$u_dir/hosts.toml' && grep -qs 'prefix = \"$B/kteam\"' '$ce_dropin'"; then
  ce_judge "ours: the agent's hosts.toml for a host source" "$U/e0:1" e0 1
  ce_judge "ours: a repository-path source is CRI-O only (containerd: the registry itself)" "$B/kteam/app:1" kteam/app 1
  cc_judge "ours: the agent's drop-in for a host source" "$U/c1:1" c1 1
  # Negative control for CRI-O, kept: the same pull judged against a changed answer must differ.
  cc_negative() { ce_negative_of "$(EXPLAIN_NEGATIVE_CONTROL=1 ce_predict "$U/c1:1" crio)" "$(ce_served c1 1 GET)"; }
  check "explain negative control (CRI-O): a changed answer fails the comparison" cc_negative
  # (containerd asked B for kteam/app:1 with HEAD above; containers/image GETs.)
  cc_judge "ours: a repository-path source, its mirror's namespace" "$B/kteam/app:1" kteam/app 1
else
  check "explain case: the agent rendered the case's desired state for both runtimes" false
fi
rm -f "$ce_ours"
check "explain case: the agent removes what it rendered for the case" \
  wait_until 30 bash -c "[ ! -e '$ce_certs/$u_dir/hosts.toml' ] && ! grep -qs '$B/kteam' '$ce_dropin'"
rmdir "$ce_certs/$u_dir" 2>/dev/null || true

ce_hosts "$U" <<EOF
server = "http://$U"
[host."http://$A"]
  capabilities = ["pull", "resolve"]
EOF
ce_judge "hand-written: a mirror in host:port, the registry as server" "$U/e1:1" e1 1
ce_clean "$U"

ce_hosts "$U" <<<"[host.\"http://$B\"]"
ce_hosts "$u_dir" <<<"[host.\"http://$A\"]"
ce_judge "host_port_ is looked up before host:port" "$U/e2:1" e2 1
# Negative control, kept: the same pull judged against explain's answer made wrong must differ.
ce_negative() { ce_negative_of "$(EXPLAIN_NEGATIVE_CONTROL=1 ce_predict "$U/e2:1")" "$(ce_served e2 1)"; }
check "explain negative control: a changed answer fails the comparison" ce_negative
ce_clean "$U" "$u_dir"

ce_hosts _default <<<"[host.\"http://$B\"]"
ce_judge "_default applies when the host has no directory" "$U/e3:1" e3 1
ce_hosts "$U" <<<"[host.\"http://$A\"]"
ce_judge "the host's own directory shadows _default" "$U/e14:1" e14 1
ce_clean "$U"
mkdir -p "$ce_certs/$U" && cp "$TEST_CA_CRT" "$ce_certs/$U/ca.crt"
ce_judge "trap: a CA-only host directory hides _default" "$U/e4:1" e4 1
check "trap warning: the CA-only directory" ce_warns containerd "$U/e4:1" 'warning: .*has no hosts.toml'

ce_clean _default "$U"

ce_hosts "$U" <<EOF
[host."http://$A"]
  capabilities = ["pull"]
[host."http://$B"]
  capabilities = ["pull", "resolve"]
EOF
ce_judge "a tag pull skips a pull-only mirror" "$U/e5:1" e5 1
ce_judge "a digest pull asks the pull-only mirror first" "$U/e6@$ce_digest" e6 "$ce_digest"
ce_clean "$U"

ce_hosts "$U" <<<"server = \"http://$B\""
ce_judge "server only, no [host] table (1.x ignores the file, 2.x reads it)" "$U/e7:1" e7 1
[ "$containerd_major" -lt 2 ] && check "trap warning: server only on containerd 1.x" ce_warns containerd "$U/e7:1" 'warning: .*invalid `host` tree'
ce_clean "$U"

ce_hosts "$U" <<EOF
[host."http://$B"]
[host."http://$A"]
EOF
ce_judge "hosts in file order, not sorted" "$U/e8:1" e8 1
ce_clean "$U"

ce_hosts "$U" <<<"[host.\"http://$A\""
ce_judge "an invalid hosts.toml: the registry itself" "$U/e9:1" e9 1
check "trap warning: an invalid hosts.toml" ce_warns containerd "$U/e9:1" 'warning: .*not valid TOML'
ce_clean "$U"

ce_hosts "$U" <<EOF
[host."http://$A/v2"]
  override_path = true
EOF
ce_judge "override_path" "$U/e10:1" e10 1
ce_clean "$U"

ce_hosts 127.0.0.1 <<<"[host.\"http://$A\"]"
ce_judge "a directory without the port does not cover host:port" "$U/e11:1" e11 1
ce_clean 127.0.0.1

ce_hosts docker.io <<<"[host.\"http://$A\"]"
ce_judge "an unqualified name is docker.io/library/..." "eshort:1" library/eshort 1
ce_clean docker.io

# --- CRI-O: containers/image (skopeo) reading the system registries.conf and drop-ins ------------
cc_main="$M/etc/containers/registries.conf"
cc_d="$M/etc/containers/registries.conf.d"
if [ -e "$cc_main" ]; then cp -p "$cc_main" "$H_TMP/cc-registries.conf"; else rm -f "$H_TMP/cc-registries.conf"; fi
# A repository-path prefix in a drop-in beats the host's entry in the main file (longest prefix
# across files); a name outside it keeps the main file's entry.
cat > "$cc_main" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$B"
insecure = true
EOF
cat > "$cc_d/10-explain-team.conf" <<EOF
[[registry]]
prefix = "$U/team/app"
location = "$U/team/app"
insecure = true
[[registry.mirror]]
location = "$A/team/app"
insecure = true
EOF
cc_judge "repository-path prefix: the longest prefix wins across files" "$U/team/app:1" team/app 1
cc_judge "repository-path prefix: a name outside it keeps the host's entry" "$U/team/other:1" team/other 1
rm -f "$cc_d/10-explain-team.conf"
cat > "$cc_d/20-explain.conf" <<EOF
[[registry]]
prefix = "$U/c4"
location = "$U/c4"
insecure = true
[[registry.mirror]]
location = "$A/c4"
insecure = true
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "$B/c4"
insecure = true

[[registry]]
prefix = "$U/c6"
location = "$U/c6"
insecure = true
[[registry.mirror]]
location = "$A/c6"
insecure = true

[[registry]]
prefix = "$U/c7"
location = "$U/c7"
blocked = true

[[registry]]
prefix = "$U/original"
location = "$A/renamed"
insecure = true

[[registry]]
prefix = "*.explain.invalid"
[[registry.mirror]]
location = "$A"
insecure = true

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "$A"
insecure = true
EOF
# A later drop-in with the same prefix replaces the earlier [[registry]] whole (its mirrors too).
printf '[[registry]]\nprefix = "%s/c6"\nlocation = "%s/c6"\ninsecure = true\n' "$U" "$U" > "$cc_d/90-explain-admin.conf"
cc_judge "digest versus tag: a tag pull skips a digest-only mirror" "$U/c4:1" c4 1
cc_judge "digest versus tag: a digest pull asks the digest-only mirror first" "$U/c4@$ce_digest" c4 "$ce_digest"
cc_judge "trap: a later drop-in with the same prefix replaces the entry whole" "$U/c6:1" c6 1
check "trap warning: the replaced entry" ce_warns crio "$U/c6:1" 'warning: .*replace'
cc_judge "blocked" "$U/c7:1" c7 1
cc_judge "location rewrites the repository path" "$U/original:1" renamed 1
cc_judge "a wildcard prefix (*.explain.invalid)" "c9.explain.invalid/c9:1" c9 1
# An unqualified name: skopeo's docker:// names are normalized to docker.io (no short-name
# search), as CRI-O resolves them when docker.io is the only search registry.
printf 'unqualified-search-registries = ["docker.io"]\n' > "$cc_d/30-explain-search.conf"
cc_judge "an unqualified name, docker.io the search registry" "cshort:1" library/cshort 1
rm -f "$cc_d/20-explain.conf" "$cc_d/30-explain-search.conf" "$cc_d/90-explain-admin.conf"
if [ -e "$H_TMP/cc-registries.conf" ]; then cp -p "$H_TMP/cc-registries.conf" "$cc_main"; else rm -f "$cc_main"; fi

# --- a ':'-separated config_path (needs a containerd restart) ------------------------------------
# 1.6/1.7: the CRI plugin reads each entry in order; the first entry with host_port_, host:port or
# _default wins. 2.1+: CRI pulls go through the transfer service, which reads the list as one
# directory, so the registry itself serves (containerd 12415). The agent is stopped
# meanwhile (it watches config.toml), and config.toml is restored byte for byte afterwards.
ce_config="$M/etc/containerd/config.toml"
cp -p "$ce_config" "$H_TMP/ce-config.toml"
ce_config_sum=$(sha256sum < "$ce_config")
ce_restart_containerd() {
  inside systemctl restart containerd &&
    wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
}
inside systemctl stop mirror-agent
if grep -q '^ *config_path = "/etc/containerd/certs.d"' "$ce_config"; then
  sed -i 's|^\( *\)config_path = "/etc/containerd/certs.d"|\1config_path = "/etc/containerd/certs-explain:/etc/containerd/certs.d"|' "$ce_config"
  check "explain case: containerd restarts with a ':'-separated config_path" ce_restart_containerd
  check "and config dump shows it" test "$(dump_config_path)" = /etc/containerd/certs-explain:/etc/containerd/certs.d
  mkdir -p "$M/etc/containerd/certs-explain/_default"
  printf '[host."http://%s"]\n' "$B" > "$M/etc/containerd/certs-explain/_default/hosts.toml"
  ce_hosts "$U" <<<"[host.\"http://$A\"]"
  ce_judge "':'-separated config_path, _default in the first entry, the host's directory in the second (1.x: the _default; 2.1+: the registry itself)" "$U/e12:1" e12 1
  rm -rf "$M/etc/containerd/certs-explain/_default"
  ce_judge "':'-separated config_path, only the second entry's host directory (1.x: it; 2.1+: the registry itself)" "$U/e13:1" e13 1
  ce_clean "$U"
  rm -rf "$M/etc/containerd/certs-explain"

  # --- the deprecated registry.mirrors beside config_path: the CRI plugin does not load, so no
  # registry sees the pull ("none" on both sides); explain says so instead of naming hosts.toml.
  cp -p "$H_TMP/ce-config.toml" "$ce_config"
  printf '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."%s"]\n  endpoint = ["http://%s"]\n' "$U" "$A" >> "$ce_config"
  ce_hosts "$U" <<<"[host.\"http://$B\"]"
  check "explain case: containerd restarts with legacy registry.mirrors beside config_path" ce_restart_containerd
  ce_judge "trap: legacy registry.mirrors beside config_path, the CRI plugin does not load" "$U/e19:1" e19 1
  check "trap warning: the CRI plugin does not load" ce_warns containerd "$U/e19:1" 'warning: the CRI plugin does not load'
  ce_clean "$U"

  # --- the deprecated registry.mirrors: only without config_path (beside it the CRI plugin
  # refuses to load). Written in the version-2 table of this file; containerd 2.x migrates it
  # into plugins."io.containerd.cri.v1.images".registry.mirrors and, because of it, pulls for the
  # CRI plugin without the transfer service (CheckLocalImagePullConfigs). An endpoint without a
  # scheme is http on a loopback host; "*" applies to a registry without an entry of its own.
  cp -p "$H_TMP/ce-config.toml" "$ce_config"
  sed -i '/^ *config_path = "\/etc\/containerd\/certs.d"/d' "$ce_config"
  cat >> "$ce_config" <<EOF
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$U"]
  endpoint = ["$A"]
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$B"]
  endpoint = ["http://$B", "http://$A"]
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."*"]
  endpoint = ["http://$B"]
EOF
  check "explain case: containerd restarts with legacy registry.mirrors and no config_path" ce_restart_containerd
  check "and config dump shows no config_path" test -z "$(dump_config_path)"
  ce_judge "legacy registry.mirrors: the host's entry (no scheme: http on loopback)" "$U/e15:1" e15 1
  ce_judge "legacy registry.mirrors: \"*\" for a registry without an entry" "$A/e16:1" e16 1
  ce_judge "legacy registry.mirrors: the registry itself listed first" "$B/e17:1" e17 1
  ce_judge "legacy registry.mirrors: a digest pull" "$U/e15@$ce_digest" e15 "$ce_digest"
  ce_hosts "$u_dir" <<<"[host.\"http://$B\"]"
  ce_judge "trap: hosts.toml without config_path is never read (the legacy entry applies)" "$U/e18:1" e18 1
  check "trap warning: hosts.toml ignored without config_path" ce_warns containerd "$U/e18:1" 'warning: .*config_path is not set: the CRI plugin never reads them'
  check "trap warning: deprecated registry.mirrors" ce_warns containerd "$U/e18:1" 'warning: .*deprecated registry.mirrors'
  ce_clean "$u_dir"
else
  check "explain case: config.toml has the agent's config_path line" false
fi
cp -p "$H_TMP/ce-config.toml" "$ce_config"
check "explain case: containerd restarts with the config.toml as found" ce_restart_containerd
check "explain case: config.toml is byte for byte as found" test "$(sha256sum < "$ce_config")" = "$ce_config_sum"
inside systemctl start mirror-agent
check "explain case: the agent starts again" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ]"

echo "# explain case on containerd $CONTAINERD_VERSION: $ce_matches of $ce_rows configurations matched"
echo "# explain case, CRI-O (skopeo $(inside skopeo --version | awk '{ print $3 }')): $cc_matches of $cc_rows configurations matched"

# --- as found ------------------------------------------------------------------------------------
check "explain case: certs.d holds what it held before" test "$(ls -A "$ce_certs" | sort)" = "$ce_before"
check "explain case: agent.yaml unchanged" test "$(sha256sum < "$M/etc/mirror-agent/agent.yaml")" = "$ce_saved_agent"
check "explain case: the agent is active" test "$(inside systemctl is-active mirror-agent)" = active
