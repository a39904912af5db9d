# `mirror-agent explain` judged by the runtimes themselves: for each configuration, explain's
# predicted first endpoint must be the loopback registry whose access log shows the pull.
#   containerd: the kubelet's path. A private containerd with its CRI plugin on, whose config.toml
#     sets config_path; ImageService/PullImage on its socket (tests/e2e/cri/cri_pull.py), and
#     explain reads that same config.toml (through `containerd config dump`, as on a node).
#     Where the CRI client (tests/e2e/cri, from branch matrix) is missing or the CRI plugin
#     cannot start, `ctr --hosts-dir` (the same hosts.go lookup) stands in; each check says
#     which judge it used.
#   CRI-O: containers/image (skopeo) reading the *system* /etc/containers/registries.conf and
#     registries.conf.d, bind-mounted in a private mount namespace so the host's stay untouched.
# Sourced by run.sh, with lib.sh loaded. Every registry holds the image, so the first endpoint
# asked serves it and no other registry sees a manifest request for that repository.

start_registry EXU
start_registry EXA
start_registry EXB
[ -n "${CTRD_SOCK:-}" ] || start_containerd

# ex_start_cri: containerd with the CRI plugin, config_path = $EX_CERTS (hosts.toml read at each
# pull). Sets EX_CRI_SOCK and EX_CRI_CONFIG, or returns 1 when the plugin does not come up.
ex_start_cri() {
  local d="$H_TMP/containerd-cri${1:-}"
  EX_CERTS="$d/certs.d"
  local config_path=${2:-$EX_CERTS}
  mkdir -p "$d" "$EX_CERTS" "$d/cni/bin" "$d/cni/conf"
  EX_CRI_CONFIG="$d/config.toml"
  cat > "$EX_CRI_CONFIG" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$d/cni/bin"
    conf_dir = "$d/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$config_path"
TOML
  _h_spawn "$d/log" containerd --config "$EX_CRI_CONFIG"
  EX_CRI_SOCK="$d/containerd.sock"
  wait_until 30 _ex_cri_up "$H_LAST_PID" || { echo "CRI plugin did not come up:" >&2; grep -i "cri\|error" "$d/log" | tail -5 >&2; return 1; }
}
_ex_cri_up() { kill -0 "$1" 2>/dev/null && [ -S "$EX_CRI_SOCK" ] && /usr/bin/python3 -c '
import sys; sys.path.insert(0, sys.argv[2])
import grpc, api_pb2, api_pb2_grpc
ch = grpc.insecure_channel("unix://" + sys.argv[1])
api_pb2_grpc.ImageServiceStub(ch).ListImages(api_pb2.ListImagesRequest(), timeout=5)' "$EX_CRI_SOCK" "$EX_CRI_DIR" 2>/dev/null; }
# The CRI client (tests/e2e/cri/cri_pull.py, generated stubs; EXPLAIN_CRI_CLIENT_DIR may point
# at another copy). Without it, or when the CRI plugin does not come up, ctr --hosts-dir judges.
EX_CRI_DIR=${EXPLAIN_CRI_CLIENT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e/cri" 2>/dev/null && pwd)}
EX_JUDGE=ctr  # EXPLAIN_JUDGE=ctr forces the stand-in
if [ "${EXPLAIN_JUDGE:-}" != ctr ] && [ -n "$EX_CRI_DIR" ] && [ -f "$EX_CRI_DIR/cri_pull.py" ] && ex_start_cri; then EX_JUDGE=cri; fi
echo "# containerd judge: $EX_JUDGE ($(containerd --version | awk '{print $3}'))"
make_test_ca
ex_img="$H_TMP/oci-explain"
make_oci_image "$ex_img" 1
ex_regs=(EXU EXA EXB)
ex_addr() { local v="REG_$1_ADDR"; echo "${!v}"; }
U=$(ex_addr EXU) A=$(ex_addr EXA) B=$(ex_addr EXB)

# ex_push REPO...: the image as REPO:1 on every registry; prints the digest.
ex_push() {
  local repo reg d
  for repo in "$@"; do
    for reg in "${ex_regs[@]}"; do d=$(push_image "$ex_img" 1 "$(ex_addr "$reg")/$repo:1") || return 1; done
  done
  echo "$d"
}
ex_digest=$(ex_push ex1 ex2 ex3 ex4 ex5 ex6 ex7 ex8 ex9 ex10 ex11 c1 team/app c3 c5 c6 renamed library/exshort)

# ex_root: an empty scratch root with a containerd config pointing config_path at certs.d.
ex_root() {
  local r
  r=$(mktemp -d "$H_TMP/explain-root.XXXXXX")
  mkdir -p "$r/etc/containerd/certs.d" "$r/etc/containers/registries.conf.d"
  printf 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n' > "$r/etc/containerd/config.toml"
  : > "$r/etc/containers/registries.conf"
  echo "$r"
}

# ex_predict ROOT RUNTIME REF: explain's first endpoint host (or "blocked" / "none").
# EXPLAIN_NEGATIVE_CONTROL=1 swaps every prediction for a wrong one: the suite must then fail.
ex_predict() {
  "$AGENT" explain --root "$1" --runtime "$2" --json "$3" | python3 -c '
import json, os, sys
e = json.load(sys.stdin)[0]
host = "blocked" if e["blocked"] else (e.get("firstEndpoint") or {}).get("host", "none")
if os.environ.get("EXPLAIN_NEGATIVE_CONTROL") == "1": host = "wrong:" + host
print(host)'
}

# ex_served KIND REPO OBJECT: the registries whose log shows the manifest request (containerd
# resolves with HEAD, containers/image GETs), as addresses; "none" when no registry saw one.
ex_served() {
  local method=$1 repo=$2 object=$3 reg out=()
  for reg in "${ex_regs[@]}"; do
    registry_log_has "$reg" "\"$method /v2/$repo/manifests/$object[ ?]" && out+=("$(ex_addr "$reg")")
  done
  [ ${#out[@]} -eq 0 ] && out=(none)
  echo "${out[*]}"
}

# ex_compare PREDICTED SERVED: one line of evidence, then equal or not.
ex_compare() {
  echo "explain predicted: $1"
  echo "registry logs show: $2"
  [ "$1" = "$2" ]
}

# ex_containerd NAME ROOT REF REPO OBJECT: pull REF through ROOT's certs.d and compare. With the
# CRI judge, ROOT's certs.d becomes the CRI containerd's config_path directory and explain reads
# that containerd's own config.toml on this host.
ex_containerd() {
  local name=$1 root=$2 ref=$3 repo=$4 object=$5 predicted served
  if [ "$EX_JUDGE" = cri ]; then
    rm -rf "$EX_CERTS" && cp -a "$root/etc/containerd/certs.d" "$EX_CERTS"
    predicted=$(ex_predict_cri "$ref")
    timeout 90 /usr/bin/python3 "$EX_CRI_DIR/cri_pull.py" "$EX_CRI_SOCK" "$ref" --remove --timeout 60 >/dev/null 2>"$H_TMP/cri-pull.err" ||
      echo "PullImage failed: $(tail -1 "$H_TMP/cri-pull.err")" >&2
  else
    predicted=$(ex_predict "$root" containerd "$ref")
    ctr_pull "$root/etc/containerd/certs.d" "$ref" >/dev/null 2>&1
  fi
  served=$(ex_served HEAD "$repo" "$object")
  [ "$EX_JUDGE" = ctr ] && ctr_rmi "$ref"
  check "explain containerd ($EX_JUDGE): $name" ex_compare "$predicted" "$served"
}

# ex_predict_cri REF: explain for the CRI containerd, from its config.toml on this host.
ex_predict_cri() {
  "$AGENT" explain --runtime containerd --containerd-config "$EX_CRI_CONFIG" --json "$1" | python3 -c '
import json, os, sys
e = json.load(sys.stdin)[0]
host = "blocked" if e["blocked"] else (e.get("firstEndpoint") or {}).get("host", "none")
if os.environ.get("EXPLAIN_NEGATIVE_CONTROL") == "1": host = "wrong:" + host
print(host)'
}

# ex_skopeo ROOT REF: containers/image reads ROOT's /etc/containers as the system configuration.
ex_skopeo() {
  timeout 60 unshare -m --propagation private sh -c '
    mount --bind "$1/etc/containers" /etc/containers || exit 99
    skopeo --insecure-policy inspect --raw --retry-times 0 "docker://$2" >/dev/null' sh "$1" "$2"
}

# ex_crio NAME ROOT REF REPO OBJECT: inspect REF with skopeo, compare.
ex_crio() {
  local name=$1 root=$2 ref=$3 repo=$4 object=$5 predicted served
  predicted=$(ex_predict "$root" crio "$ref")
  if ex_skopeo "$root" "$ref" 2>"$H_TMP/skopeo.err"; then
    served=$(ex_served GET "$repo" "$object")
  elif grep -q "blocked" "$H_TMP/skopeo.err"; then
    served=blocked
  else
    served="failed: $(tail -1 "$H_TMP/skopeo.err")"
  fi
  check "explain cri-o: $name" ex_compare "$predicted" "$served"
}

hosts() { mkdir -p "$1/etc/containerd/certs.d/$2" && cat > "$1/etc/containerd/certs.d/$2/hosts.toml"; }
u_dir=${U/:/_}_  # containerd's host_port_ spelling

# The CLI contract: an invalid REF is invalid input (2) and says why; a valid one is 0.
ex_exit() { local want=$1; shift; "$AGENT" explain "$@" >/dev/null 2>"$H_TMP/explain.err"; local rc=$?; cat "$H_TMP/explain.err"; [ "$rc" -eq "$want" ]; }
check "explain: an upper-case repository is exit 2" ex_exit 2 --root "$(ex_root)" Nginx
check "explain: a bad digest is exit 2" ex_exit 2 --root "$(ex_root)" "nginx@sha256:abc"
check "explain: a pod-spec name is exit 0" ex_exit 0 --root "$(ex_root)" nginx

# --- containerd --------------------------------------------------------------------------------
R=$(ex_root)
hosts "$R" "$U" <<EOF
server = "http://$U"
[host."http://$A"]
  capabilities = ["pull", "resolve"]
EOF
ex_containerd "ours: a mirror in host:port, upstream as server" "$R" "$U/ex1:1" ex1 1

R=$(ex_root)
hosts "$R" "$U" <<<"[host.\"http://$B\"]"
hosts "$R" "$u_dir" <<<"[host.\"http://$A\"]"
ex_containerd "host_port_ is looked up before host:port" "$R" "$U/ex2:1" ex2 1
# Negative control, kept in the suite: the same pull judged against a deliberately wrong answer
# (the other spelling's mirror) must not compare equal.
ex_negative() {
  local predicted
  if [ "$EX_JUDGE" = cri ]; then predicted=$(EXPLAIN_NEGATIVE_CONTROL=1 ex_predict_cri "$2")
  else predicted=$(EXPLAIN_NEGATIVE_CONTROL=1 ex_predict "$1" containerd "$2"); fi
  ! ex_compare "$predicted" "$(ex_served HEAD ex2 1)"
}
check "negative control: explain's answer changed, the comparison fails" ex_negative "$R" "$U/ex2:1"

R=$(ex_root)
hosts "$R" _default <<<"[host.\"http://$B\"]"
ex_containerd "_default applies when the host has no directory" "$R" "$U/ex3:1" ex3 1

R=$(ex_root)
hosts "$R" _default <<<"[host.\"http://$B\"]"
mkdir -p "$R/etc/containerd/certs.d/$U" && cp "$TEST_CA_CRT" "$R/etc/containerd/certs.d/$U/ca.crt"
ex_containerd "trap: a CA-only host directory hides _default" "$R" "$U/ex4:1" ex4 1
check "explain warns about the CA-only directory" bash -c "'$AGENT' explain --root '$R' --runtime containerd '$U/ex4:1' | grep -q 'has no hosts.toml'"

R=$(ex_root)
hosts "$R" "$U" <<EOF
[host."http://$A"]
  capabilities = ["pull"]
[host."http://$B"]
  capabilities = ["pull", "resolve"]
EOF
ex_containerd "tag pull skips a pull-only mirror" "$R" "$U/ex5:1" ex5 1
ex_containerd "digest pull asks the pull-only mirror first" "$R" "$U/ex6@$ex_digest" ex6 "$ex_digest"

R=$(ex_root)
hosts "$R" "$U" <<<"server = \"http://$B\""
ex_containerd "hand-written: server only, no host table (1.x ignores the file)" "$R" "$U/ex7:1" ex7 1

R=$(ex_root)
hosts "$R" "$U" <<EOF
[host."http://$B"]
[host."http://$A"]
EOF
ex_containerd "hosts in file order, not sorted" "$R" "$U/ex8:1" ex8 1

R=$(ex_root)
hosts "$R" "$U" <<<"[host.\"http://$A\""
ex_containerd "invalid hosts.toml: the registry itself" "$R" "$U/ex9:1" ex9 1

R=$(ex_root)
hosts "$R" "$U" <<EOF
[host."http://$A/v2"]
  override_path = true
EOF
ex_containerd "override_path" "$R" "$U/ex10:1" ex10 1

R=$(ex_root)
hosts "$R" "127.0.0.1" <<<"[host.\"http://$A\"]"
ex_containerd "a directory without the port does not cover host:port" "$R" "$U/ex11:1" ex11 1

if [ "$EX_JUDGE" = cri ]; then
  R=$(ex_root)
  hosts "$R" docker.io <<<"[host.\"http://$A\"]"
  ex_containerd "an unqualified name is docker.io/library/..." "$R" "exshort:1" library/exshort 1
fi

# A ':'-separated config_path (the CRI plugin of 1.6/1.7 reads each entry in order): the first
# entry that has any of host_port_, host:port or _default wins, even _default over the host's own
# directory in a later entry. A second CRI containerd, since config_path is read at start.
if [ "$EX_JUDGE" = cri ]; then
  ex_list_root="$H_TMP/containerd-cri2"
  if ex_start_cri 2 "$ex_list_root/first:$ex_list_root/second"; then
    mkdir -p "$ex_list_root/first/_default" "$ex_list_root/second/$U"
    printf '[host."http://%s"]\n' "$B" > "$ex_list_root/first/_default/hosts.toml"
    printf '[host."http://%s"]\n' "$A" > "$ex_list_root/second/$U/hosts.toml"
    push_image "$ex_img" 1 "$U/exlist:1" >/dev/null && push_image "$ex_img" 1 "$A/exlist:1" >/dev/null && push_image "$ex_img" 1 "$B/exlist:1" >/dev/null
    ex_list() {
      local predicted served
      predicted=$(ex_predict_cri "$U/exlist:1")
      timeout 90 /usr/bin/python3 "$EX_CRI_DIR/cri_pull.py" "$EX_CRI_SOCK" "$U/exlist:1" --remove --timeout 60 >/dev/null || return 1
      served=$(ex_served HEAD exlist 1)
      ex_compare "$predicted" "$served"
    }
    check "explain containerd (cri): a ':'-separated config_path, _default of the first entry wins" ex_list
    rm -rf "$ex_list_root/first/_default"
    ex_list2() {
      local predicted served before
      predicted=$(ex_predict_cri "$U/exlist2:1")
      push_image "$ex_img" 1 "$A/exlist2:1" >/dev/null; push_image "$ex_img" 1 "$U/exlist2:1" >/dev/null
      timeout 90 /usr/bin/python3 "$EX_CRI_DIR/cri_pull.py" "$EX_CRI_SOCK" "$U/exlist2:1" --remove --timeout 60 >/dev/null || return 1
      served=$(ex_served HEAD exlist2 1)
      ex_compare "$predicted" "$served"
    }
    check "explain containerd (cri): a ':'-separated config_path, the second entry's host directory" ex_list2
  else
    check "a second CRI containerd starts" false
  fi
fi

# Trap cases print their warning (the configurations judged above).
R=$(ex_root); hosts "$R" "$U" <<<"server = \"http://$B\""
check "trap warning: a hosts.toml with only server on 1.x" bash -c "'$AGENT' explain --root '$R' --runtime containerd '$U/x:1' | grep -q 'warning: .*invalid \`host\` tree'"
R=$(ex_root); hosts "$R" "$U" <<<"[host.\"http://$A\""
check "trap warning: an invalid hosts.toml" bash -c "'$AGENT' explain --root '$R' --runtime containerd '$U/x:1' | grep -q 'warning: .*not valid TOML'"
R=$(ex_root); hosts "$R" "$U" <<<"[host.\"https://$A\"]
  ca = \"/nonexistent/ca.crt\""
check "trap warning: a CA file that does not exist" bash -c "'$AGENT' explain --root '$R' --runtime containerd '$U/x:1' | grep -q 'warning: .*does not exist'"

# --- CRI-O / containers/image ---------------------------------------------------------------------
R=$(ex_root)
cat > "$R/etc/containers/registries.conf.d/50-mirror-agent.conf" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$A"
insecure = true
EOF
ex_crio "ours: a drop-in mirror" "$R" "$U/c1:1" c1 1

R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$B"
insecure = true
EOF
cat > "$R/etc/containers/registries.conf.d/10-app.conf" <<EOF
[[registry]]
prefix = "$U/team/app"
location = "$U/team/app"
insecure = true
[[registry.mirror]]
location = "$A/team/app"
insecure = true
EOF
ex_crio "longest prefix wins across files" "$R" "$U/team/app:1" team/app 1

R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$A"
insecure = true
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "$B"
insecure = true
EOF
ex_crio "tag pull skips a digest-only mirror" "$R" "$U/c3:1" c3 1
ex_crio "digest pull uses the digest-only mirror" "$R" "$U/c3@$ex_digest" c3 "$ex_digest"

R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$A"
insecure = true
EOF
cat > "$R/etc/containers/registries.conf.d/99-admin.conf" <<EOF
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
EOF
ex_crio "a later drop-in replaces the same prefix whole" "$R" "$U/c5:1" c5 1

R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOF
[[registry]]
prefix = "$U/c6"
location = "$U/c6"
blocked = true
EOF
ex_crio "blocked" "$R" "$U/c6:1" c6 1

R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOF
[[registry]]
prefix = "$U/original"
location = "$A/renamed"
insecure = true
EOF
ex_crio "location rewrites the repository" "$R" "$U/original:1" renamed 1

# --- --probe: each endpoint asked for the manifest in order; the one that has it serves -------
# The image is only on the upstream: the mirror answers 404, so the runtime goes on to the next.
push_image "$ex_img" 1 "$U/onlyu:1" >/dev/null
push_image "$ex_img" 1 "$U/onlyc:1" >/dev/null
# ex_probe_serves ARGS...: the host[:port] explain --probe says serves the pull.
ex_probe_serves() {
  "$AGENT" explain --probe --json "$@" | python3 -c '
import json, sys, urllib.parse
steps = json.load(sys.stdin)[0].get("probe") or []
serving = [s for s in steps if s["serves"]]
print(urllib.parse.urlsplit(serving[0]["url"]).netloc if serving else "none")'
}
# ex_served_200 METHOD REPO: the registries whose log shows that manifest request answered 200.
ex_served_200() {
  local reg out=()
  for reg in "${ex_regs[@]}"; do
    registry_log_has "$reg" "\"$1 /v2/$2/manifests/1[ ?][^\"]*\" 200" && out+=("$(ex_addr "$reg")")
  done
  [ ${#out[@]} -eq 0 ] && out=(none)
  echo "${out[*]}"
}
R=$(ex_root)
cat > "$R/etc/containers/registries.conf" <<EOT
[[registry]]
prefix = "$U"
location = "$U"
insecure = true
[[registry.mirror]]
location = "$A"
insecure = true
EOT
ex_probe_crio() {
  local predicted served
  predicted=$(ex_probe_serves --root "$R" --runtime crio "$U/onlyu:1")
  ex_skopeo "$R" "$U/onlyu:1" || return 1
  served=$(ex_served_200 GET onlyu)
  ex_compare "$predicted" "$served"
}
check "explain --probe cri-o: the mirror lacks the image, the upstream serves" ex_probe_crio
check "explain --probe prints each endpoint's answer and time" bash -c "'$AGENT' explain --probe --root '$R' --runtime crio '$U/onlyu:1' | grep -q 'HTTP 404.* s\$'"
if [ "$EX_JUDGE" = cri ]; then
  rm -rf "$EX_CERTS" && mkdir -p "$EX_CERTS/$U" && printf '[host."http://%s"]\n' "$A" > "$EX_CERTS/$U/hosts.toml"
  ex_probe_cri() {
    local predicted served
    predicted=$(ex_probe_serves --runtime containerd --containerd-config "$EX_CRI_CONFIG" "$U/onlyc:1")
    timeout 90 /usr/bin/python3 "$EX_CRI_DIR/cri_pull.py" "$EX_CRI_SOCK" "$U/onlyc:1" --remove --timeout 60 >/dev/null || return 1
    served=$(ex_served_200 HEAD onlyc)
    ex_compare "$predicted" "$served"
  }
  check "explain --probe containerd (cri): the mirror lacks the image, the upstream serves" ex_probe_cri
fi

# --- --probe with credentials: k3s configs.<host>.auth from the desired state, Basic ----------------
# Debian's docker-registry with htpasswd: every request without credentials is 401 with a Basic
# challenge. The probe asks anonymously, then with the desired state's credentials for that host,
# as containerd's authorizer does with the credentials it is given.
ex_pass="probe-pass-$$"
htpasswd -Bbn explain "$ex_pass" > "$H_TMP/explain.htpasswd" 2>/dev/null
REG_HTPASSWD="$H_TMP/explain.htpasswd" start_registry EXAUTH
P=$(ex_addr EXAUTH)
PUSH_CREDS="explain:$ex_pass" push_image "$ex_img" 1 "$P/priv:1" >/dev/null
R=$(ex_root)
hosts "$R" "$U" <<<"[host.\"http://$P\"]"
mkdir -p "$R/etc/mirror-agent/mirrors.d"
# ex_auth_served: the registry with auth answered the probe's manifest request with 200.
ex_auth_served() { registry_log_has EXAUTH "\"HEAD /v2/priv/manifests/1?ns=$U HTTP/1.1\" 200"; }
check "control: without credentials the probe gets 401 from the registry with auth" \
  bash -c "'$AGENT' explain --probe --root '$R' --runtime containerd '$U/priv:1' | grep -q 'http://$P/v2/priv/manifests/1?ns=$U  HTTP 401 (Basic challenge, no credentials for this host)'"
check "control: and the registry never answered it with 200" lacks "\"HEAD /v2/priv/manifests/1\\?ns=$U HTTP/1.1\" 200" "$REG_EXAUTH_LOG"
cat > "$R/etc/mirror-agent/mirrors.d/k3s.yaml" <<YAML
configs:
  "$P":
    auth:
      username: explain
      password: $ex_pass
YAML
ex_probe_auth() {
  local predicted
  predicted=$(ex_probe_serves --root "$R" --runtime containerd "$U/priv:1")
  ex_compare "$predicted" "$(ex_auth_served && echo "$P" || echo none)"
}
check "explain --probe with k3s configs.<host>.auth: Basic, the registry with auth serves (its log: 200)" ex_probe_auth
check "and says how it authenticated" bash -c "'$AGENT' explain --probe --root '$R' --runtime containerd '$U/priv:1' | grep -q 'HTTP 200 (basic)'"
# ex_no_secret REF: neither the text nor the JSON of explain --probe holds the password.
ex_no_secret() { output_lacks "$ex_pass" "$AGENT" explain --probe --root "$R" "$1" && output_lacks "$ex_pass" "$AGENT" explain --probe --json --root "$R" "$1"; }
check "the password is in no output of explain (text or JSON)" ex_no_secret "$U/priv:1"

# --- --probe with credentials: a Bearer challenge, the token from the realm ------------------------
# docker-registry with `auth: token`: a 401 names the realm (tests/integration/token_service.py,
# which issues RS256 JWTs only to the Basic credentials it knows); the probe fetches a token there
# with the desired state's credentials for the registry's host, as containerd's authorizer does,
# and asks again with it. The registry verifies the token against the service's certificate.
ex_tdir="$H_TMP/token-service"; mkdir -p "$ex_tdir"
ex_tport=$(free_port)
_h_spawn "$ex_tdir/log" /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/token_service.py" "$ex_tdir" "$ex_tport" explain-token-issuer mirror-agent-harness explain "$ex_pass"
wait_until 20 test -s "$ex_tdir/cert.pem"
REGISTRY_TOKEN_REALM="http://127.0.0.1:$ex_tport/token" REGISTRY_TOKEN_CERT="$ex_tdir/cert.pem" start_registry EXTOKEN
T=$(ex_addr EXTOKEN)
PUSH_CREDS="explain:$ex_pass" push_image "$ex_img" 1 "$T/bpriv:1" >/dev/null || echo "# push to the token registry failed"
R=$(ex_root)
hosts "$R" "$U" <<<"[host.\"http://$T\"]"
mkdir -p "$R/etc/mirror-agent/mirrors.d"
ex_token_served() { registry_log_has EXTOKEN "\"HEAD /v2/bpriv/manifests/1?ns=$U HTTP/1.1\" 200"; }
check "control: without credentials the token service refuses, the registry answers 401" \
  bash -c "'$AGENT' explain --probe --root '$R' --runtime containerd '$U/bpriv:1' | grep -q 'http://$T/v2/bpriv/manifests/1?ns=$U  HTTP 401 (anonymous bearer token from 127.0.0.1 refused (HTTP 401))'"
check "control: and the registry never answered it with 200" lacks "\"HEAD /v2/bpriv/manifests/1\\?ns=$U HTTP/1.1\" 200" "$REG_EXTOKEN_LOG"
cat > "$R/etc/mirror-agent/mirrors.d/k3s.yaml" <<YAML
configs:
  "$T":
    auth:
      username: explain
      password: $ex_pass
YAML
ex_probe_token() {
  local predicted
  predicted=$(ex_probe_serves --root "$R" --runtime containerd "$U/bpriv:1")
  ex_compare "$predicted" "$(ex_token_served && echo "$T" || echo none)"
}
check "explain --probe on a Bearer challenge: a token from the realm, the registry serves (its log: 200)" ex_probe_token
check "and says where the token came from" bash -c "'$AGENT' explain --probe --root '$R' --runtime containerd '$U/bpriv:1' | grep -q 'HTTP 200 (bearer token from 127.0.0.1)'"
check "the password is in no output of explain (text or JSON)" ex_no_secret "$U/bpriv:1"
