# Issue 14 item 3: an invalid agent.yaml makes the daemon report-only (fail closed): no
# config.toml patch, no file written, no restart; the error in status.json; a valid agent.yaml
# reloaded (SIGHUP) puts things in force with the admin's own choices. Sourced by run.sh.

C=$(mktemp -d "$H_TMP/failclosed.XXXXXX")
mkdir -p "$C/etc/mirror-agent/mirrors.d" "$C/etc/containerd"
printf 'version = 2\n' > "$C/etc/containerd/config.toml"
# fixConfig: false is the admin's explicit choice; the typo below must not cancel it.
printf 'containerd: {fixConfig: false}\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\nrestartt: {policy: never}\n' > "$C/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  docker.io:\n    endpoint: ["http://127.0.0.1:5995"]\n' > "$C/etc/mirror-agent/mirrors.d/a.yaml"
config_before=$(sha256sum < "$C/etc/containerd/config.toml")
"$AGENT" run --root "$C" > "$H_TMP/failclosed.log" 2>&1 &
CPID=$!
H_PIDS+=($CPID)
CSTATUS="$C/run/mirror-agent/status.json"
check "with an invalid agent.yaml the daemon runs and writes its status" wait_until 10 test -s "$CSTATUS"
check "status.json says invalid, naming agent.yaml:4:1 and report-only" python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); print(d["result"], d["error"])
sys.exit(0 if d["result"] == "invalid" and "agent.yaml:4:1" in d["error"] and "report-only" in d["error"] else 1)' "$CSTATUS"
check "mirror-agent status exits 2" bash -c "'$AGENT' status --root '$C' >/dev/null; test \$? -eq 2"
check "config.toml is not patched (no fall back to fixConfig: true)" test "$(sha256sum < "$C/etc/containerd/config.toml")" = "$config_before"
check "no runtime file is written" test ! -e "$C/etc/containerd/certs.d"
check "no restart is recorded" test ! -e "$C/var/lib/mirror-agent/pending-actions.json"
check "the journal says report-only" grep -q 'report-only' "$H_TMP/failclosed.log"
check "the daemon keeps running" kill -0 "$CPID"
printf 'containerd: {fixConfig: false}\ndaemon: {debounce: 50ms}\nprobe: {enabled: false}\nrestart: {policy: never}\n' > "$C/etc/mirror-agent/agent.yaml"
kill -HUP "$CPID"
check "a valid agent.yaml reloaded puts the desired state in force" wait_until 10 test -f "$C/etc/containerd/certs.d/docker.io/hosts.toml"
check "with the admin's fixConfig: false: config.toml still untouched" test "$(sha256sum < "$C/etc/containerd/config.toml")" = "$config_before"
check "and status is no longer invalid" wait_until 10 lacks '"result" : "invalid"' "$CSTATUS"
kill -TERM "$CPID"; wait "$CPID" 2>/dev/null
