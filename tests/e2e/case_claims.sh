# shellcheck shell=bash
# Issue 16: README claims judged by the real parts in the booted machine: systemd itself (the
# notify protocol, READY only after the first pass, the watchdog with a short WatchdogSec=, and
# NRestarts), containerd's unit (MainPID, InvocationID, NRestarts and systemd's own "Started"
# lines) for restarts over bursts of changes, and Debian's prometheus-node-exporter serving the
# agent's metrics textfile over HTTP. Sourced by run.sh with the machine booted and the package
# installed; leaves the agent active, and agent.yaml and config.toml as found.

C_SAVED_AGENT_YAML="$H_TMP/claims-agent.yaml"
cp "$M/etc/mirror-agent/agent.yaml" "$C_SAVED_AGENT_YAML"
C_CONFIG="$M/etc/containerd/config.toml"
cp -p "$C_CONFIG" "$H_TMP/claims-config.toml"
c_show() { nsenter -t "$E2E_INIT_PID" -m -p -- systemctl show -p "$2" --value "$1"; }
c_active() { [ "$(c_show "$1" ActiveState)" = active ]; }
# systemd's own journal lines for a unit started since @T (one per start of its main process).
c_starts() { nsenter -t "$E2E_INIT_PID" -m -p -- journalctl _PID=1 -u "$1" --since "@$2" --no-pager -q -o cat | grep -c "^Started $1"; }
export -f c_show c_active c_starts 2>/dev/null
# reset-failed first: this case starts the agent more often than StartLimitBurst allows in
# StartLimitIntervalSec (systemd refuses "start request repeated too quickly" otherwise).
c_restart_agent() { inside systemctl reset-failed mirror-agent 2>/dev/null; inside systemctl restart mirror-agent; wait_until 20 c_active mirror-agent; }

# --- READY=1 only after the first pass ------------------------------------------------------------
# `systemctl restart` of a Type=notify unit returns once the unit sent READY=1. At that moment the
# new process must already have written its first pass to status.json (its own pid in it).
inside systemctl reset-failed mirror-agent 2>/dev/null; inside systemctl restart mirror-agent
c_pid=$(c_show mirror-agent MainPID)
check "READY=1 only after the first pass: when systemctl restart returns, status.json is the new process's pass" \
  bash -c "nsenter -t $E2E_INIT_PID -m -p -- cat /run/mirror-agent/status.json | python3 -c \"import json,sys; s=json.load(sys.stdin); print(s.get('pid'), s.get('result')); sys.exit(0 if s.get('pid') == $c_pid and s.get('result') == 'ok' else 1)\""
# And in journald's order: a first pass that has a file to write logs "created ..." before
# systemd logs "Started mirror-agent.service" (which it does when READY=1 arrives).
inside systemctl stop mirror-agent
printf 'mirrors:\n  ready.invalid:\n    endpoint: ["http://%s"]\n' "$REG_MIRROR_ADDR" > "$M/etc/mirror-agent/mirrors.d/61-ready.yaml"
# --since has whole seconds: wait out the second of the restart above, so its "Started" line is
# not in the window.
sleep 1.2; c_t=$(date +%s); sleep 1
inside systemctl reset-failed mirror-agent 2>/dev/null
inside systemctl start mirror-agent
nsenter -t "$E2E_INIT_PID" -m -p -- journalctl -u mirror-agent --since "@$c_t" --no-pager -q -o cat > "$H_TMP/claims-ready.txt"
check "READY=1 only after the first pass: journald has the first pass's 'created .../ready.invalid/hosts.toml' before systemd's 'Started mirror-agent.service'" \
  python3 -c "
import sys; lines = open('$H_TMP/claims-ready.txt').read().splitlines()
c = [i for i, l in enumerate(lines) if l.startswith('created ') and 'ready.invalid' in l]
s = [i for i, l in enumerate(lines) if l.startswith('Started mirror-agent.service')]
print('created at', c, 'started at', s); sys.exit(0 if c and len(s) == 1 and c[0] < s[0] else 1)"
rm -f "$M/etc/mirror-agent/mirrors.d/61-ready.yaml"
check "systemd shows the notify STATUS= text" bash -c "c_show mirror-agent StatusText | grep -q registr"

# --- RELOADING=1 and STOPPING=1 as systemd sees them ----------------------------------------------
# With PID 1 logging at debug level, every state change of the unit is logged. A plain SIGHUP
# (no ExecReload= job) moves the unit to reload only if the agent sends RELOADING=1, and back to
# running on its READY=1; a plain SIGTERM moves it to stop-sigterm before the process exits only
# if the agent sends STOPPING=1 (without it: "Main process exited" while still running).
c_pid1_log() { # PID 1's lines about the agent since @T; fails only if journalctl fails
  local out; out=$(nsenter -t "$E2E_INIT_PID" -m -p -- journalctl _PID=1 --since "@$1" --no-pager -q -o cat) || return 1
  printf '%s\n' "$out" | grep '^mirror-agent.service: '; return 0
}
export -f c_pid1_log 2>/dev/null
inside systemd-analyze log-level debug
c_t=$(date +%s); sleep 1
check "control: no reload state change for the agent before the SIGHUP" output_lacks 'Changed running -> reload' c_pid1_log "$c_t"
inside systemctl kill --kill-whom=main --signal=HUP mirror-agent
check "RELOADING=1: systemd moved the unit running -> reload on a plain SIGHUP" wait_until 15 bash -c "c_pid1_log $c_t | grep -q 'Changed running -> reload'"
check "READY=1 after the reload: systemd moved it back to running" wait_until 15 bash -c "c_pid1_log $c_t | grep -Eq 'Changed reload(-notify)? -> running'"
c_t=$(date +%s); sleep 1
inside systemctl kill --kill-whom=main --signal=TERM mirror-agent
check "STOPPING=1: on a plain SIGTERM systemd moved the unit running -> stop-sigterm" wait_until 15 bash -c "c_pid1_log $c_t | grep -q 'Changed running -> stop-sigterm'"
check "and the agent stopped cleanly (inactive, Result=success)" wait_until 15 bash -c "[ \"\$(c_show mirror-agent ActiveState)\" = inactive ] && [ \"\$(c_show mirror-agent Result)\" = success ]"
inside systemd-analyze log-level info
c_restart_agent

# --- the watchdog, with a short WatchdogSec= --------------------------------------------------------
mkdir -p "$M/etc/systemd/system/mirror-agent.service.d"
printf '[Service]\nWatchdogSec=2s\nRestartSec=1s\n' > "$M/etc/systemd/system/mirror-agent.service.d/90-e2e-watchdog.conf"
inside systemctl daemon-reload
c_restart_agent
c_nr=$(c_show mirror-agent NRestarts)
c_pid=$(c_show mirror-agent MainPID)
sleep 8   # four watchdog periods
check "WatchdogSec=2s: after 8 s the agent was never restarted (NRestarts $c_nr -> $(c_show mirror-agent NRestarts), same MainPID)" \
  bash -c "[ \"\$(c_show mirror-agent NRestarts)\" = '$c_nr' ] && [ \"\$(c_show mirror-agent MainPID)\" = '$c_pid' ] && c_active mirror-agent"
# Negative control: the same unit with the agent told not to answer the watchdog. systemd must
# kill it (Result=watchdog) and restart it (NRestarts rises).
printf 'daemon: {watchdog: false}\n' > "$M/etc/mirror-agent/agent.yaml"
c_t=$(date +%s)
c_restart_agent
check "control: with daemon.watchdog false systemd kills and restarts the agent (NRestarts rises)" \
  wait_until 20 bash -c "[ \"\$(c_show mirror-agent NRestarts)\" -gt '$c_nr' ]"
check "control: and its journal says watchdog timeout" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$c_t --no-pager -q -o cat | grep -qi 'watchdog timeout'"
cp "$C_SAVED_AGENT_YAML" "$M/etc/mirror-agent/agent.yaml"
rm -f "$M/etc/systemd/system/mirror-agent.service.d/90-e2e-watchdog.conf"
rmdir "$M/etc/systemd/system/mirror-agent.service.d" 2>/dev/null
inside systemctl daemon-reload
c_restart_agent

# --- containerd restarts: none for hosts.toml-only changes, one per burst of config.toml changes --
# A short rate-limit window, so "past the window" is seconds, not a minute.
printf 'daemon: {debounce: 100ms, restartDelay: 1s, minRestartInterval: 10s}\n' > "$M/etc/mirror-agent/agent.yaml"
c_restart_agent
# Settle: nothing pending from earlier cases (a stale containerd would be restarted now).
wait_until 60 bash -c "[ ! -e '$M/var/lib/mirror-agent/pending-actions.json' ] || lacks '\"containerdRestart\"' '$M/var/lib/mirror-agent/pending-actions.json'"
sleep 12
c_inv=$(c_show containerd InvocationID) c_cpid=$(c_show containerd MainPID) c_cnr=$(c_show containerd NRestarts)
c_t=$(date +%s)
for i in 1 2 3 4 5; do
  printf 'mirrors:\n  burst%s.invalid:\n    endpoint: ["http://%s"]\n' "$i" "$REG_MIRROR_ADDR" > "$M/etc/mirror-agent/mirrors.d/60-burst$i.yaml"
  sleep 0.3
done
check "a burst of 5 desired-state files becomes 5 hosts.toml files" wait_until 15 bash -c "ls '$M'/etc/containerd/certs.d/burst{1,2,3,4,5}.invalid/hosts.toml"
sleep 13   # past restartDelay (1 s) + minRestartInterval (10 s)
check "hosts.toml-only changes: containerd not restarted, past the rate-limit window (same InvocationID and MainPID, NRestarts $c_cnr, no systemd 'Started' line)" \
  bash -c "[ \"\$(c_show containerd InvocationID)\" = '$c_inv' ] && [ \"\$(c_show containerd MainPID)\" = '$c_cpid' ] && [ \"\$(c_show containerd NRestarts)\" = '$c_cnr' ] && [ \"\$(c_starts containerd.service $c_t)\" = 0 ]"
rm -f "$M"/etc/mirror-agent/mirrors.d/60-burst*.yaml

# A burst of three config.toml changes by hand (comments: nothing to fix, but containerd now runs
# with an older file): restartDelay makes it one restart, judged by systemd's journal.
c_t=$(date +%s)
for i in 1 2 3; do echo "# e2e burst edit $i" >> "$C_CONFIG"; sleep 0.3; done
check "a burst of 3 config.toml edits: containerd restarted (new InvocationID)" wait_until 30 bash -c "[ \"\$(c_show containerd InvocationID)\" != '$c_inv' ] && c_active containerd"
sleep 13
check "exactly once for the burst (systemd logged $(c_starts containerd.service "$c_t") start(s)), NRestarts unchanged (no crash)" \
  bash -c "[ \"\$(c_starts containerd.service $c_t)\" = 1 ] && [ \"\$(c_show containerd NRestarts)\" = '$c_cnr' ]"
# Rate limit: a change right after that restart is restarted for only after minRestartInterval.
c_first=$(c_show containerd ExecMainStartTimestampMonotonic)
c_inv=$(c_show containerd InvocationID)
cp -p "$H_TMP/claims-config.toml" "$C_CONFIG"; touch "$C_CONFIG"
check "a later config.toml change (the original put back) is restarted for too" wait_until 40 bash -c "[ \"\$(c_show containerd InvocationID)\" != '$c_inv' ] && c_active containerd"
c_second=$(c_show containerd ExecMainStartTimestampMonotonic)
check "not before minRestartInterval (10 s) after the previous restart (systemd's start times: $(( (c_second - c_first) / 1000000 )) s apart)" \
  test "$(( c_second - c_first ))" -ge 10000000
check "config.toml is as found" cmp "$H_TMP/claims-config.toml" "$C_CONFIG"

# --- metrics as Debian's prometheus-node-exporter serves them ----------------------------------------
# Installed inside the machine from the archive (not a Depends: the agent writes its textfile only
# where the directory exists), kept from starting on its own (it would listen on *:9100 of the
# host's shared network namespace), then started on a loopback port of ours.
c_ne_port=$(free_port)
printf '#!/bin/sh\nexit 101\n' > "$M/usr/sbin/policy-rc.d"; chmod 755 "$M/usr/sbin/policy-rc.d"
check "prometheus-node-exporter installs in the machine (Debian's package)" \
  inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-node-exporter
rm -f "$M/usr/sbin/policy-rc.d"
printf 'ARGS="--web.listen-address=127.0.0.1:%s --collector.textfile.directory=/var/lib/prometheus/node-exporter"\n' "$c_ne_port" \
  > "$M/etc/default/prometheus-node-exporter"
inside systemctl restart prometheus-node-exporter
c_scrape() { python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$c_ne_port/metrics', timeout=5).read().decode())"; }
export -f c_scrape 2>/dev/null; export c_ne_port
check "node_exporter answers on 127.0.0.1:$c_ne_port" wait_until 20 c_scrape
# The agent started before the directory existed: its unit (ProtectSystem=strict,
# ReadWritePaths=-/var/lib/prometheus/node-exporter) cannot write there until restarted.
check "control: before the agent writes its textfile, node_exporter serves no mirror_agent_ metric" output_lacks '^mirror_agent_' c_scrape
c_restart_agent
check "after an agent restart node_exporter serves mirror_agent_reconcile_total" wait_until 30 bash -c "c_scrape | grep -q '^mirror_agent_reconcile_total{'"
c_scrape > "$H_TMP/node-exporter.txt"
check "the scrape parses (Prometheus' own parser) with the agent's families, and no textfile error" python3 - "$H_TMP/node-exporter.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
# (the parser names a counter family without its _total suffix)
want = [("mirror_agent_reconcile", "mirror_agent_reconcile_total"), ("mirror_agent_last_reconcile_timestamp_seconds",),
        ("mirror_agent_node_config_errors",)]
missing = [w[0] for w in want if not any(n in fams for n in w)]
errors = [s.value for s in fams.get("node_textfile_scrape_error", type("x", (), {"samples": []})).samples]
print("missing:", missing, "node_textfile_scrape_error:", errors)
sys.exit(0 if not missing and errors and all(v == 0 for v in errors) else 1)
PY
inside systemctl stop prometheus-node-exporter

# --- leave things as found ------------------------------------------------------------------------
cp "$C_SAVED_AGENT_YAML" "$M/etc/mirror-agent/agent.yaml"
c_restart_agent
check "claims case: the agent is active again with the agent.yaml it had" c_active mirror-agent
