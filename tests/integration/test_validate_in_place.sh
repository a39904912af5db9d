# `mirror-agent validate --as mirrors.d/NAME.yaml FILE`: FILE judged as installed under NAME,
# merged with the files already in place. Sourced by run.sh.

V=$(mktemp -d "$H_TMP/validate-as.XXXXXX")
mkdir -p "$V/etc/mirror-agent/mirrors.d" "$V/etc/containerd" "$V/cand"
printf 'runtimes: [containerd]\n' > "$V/etc/mirror-agent/agent.yaml"
cat > "$V/etc/mirror-agent/mirrors.d/10-platform.yaml" <<'YAML'
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: docker.io
    mirrorSourcePolicy: NeverContactSource
    mirrors: ["https://mirror-a.example"]
YAML
"$AGENT" apply --root "$V" > /dev/null 2>&1
# Contradicts the installed policy for docker.io: valid alone, invalid in place.
cat > "$V/cand/team.yaml" <<'YAML'
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: docker.io
    mirrorSourcePolicy: AllowContactingSource
    mirrors: ["https://mirror-b.example"]
YAML
# Another source: no conflict.
cat > "$V/cand/quay.yaml" <<'YAML'
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: quay.io
    mirrors: ["https://mirror-q.example"]
YAML
before=$(find "$V/etc" -type f -exec sha256sum {} + | sort)

check "validate: the conflicting fragment alone is valid (negative control)" "$AGENT" validate --root "$V" "$V/cand/team.yaml"
"$AGENT" validate --root "$V" --as mirrors.d/50-team.yaml "$V/cand/team.yaml" > "$H_TMP/va-conflict.out" 2>&1; rc=$?
check "validate --as: rejected (exit 2) when it conflicts with an installed fragment" test "$rc" = 2
check "validate --as: the error names both places" bash -c "grep -q 'cand/team.yaml:6:' '$H_TMP/va-conflict.out' && grep -q '10-platform.yaml' '$H_TMP/va-conflict.out'"
"$AGENT" validate --root "$V" --as mirrors.d/50-quay.yaml "$V/cand/quay.yaml" > "$H_TMP/va-ok.out" 2>&1; rc=$?
check "validate --as: a fragment that does not conflict is accepted (exit 0)" test "$rc" = 0
check "validate --as: and says which rendered file it would create" grep -q "would be created: $V/etc/containerd/certs.d/quay.io/hosts.toml" "$H_TMP/va-ok.out"
check "validate --as: the installed files stay out of its changes" lacks 'docker.io/hosts.toml' "$H_TMP/va-ok.out"
check "validate --as --json: valid, installedAs and changes" bash -c "'$AGENT' validate --root '$V' --json --as mirrors.d/50-quay.yaml '$V/cand/quay.yaml' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"valid\"] and d[\"installedAs\"].endswith(\"/etc/mirror-agent/mirrors.d/50-quay.yaml\") and [c[\"kind\"] for c in d[\"changes\"]] == [\"created\"] else 1)'"
check "validate --as: same name as the installed file replaces it (no conflict with itself)" "$AGENT" validate --root "$V" --as mirrors.d/10-platform.yaml "$V/cand/team.yaml"
"$AGENT" validate --root "$V" --as mirrors.d/10-platform.yaml "$V/cand/team.yaml" --diff > "$H_TMP/va-diff.out" 2>&1
check "validate --as --diff: shows the rendered change" grep -q '^+.*mirror-b.example' "$H_TMP/va-diff.out"
check "validate --as: nothing was written" test "$before" = "$(find "$V/etc" -type f -exec sha256sum {} + | sort)"
"$AGENT" validate --root "$V" --as mirrors.d/.hidden.yaml "$V/cand/quay.yaml" > "$H_TMP/va-name.out" 2>&1; rc=$?
check "validate --as: a name the agent would never read is a usage error (exit 2)" bash -c "[ $rc = 2 ] && grep -q 'reads only mirrors.yaml' '$H_TMP/va-name.out'"
