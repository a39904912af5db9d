# shellcheck shell=bash
# `mirror-agent explain` judged by the machine's own containerd (the version of this suite:
# bookworm 1.6, trixie 1.7, sid 2.x): for each hosts.toml configuration of test_explain.sh's
# containerd corpus that needs no containerd restart, the files are written into the machine's
# /etc/containerd/certs.d (the config_path the agent set), `mirror-agent explain REF --json` run
# inside the machine predicts the first serving endpoint, a CRI PullImage of REF on the machine's
# socket pulls it, and the registry whose access log shows the manifest request (containerd
# resolves with HEAD) must be the predicted one. Three loopback registries on the host: EXU is
# the source registry itself (so "the registry itself" is a real, judged answer), EXA and EXB
# mirrors; every one holds the image under each configuration's own repository name, so the
# first endpoint asked serves it and no other registry sees that repository's manifest request.
# EXPLAIN_NEGATIVE_CONTROL=1 swaps every prediction for a wrong one: every comparison then fails
# (a kept row below does this once on every run).
# Sourced by run.sh; leaves the agent active, agent.yaml and certs.d as found.

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
for repo in e1 e2 e3 e4 e5 e6 e7 e8 e9 e10 e11 e12 e13 library/eshort; do
  for reg in "${ce_regs[@]}"; do ce_digest=$(push_image "$ce_img" 1 "$(ce_addr "$reg")/$repo:1") || echo "# push of $repo to $reg failed"; done
done
echo "# explain case: source $U, mirrors A=$A B=$B, containerd $CONTAINERD_VERSION"

# ce_predict REF: explain's first endpoint host inside the machine ("blocked" / "none").
ce_predict() {
  inside mirror-agent explain --runtime containerd --json "$1" | python3 -c '
import json, os, sys
e = json.load(sys.stdin)[0]
host = "blocked" if e["blocked"] else (e.get("firstEndpoint") or {}).get("host", "none")
if os.environ.get("EXPLAIN_NEGATIVE_CONTROL") == "1": host = "wrong:" + host
print(host)'
}
# ce_served REPO OBJECT: the registries whose log shows a manifest HEAD for it, as addresses.
ce_served() {
  local reg out=()
  for reg in "${ce_regs[@]}"; do
    registry_log_has "$reg" "\"HEAD /v2/$1/manifests/$2[ ?]" && out+=("$(ce_addr "$reg")")
  done
  [ ${#out[@]} -eq 0 ] && out=(none)
  echo "${out[*]}"
}
ce_compare() {
  echo "explain predicted: $1"
  echo "registry logs show: $2"
  [ "$1" = "$2" ]
}
ce_hosts() { mkdir -p "$ce_certs/$1" && cat > "$ce_certs/$1/hosts.toml"; }
ce_clean() { local d; for d in "$@"; do rm -rf "${ce_certs:?}/$d"; done; }
ce_rows=0 ce_matches=0
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

ce_hosts "$U" <<EOF
server = "http://$U"
[host."http://$A"]
  capabilities = ["pull", "resolve"]
EOF
ce_judge "ours: a mirror in host:port, the registry as server" "$U/e1:1" e1 1
ce_clean "$U"

ce_hosts "$U" <<<"[host.\"http://$B\"]"
ce_hosts "$u_dir" <<<"[host.\"http://$A\"]"
ce_judge "host_port_ is looked up before host:port" "$U/e2:1" e2 1
# Negative control, kept: the same pull judged against explain's answer made wrong must differ.
ce_negative() { ! ce_compare "$(EXPLAIN_NEGATIVE_CONTROL=1 ce_predict "$U/e2:1")" "$(ce_served e2 1)"; }
check "explain negative control: a changed answer fails the comparison" ce_negative
ce_clean "$U" "$u_dir"

ce_hosts _default <<<"[host.\"http://$B\"]"
ce_judge "_default applies when the host has no directory" "$U/e3:1" e3 1
mkdir -p "$ce_certs/$U" && cp "$TEST_CA_CRT" "$ce_certs/$U/ca.crt"
ce_judge "trap: a CA-only host directory hides _default" "$U/e4:1" e4 1
check "explain warns about the CA-only directory" bash -c "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent explain --runtime containerd '$U/e4:1' | grep -q 'has no hosts.toml'"
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
ce_clean "$U"

ce_hosts "$U" <<EOF
[host."http://$B"]
[host."http://$A"]
EOF
ce_judge "hosts in file order, not sorted" "$U/e8:1" e8 1
ce_clean "$U"

ce_hosts "$U" <<<"[host.\"http://$A\""
ce_judge "an invalid hosts.toml: the registry itself" "$U/e9:1" e9 1
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
else
  check "explain case: config.toml has the agent's config_path line" false
fi
cp -p "$H_TMP/ce-config.toml" "$ce_config"
check "explain case: containerd restarts with the config.toml as found" ce_restart_containerd
check "explain case: config.toml is byte for byte as found" test "$(sha256sum < "$ce_config")" = "$ce_config_sum"
inside systemctl start mirror-agent
check "explain case: the agent starts again" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ]"

echo "# explain case on containerd $CONTAINERD_VERSION: $ce_matches of $ce_rows configurations matched"

# --- as found ------------------------------------------------------------------------------------
check "explain case: certs.d holds what it held before" test "$(ls -A "$ce_certs" | sort)" = "$ce_before"
check "explain case: agent.yaml unchanged" test "$(sha256sum < "$M/etc/mirror-agent/agent.yaml")" = "$ce_saved_agent"
check "explain case: the agent is active" test "$(inside systemctl is-active mirror-agent)" = active
