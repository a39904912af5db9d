# The daemon in a scratch --root: drop, edit, replace by rename and delete desired-state files;
# check the outputs and status.json after each; a broken file changes nothing. Sourced by run.sh.

D=$(mktemp -d "$H_TMP/daemon.XXXXXX")
mkdir -p "$D/etc/mirror-agent/mirrors.d" "$D/etc/containerd"
printf 'runtimes: [containerd, crio]\nstatus: {file: /run/mirror-agent/status.json}\ndaemon: {debounce: 200ms}\n' > "$D/etc/mirror-agent/agent.yaml"
"$AGENT" run --root "$D" > "$H_TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
H_PIDS+=($DAEMON_PID)
STATUS="$D/run/mirror-agent/status.json"
HOSTS="$D/etc/containerd/certs.d"
DROPIN="$D/etc/containers/registries.conf.d/99-mirror-agent.conf"

status_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$STATUS" "$1" 2>/dev/null; }
generation() { status_field 'd["generation"]'; }
# wait_generation_after N: the daemon finished a pass after generation N (bounded).
wait_generation_after() { wait_until 10 bash -c "[ \"\$(python3 -c 'import json; print(json.load(open(\"$STATUS\"))[\"generation\"])' 2>/dev/null || echo 0)\" -gt $1 ]"; }

check "the daemon writes its status after the first pass" wait_until 10 test -s "$STATUS"
check "status says ok with no desired files" test "$(status_field 'd["result"]')" = ok
check "mirror-agent status reads it" "$AGENT" status --root "$D"

g=$(generation)
cat > "$D/etc/mirror-agent/mirrors.d/.a.yaml.tmp" <<YAML
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000"]
YAML
mv "$D/etc/mirror-agent/mirrors.d/.a.yaml.tmp" "$D/etc/mirror-agent/mirrors.d/a.yaml"
check "a file dropped by rename is applied" wait_until 10 test -f "$HOSTS/docker.io/hosts.toml"
check "and the CRI-O drop-in too" wait_until 10 grep -q 'location = "127.0.0.1:5000"' "$DROPIN"
wait_generation_after "$g"
check "status counts 1 registry, 1 mirror" test "$(status_field 'd["registries"], d["mirrors"]')" = "(1, 1)"

# One tool writes ten files, 10 ms apart (about 0.1 s in all, inside the 200 ms debounce
# window): the first complete file is reconciled at once, the rest of the burst in one more
# pass, never one pass per file.
sleep 0.5
g=$(generation)
python3 -c '
import os, sys, time
for i in range(1, 11):
    with open(f"{sys.argv[1]}/burst-{i}.yaml", "w") as f:
        f.write(f"mirrors:\n  reg{i}.example:\n    endpoint: [\"http://127.0.0.1:5000\"]\n")
    time.sleep(0.01)
' "$D/etc/mirror-agent/mirrors.d"
check "ten files written by one tool are all applied" wait_until 10 test -f "$HOSTS/reg10.example/hosts.toml"
sleep 1
passes=$(( $(generation) - g ))
check "in at most two reconcile passes (got $passes)" test "$passes" -ge 1 -a "$passes" -le 2

g=$(generation)
sed -i 's|127.0.0.1:5000|127.0.0.1:5001|' "$D/etc/mirror-agent/mirrors.d/a.yaml"
check "an edit in place is applied" wait_until 10 grep -q '127.0.0.1:5001' "$HOSTS/docker.io/hosts.toml"

before=$(cat "$HOSTS/docker.io/hosts.toml" "$DROPIN" | sha256sum)
g=$(generation)
printf 'mirrors:\n  quay.io:\n    endpoint: ["ftp://broken"]\n' > "$D/etc/mirror-agent/mirrors.d/zz-broken.yaml"
check "a broken file is reported in status.json with file:line:column" wait_until 10 bash -c "grep -q 'zz-broken.yaml:3:16' '$STATUS'"
check "status result is invalid" test "$(status_field 'd["result"]')" = invalid
check "mirror-agent status exits 2 for invalid desired state" bash -c "'$AGENT' status --root '$D' >/dev/null; test \$? -eq 2"
check "the files in force did not change" test "$before" = "$(cat "$HOSTS/docker.io/hosts.toml" "$DROPIN" | sha256sum)"
check "the daemon is still running" kill -0 "$DAEMON_PID"
rm "$D/etc/mirror-agent/mirrors.d/zz-broken.yaml"
check "the next valid state is applied again" wait_until 10 bash -c "[ \"\$(python3 -c 'import json; print(json.load(open(\"$STATUS\"))[\"result\"])')\" = ok ]"

rm "$D"/etc/mirror-agent/mirrors.d/burst-*.yaml
check "deleting files removes their outputs" wait_until 10 bash -c "! test -e '$HOSTS/reg1.example'"
check "and keeps the others" test -f "$HOSTS/docker.io/hosts.toml"

echo "# hand edit" >> "$HOSTS/docker.io/hosts.toml"
check "a hand edit of a managed hosts.toml is repaired" wait_until 10 lacks 'hand edit' "$HOSTS/docker.io/hosts.toml"
rm "$DROPIN"
check "a deleted managed drop-in is rewritten" wait_until 10 test -f "$DROPIN"
check "the repair is logged with the file name" wait_until 10 grep -q "repaired drift: .*99-mirror-agent.conf" "$H_TMP/daemon.log"

# The whole directory replaced (as a ConfigMap mount or a config-management tool does).
new=$(mktemp -d "$D/etc/.mirror-agent-new.XXXXXX")
mkdir -p "$new/mirrors.d"
cp "$D/etc/mirror-agent/agent.yaml" "$new/"
printf 'mirrors:\n  ghcr.io:\n    endpoint: ["http://127.0.0.1:5002"]\n' > "$new/mirrors.d/b.yaml"
rm -rf "$D/etc/mirror-agent" && mv "$new" "$D/etc/mirror-agent"
check "a replaced /etc/mirror-agent is picked up" wait_until 10 test -f "$HOSTS/ghcr.io/hosts.toml"
check "and what it no longer has is removed" wait_until 10 bash -c "! test -e '$HOSTS/docker.io/hosts.toml'"
sleep 0.3
printf 'mirrors:\n  registry.k8s.io:\n    endpoint: ["http://127.0.0.1:5003"]\n' > "$D/etc/mirror-agent/mirrors.d/c.yaml"
check "files in the new directory are watched" wait_until 10 test -f "$HOSTS/registry.k8s.io/hosts.toml"

g=$(generation)
kill -HUP "$DAEMON_PID"
check "SIGHUP re-reads settings and reconciles" wait_generation_after "$g"
kill -TERM "$DAEMON_PID"
check "SIGTERM stops it cleanly (exit 0)" bash -c "for i in \$(seq 1 50); do kill -0 $DAEMON_PID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
wait "$DAEMON_PID" 2>/dev/null; rc=$?
check "with status 0" test "$rc" -eq 0

# Issue 22: the restart a pass decides is on disk before config.toml changes, and a new daemon
# (after kill -9) picks it up; with --root nothing can be restarted, so it stays pending and is
# reported.
P=$(mktemp -d "$H_TMP/pending.XXXXXX")
mkdir -p "$P/etc/mirror-agent/mirrors.d" "$P/etc/containerd"
printf 'version = 2\n' > "$P/etc/containerd/config.toml"
printf 'runtimes: [containerd]\ndaemon: {debounce: 50ms, restartDelay: 100ms}\nprobe: {enabled: false}\n' > "$P/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5000"]\n' > "$P/etc/mirror-agent/mirrors.d/a.yaml"
"$AGENT" run --root "$P" > "$H_TMP/pending1.log" 2>&1 &
PPID1=$!
H_PIDS+=($PPID1)
RECORD="$P/var/lib/mirror-agent/pending-actions.json"
check "the daemon fixes config.toml" wait_until 10 grep -q config_path "$P/etc/containerd/config.toml"
check "the containerd restart it calls for is recorded, with the original to restore" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["containerdRestart"]
sys.exit(0 if "config.toml fixed" in r["reason"] and r["originals"][0]["contents"] == "version = 2\n" else 1)' "$RECORD"
check "the record is private (mode 0600: it may hold config.toml)" test "$(stat -c %a "$RECORD")" = 600
kill -KILL "$PPID1"; wait "$PPID1" 2>/dev/null
"$AGENT" run --root "$P" > "$H_TMP/pending2.log" 2>&1 &
PPID2=$!
H_PIDS+=($PPID2)
check "a new daemon picks the pending restart up" wait_until 10 grep -q 'a containerd restart decided earlier is still pending (config.toml fixed' "$H_TMP/pending2.log"
check "and reports it in status.json (restart-pending, with the reason)" wait_until 10 python3 -c '
import json, sys
c = [r for r in json.load(open(sys.argv[1]))["runtimes"] if r["name"] == "containerd"][0]
sys.exit(0 if c["state"] == "restart-pending" and "config.toml fixed" in c.get("pendingReason", "") else 1)' "$P/run/mirror-agent/status.json"
check "mirror-agent check reports it (exit 3)" bash -c "'$AGENT' check --root '$P' > '$H_TMP/pending-check.out'; [ \$? -eq 3 ] && grep -q 'restart pending: config.toml fixed' '$H_TMP/pending-check.out'"
kill -TERM "$PPID2"; wait "$PPID2" 2>/dev/null
