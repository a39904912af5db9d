# shellcheck shell=bash
# Issue 14 item 1: runtime actions run off the daemon's loop. With a short WatchdogSec= for the
# agent and a slow containerd start (ExecStartPre=/bin/sleep in a drop-in), the agent keeps
# answering the watchdog during the restart (it is not killed: MainPID and NRestarts unchanged),
# and `systemctl stop` during a restart that fails and is rolled back returns within
# TimeoutStopSec, the agent having finished the restore (original config.toml back, containerd
# active) and exited on its own. Sourced by run.sh with the machine booted and the package
# installed; leaves the agent active and agent.yaml as found, and removes its drop-ins.

S_SAVED_AGENT_YAML="$H_TMP/slowrestart-agent.yaml"
cp "$M/etc/mirror-agent/agent.yaml" "$S_SAVED_AGENT_YAML"
S_CONFIG="$M/etc/containerd/config.toml"
S_RECORD="$M/var/lib/mirror-agent/pending-actions.json"
S_SLEEP=8       # every containerd start takes this long (twice the watchdog limit)
S_WATCHDOG=4    # the agent's WatchdogSec= for this case (the unit ships 60s)
# The agent's TimeoutStopSec= for this case: a failing restart takes two starts plus up to 30 s
# of settling (containerd loops through auto-restarts meanwhile), so the shipped 20s is too short
# for the restore to finish before systemd's SIGKILL (the next start would finish it from the
# durable record, as case_restarts.sh shows); here the agent must finish it and exit on its own.
S_STOP=120
S_CONTAINERD_DROPIN="$M/etc/systemd/system/containerd.service.d/50-e2e-slow-start.conf"
S_AGENT_DROPIN="$M/etc/systemd/system/mirror-agent.service.d/50-e2e-watchdog.conf"

s_show() { nsenter -t "$E2E_INIT_PID" -m -p -- systemctl show -p "$1" --value "$2"; }
# Debian's stock config.toml (the agent's first backup), without config_path.
s_stock() {
  local first
  first=$(ls -d "$M"/var/lib/mirror-agent/backups/*/etc/containerd/config.toml 2>/dev/null | head -1)
  if [ -n "$first" ] && ! grep -q config_path "$first"; then cp "$first" "$S_CONFIG"; else printf 'version = 2\n' > "$S_CONFIG"; fi
}
export -f s_show 2>/dev/null
export E2E_INIT_PID

mkdir -p "${S_CONTAINERD_DROPIN%/*}" "${S_AGENT_DROPIN%/*}"
printf '[Service]\nExecStartPre=/bin/sleep %s\n' "$S_SLEEP" > "$S_CONTAINERD_DROPIN"
printf '[Service]\nWatchdogSec=%ss\nTimeoutStopSec=%ss\n' "$S_WATCHDOG" "$S_STOP" > "$S_AGENT_DROPIN"
printf 'daemon: {restartDelay: 1s, minRestartInterval: 1s}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl stop mirror-agent
s_stock
inside systemctl daemon-reload
t0=$SECONDS
inside systemctl restart containerd
check "setup: a containerd restart now takes ${S_SLEEP}s or more (took $((SECONDS - t0))s)" test $((SECONDS - t0)) -ge "$S_SLEEP"
check "setup: containerd active on the stock config.toml (no config_path)" bash -c "! grep -q config_path '$S_CONFIG' && [ \"\$(s_show ActiveState containerd)\" = active ]"

# --- (1) the watchdog is answered during a slow restart ----------------------------------------
s_since=$(date +%s)
restarts_before=$(s_show NRestarts mirror-agent)
pid_before=$(mainpid containerd)
inside systemctl start mirror-agent
agent_pid=$(mainpid mirror-agent)
check "(1) setup: the running agent has WatchdogSec=${S_WATCHDOG}s, TimeoutStopSec=${S_STOP}s" bash -c "[ \"\$(s_show WatchdogUSec mirror-agent)\" = ${S_WATCHDOG}s ] && [ \"\$(s_show TimeoutStopUSec mirror-agent)\" = 2min ]"
check "(1) the agent fixes config.toml" wait_until 30 grep -q config_path "$S_CONFIG"
check "(1) during the restart STATUS= says it is in progress (the loop is free)" wait_until 20 bash -c "s_show StatusText mirror-agent | grep -q 'containerd restart in progress'"
check "(1) containerd is restarted (MainPID changed) and active" wait_until 60 bash -c "p=\$(s_show MainPID containerd); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid_before ] && [ \"\$(s_show ActiveState containerd)\" = active ]"
check "(1) the restart is reported done" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$s_since --no-pager -q | grep -q 'containerd.service restarted (MainPID'"
check "(1) the agent was not killed by the watchdog: same MainPID ($agent_pid)" test "$(mainpid mirror-agent)" = "$agent_pid"
check "(1) and NRestarts unchanged ($restarts_before)" test "$(s_show NRestarts mirror-agent)" = "$restarts_before"
check "(1) no watchdog timeout in the journal" bash -c "! nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$s_since --no-pager -q | grep -qi 'watchdog timeout'"

# --- (2) systemctl stop during a restart that fails: the restore is finished, then it stops -------
printf 'daemon: {restartDelay: 1s, minRestartInterval: 1s}\ntesting: {breakContainerdStart: true}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl stop mirror-agent
s_stock
inside systemctl restart containerd
s_stock_sum=$(sha256sum < "$S_CONFIG")
s_since=$(date +%s)
inside systemctl start mirror-agent
check "(2) the agent restarts containerd with a config.toml that breaks it" wait_until 30 bash -c "grep -q mirror-agent-test-broken '$S_CONFIG' && [ \"\$(s_show ActiveState containerd)\" != active ]"
sleep 2
t0=$SECONDS
inside systemctl stop mirror-agent
s_took=$((SECONDS - t0))
echo "# systemctl stop during the restart took ${s_took}s (TimeoutStopSec=${S_STOP}s)"
check "(2) systemctl stop returned within TimeoutStopSec (${s_took}s < ${S_STOP}s)" test "$s_took" -lt "$S_STOP"
check "(2) the agent stopped on its own, not killed at the timeout (Result=success)" test "$(s_show Result mirror-agent)" = success
check "(2) it said it was waiting for the restart to finish" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$s_since --no-pager -q | grep -q 'stopping: waiting for the containerd restart in progress'"
check "(2) when stop returned, the original config.toml was back" test "$(sha256sum < "$S_CONFIG")" = "$s_stock_sum"
check "(2) and containerd was active" test "$(s_show ActiveState containerd)" = active
check "(2) the rollback is reported loudly" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent -p crit --since @$s_since --no-pager -q | grep -q 'previous config.toml was restored'"
check "(2) the record is cleared" bash -c "! grep -q '\"containerdRestart\"' '$S_RECORD'"

# --- leave things as found ------------------------------------------------------------------
rm -f "$S_CONTAINERD_DROPIN" "$S_AGENT_DROPIN"
rmdir "${S_CONTAINERD_DROPIN%/*}" "${S_AGENT_DROPIN%/*}" 2>/dev/null
inside systemctl daemon-reload
cp "$S_SAVED_AGENT_YAML" "$M/etc/mirror-agent/agent.yaml"
inside systemctl restart mirror-agent
check "the agent is active again with the agent.yaml it had" wait_until 20 bash -c "[ \"\$(s_show ActiveState mirror-agent)\" = active ]"
# containerd runs with the fixed file (started after its last change) and nothing is pending.
s_in_force() { [ "$(nsenter -t "$E2E_INIT_PID" -m -p -- systemctl show -p ExecMainStartTimestamp --value --timestamp=unix containerd | tr -d '@')" -ge "$(stat -c %Z "$S_CONFIG")" ]; }
export -f s_in_force 2>/dev/null
export S_CONFIG
check "and config.toml has config_path again, containerd runs with it, nothing pending" wait_until 90 bash -c "grep -q config_path '$S_CONFIG' && [ \"\$(s_show ActiveState containerd)\" = active ] && s_in_force && ! grep -q '\"containerdRestart\"' '$S_RECORD'"
