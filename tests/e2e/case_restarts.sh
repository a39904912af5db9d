# shellcheck shell=bash
# Issue 22: a containerd restart the agent decided on is never lost, and a stale containerd
# (started before config.toml changed, whoever changed it) is restarted. Sourced by run.sh with
# the machine booted and the package installed; leaves the agent active and agent.yaml as found.

R_SAVED_AGENT_YAML="$H_TMP/restarts-agent.yaml"
cp "$M/etc/mirror-agent/agent.yaml" "$R_SAVED_AGENT_YAML"
R_RECORD="$M/var/lib/mirror-agent/pending-actions.json"
R_CONFIG="$M/etc/containerd/config.toml"

# When containerd's main process started, and when config.toml last changed (seconds since the epoch).
r_started() { nsenter -t "$E2E_INIT_PID" -m -p -- systemctl show -p ExecMainStartTimestamp --value --timestamp=unix containerd | tr -d '@'; }
r_changed() { stat -c '%Z' "$R_CONFIG"; }
# containerd runs with the file's configuration: it started after config.toml's last change.
r_in_force() { [ "$(r_started)" -ge "$(r_changed)" ]; }
# A pull through the mirror. Until the e2e has a CRI client (issue 12), ctr with --hosts-dir reads
# the hosts files directly; define cri_pull (IMAGE) to go through containerd's CRI plugin instead.
r_pull() {
  if declare -F cri_pull >/dev/null; then cri_pull "$1"; else inside timeout 60 ctr image pull --hosts-dir /etc/containerd/certs.d "$1"; fi
}
export E2E_INIT_PID R_CONFIG
export -f r_started r_changed r_in_force 2>/dev/null
# A stock config.toml (the one Debian ships, kept as the agent's first backup), without config_path.
r_stock() {
  local first
  first=$(ls -d "$M"/var/lib/mirror-agent/backups/*/etc/containerd/config.toml 2>/dev/null | head -1)
  if [ -n "$first" ] && ! grep -q config_path "$first"; then cp "$first" "$R_CONFIG"; else printf 'version = 2\n' > "$R_CONFIG"; fi
}

# --- (a) the agent restarted inside the restart-delay window after it fixed config.toml ---------
printf 'daemon: {restartDelay: 8s, minRestartInterval: 1s}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl stop mirror-agent
r_stock
inside systemctl restart containerd
check "(a) setup: config.toml has no config_path and containerd runs with it" bash -c "lacks config_path '$R_CONFIG' && [ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
if declare -F cri_pull >/dev/null; then
  # Control for the pull check below: containerd on the stock config (no config_path) sends a CRI
  # pull for upstream.invalid to that name itself, which cannot be reached.
  check "(a) control: while containerd runs without config_path the same CRI pull fails" fails cri_pull upstream.invalid/library/hello:1 --remove
fi
sleep 1.2   # one-second timestamps: the fix must come visibly after containerd's start
pid_before=$(mainpid containerd)
inside systemctl start mirror-agent
check "(a) the agent fixes config.toml" wait_until 20 grep -q 'config_path' "$R_CONFIG"
# Inside the 8 s window, as an admin who just edited agent.yaml would:
check "(a) the decided restart is on disk before it is carried out" grep -q '"containerdRestart"' "$R_RECORD"
inside systemctl restart mirror-agent
check "(a) containerd had not been restarted yet when the agent went down" test "$(mainpid containerd)" = "$pid_before"
check "(a) within 30 s containerd is restarted anyway (MainPID changed)" wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value containerd); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid_before ]"
check "(a) and active" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
check "(a) it now runs with the fixed config.toml (started after its last change)" r_in_force
check "(a) the new agent says it carried out a restart decided earlier" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'a containerd restart decided earlier is still pending'"
check "(a) the record is cleared once the restart is verified" wait_until 10 bash -c "! grep -q '\"containerdRestart\"' '$R_RECORD'"
check "(a) a pull through the mirror works" r_pull upstream.invalid/library/hello:1
check "(a) mirror-agent check passes (exit 0)" inside mirror-agent check

# Negative control for the checks above: with the agent stopped, nothing restarts a stale
# containerd, and the check that it runs with the file's configuration fails.
inside systemctl stop mirror-agent
sleep 1.2
printf '# touched by the e2e\n' >> "$R_CONFIG"
check "(control) a config.toml changed after containerd started is seen as not in force" bash -c "! r_in_force"
check "(control) mirror-agent check reports the restart as pending (exit 3)" bash -c "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent check > '$H_TMP/restarts-check.out'; [ \$? -eq 3 ] && grep -q 'restart pending: containerd started before config.toml changed' '$H_TMP/restarts-check.out'"

# --- (b) config.toml changed by hand (config_path set), containerd not restarted ---------------
printf 'containerd: {fixConfig: false}\ndaemon: {restartDelay: 8s, minRestartInterval: 1s}\n' > "$M/etc/mirror-agent/agent.yaml"
r_stock
inside systemctl restart containerd
inside systemctl start mirror-agent
check "(b) setup: with fixConfig false the agent leaves config.toml alone" bash -c "sleep 2; lacks config_path '$R_CONFIG'"
check "(b) and has no restart pending" bash -c "! grep -q '\"containerdRestart\"' '$R_RECORD' 2>/dev/null"
pid_before=$(mainpid containerd)
sleep 1.2
python3 - "$R_CONFIG" <<'PY'
import sys
p = sys.argv[1]
text = open(p).read()
table = '[plugins."io.containerd.grpc.v1.cri".registry]'
if table in text:
    text = text.replace(table, table + '\n  config_path = "/etc/containerd/certs.d"', 1)
else:
    text += '\n' + table + '\n  config_path = "/etc/containerd/certs.d"\n'
open(p, "w").write(text)
PY
check "(b) the hand edit set config_path" grep -q 'config_path = "/etc/containerd/certs.d"' "$R_CONFIG"
check "(b) the agent reports the restart as pending in status" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent status | grep -q 'restart pending: containerd started before config.toml changed'"
check "(b) and in systemctl status (STATUS=)" bash -c "nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager | grep -q 'restart pending: containerd started before config.toml changed'"
check "(b) and in the journal" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'restart pending: containerd started before config.toml changed'"
check "(b) mirror-agent check says so too (exit 3)" bash -c "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent check > '$H_TMP/restarts-check.out'; [ \$? -eq 3 ] && grep -q 'restart pending: containerd started before config.toml changed' '$H_TMP/restarts-check.out'"
check "(b) the agent carries the restart out (MainPID changed)" wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value containerd); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid_before ]"
check "(b) containerd is active and runs with the hand-edited file" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ] && r_in_force"
check "(b) the pending restart is no longer reported" wait_until 10 output_lacks 'restart pending' nsenter -t "$E2E_INIT_PID" -m -p -- mirror-agent status
check "(b) a pull through the mirror works" r_pull upstream.invalid/library/hello:1

# --- (c) issue 14: the agent killed (-9) between containerd's restart and its verification --------
# The fix is made to break containerd (testing.breakContainerdStart); the agent is killed while
# it waits for containerd to come back. systemd starts it again (Restart=on-failure), and the new
# agent finishes the rollback from the durable record.
r_since=$(date +%s)
printf 'daemon: {restartDelay: 1s, minRestartInterval: 1s}\ntesting: {breakContainerdStart: true}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl stop mirror-agent
r_stock
inside systemctl restart containerd
r_stock_sum=$(sha256sum < "$R_CONFIG")
inside systemctl start mirror-agent
check "(c) the agent restarts containerd with a config.toml that breaks it" wait_until 30 bash -c "grep -q mirror-agent-test-broken '$R_CONFIG' && [ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p ActiveState --value containerd)\" != active ]"
agent_pid=$(mainpid mirror-agent)
inside systemctl kill -s KILL mirror-agent
check "(c) it was killed before it could verify and roll back (the breaking config.toml is still there)" grep -q mirror-agent-test-broken "$R_CONFIG"
check "(c) the record with what to restore is on disk" grep -q '"originals"' "$R_RECORD"
check "(c) systemd starts the agent again" wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value mirror-agent); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $agent_pid ]"
check "(c) the new agent finishes the rollback: the original config.toml is back" wait_until 120 bash -c "[ \"\$(sha256sum < '$R_CONFIG')\" = '$r_stock_sum' ]"
check "(c) containerd ends active" wait_until 60 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
check "(c) and the failure is reported loudly" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent -p crit --since @$r_since --no-pager -q | grep -q 'previous config.toml was restored'"
check "(c) the record is cleared" wait_until 10 bash -c "! grep -q '\"containerdRestart\"' '$R_RECORD'"

# --- leave things as found ------------------------------------------------------------------
cp "$R_SAVED_AGENT_YAML" "$M/etc/mirror-agent/agent.yaml"
inside systemctl restart mirror-agent
check "the agent is active again with the agent.yaml it had" wait_until 20 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ]"
