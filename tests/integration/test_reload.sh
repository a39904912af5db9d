# `mirror-agent reload` against the daemon in a scratch --root (no systemd: the daemon's PID comes
# from its status file): a valid change is applied and confirmed, an invalid agent.yaml or
# desired state is refused before the daemon is signalled, a daemon that is gone is an error.
# Sourced by run.sh.

R=$(mktemp -d "$H_TMP/reload.XXXXXX")
mkdir -p "$R/etc/mirror-agent/mirrors.d" "$R/etc/containerd"
printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\n' > "$R/etc/mirror-agent/agent.yaml"
cat > "$R/etc/mirror-agent/mirrors.d/a.yaml" <<'YAML'
apiVersion: config.openshift.io/v1
kind: ImageDigestMirrorSet
spec:
  imageDigestMirrors:
  - source: registry.example
    mirrors: ["mirror.example:5000"]
YAML
"$AGENT" run --root "$R" > "$H_TMP/reload-daemon.log" 2>&1 &
RELOAD_DAEMON=$!
H_PIDS+=($RELOAD_DAEMON)
RSTATUS="$R/run/mirror-agent/status.json"
RHOSTS="$R/etc/containerd/certs.d/registry.example/hosts.toml"
rgen() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation"])' "$RSTATUS" 2>/dev/null || echo 0; }

check "reload: the daemon is up (status file)" wait_until 10 test -s "$RSTATUS"
check "reload: schemeless mirror rendered as https by default" grep -q 'https://mirror.example:5000' "$RHOSTS"

printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\ninsecureRegistries: ["mirror.example:5000"]\n' > "$R/etc/mirror-agent/agent.yaml"
check "reload: a valid change is confirmed (exit 0)" "$AGENT" reload --root "$R" --timeout 20
check "reload: the daemon acknowledged it in status.json (result ok)" python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["reload"]; sys.exit(0 if r["result"] == "ok" and r["request"] > 0 else 1)' "$RSTATUS"
check "reload: the new setting is in force when reload returns (http)" grep -q 'http://mirror.example:5000' "$RHOSTS"

g=$(rgen)
printf 'insecureRegistries: []\nbogus: 1\n' > "$R/etc/mirror-agent/agent.yaml"
"$AGENT" reload --root "$R" --timeout 20 > "$H_TMP/reload-bad.out" 2>&1; rc=$?
check "reload: an invalid agent.yaml is refused with exit 2" test "$rc" = 2
check "reload: with file:line:column and what stays in force" bash -c "grep -q 'agent.yaml:2:1' '$H_TMP/reload-bad.out' && grep -q 'previous settings' '$H_TMP/reload-bad.out'"
sleep 0.3
check "reload: the daemon was not signalled (no new pass)" test "$(rgen)" = "$g"
check "reload: the previous settings stay in force (still http)" grep -q 'http://mirror.example:5000' "$RHOSTS"

printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\ninsecureRegistries: ["mirror.example:5000"]\n' > "$R/etc/mirror-agent/agent.yaml"
cp "$R/etc/mirror-agent/mirrors.d/a.yaml" "$H_TMP/reload-a.yaml"
printf 'mirrors:\n  x.example:\n    endpoint: ["ftp://nope"]\n' > "$R/etc/mirror-agent/mirrors.d/b.yaml"
"$AGENT" reload --root "$R" --timeout 20 > "$H_TMP/reload-bad2.out" 2>&1; rc=$?
check "reload: invalid desired state is refused with exit 2, naming the file" bash -c "[ $rc = 2 ] && grep -q 'mirrors.d/b.yaml:3:' '$H_TMP/reload-bad2.out'"
rm -f "$R/etc/mirror-agent/mirrors.d/b.yaml"

# A plain SIGHUP (no request number) with a bad agent.yaml: the daemon itself refuses and says so.
printf 'insecureRegistries: []\nbogus: 1\n' > "$R/etc/mirror-agent/agent.yaml"
kill -HUP "$RELOAD_DAEMON"
check "reload: on a plain SIGHUP the daemon refuses a bad agent.yaml (status: refused, file:line:column)" wait_until 10 python3 -c 'import json,sys; r=json.load(open(sys.argv[1])).get("reload") or {}; sys.exit(0 if r.get("result") == "refused" and r.get("request") == 0 and "agent.yaml:2:1" in (r.get("error") or "") else 1)' "$RSTATUS"
check "reload: and the previous settings stay in force (still http)" grep -q 'http://mirror.example:5000' "$RHOSTS"

printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\n' > "$R/etc/mirror-agent/agent.yaml"
kill -KILL "$RELOAD_DAEMON" 2>/dev/null; wait "$RELOAD_DAEMON" 2>/dev/null
"$AGENT" reload --root "$R" --timeout 5 > "$H_TMP/reload-gone.out" 2>&1; rc=$?
check "reload: no daemon is a failure to act (exit 1), said plainly" bash -c "[ $rc = 1 ] && grep -q 'no running mirror-agent daemon' '$H_TMP/reload-gone.out'"
