# shellcheck shell=bash
# systemctl reload runs `mirror-agent reload` (ExecReload=): a valid change is in force when the
# command returns; an invalid one makes `systemctl reload` fail, with the error in `systemctl
# status`, and the previous settings stay in force. The journal of a start, a reload and a stop
# has no warning or error line. Sourced by run.sh; leaves the agent active, agent.yaml as found.

in_ns() { nsenter -t "$E2E_INIT_PID" -m -p -- "$@"; }
saved_agent=$(cat "$M/etc/mirror-agent/agent.yaml")
agent_lines=$(printf '%s\n' "$saved_agent" | wc -l)
# The setting changed below is insecureRegistries for the source (not probed): its server goes from
# https to http; the mirror stays the healthy loopback registry throughout.
cat > "$M/etc/mirror-agent/mirrors.d/60-reload.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: reload.invalid:5000
    mirrors: ["http://$REG_MIRROR_ADDR"]
YAML
RH="$M/etc/containerd/certs.d/reload.invalid_5000_/hosts.toml"
check "reload: the source is reached over https (not in insecureRegistries)" wait_until 15 grep -q 'server = "https://reload.invalid:5000"' "$RH"
check "reload: the unit's ExecReload= is mirror-agent reload" bash -c "in_ns() { nsenter -t $E2E_INIT_PID -m -p -- \"\$@\"; }; in_ns systemctl show -p ExecReload mirror-agent | grep -q 'path=/usr/bin/mirror-agent ; argv\[\]=/usr/bin/mirror-agent reload'"

# --- a clean journal: start, valid reload, stop ------------------------------------------------
# The CRI-O stand-in of run.sh reloads with /bin/kill, which a minbase root does not have (procps):
# its reloads would fail and the agent would rightly log that. A drop-in gives it the shell's kill.
standin_dropin="$M/etc/systemd/system/crio.service.d/50-e2e-reload.conf"
if [ -f "$M/etc/systemd/system/crio.service" ] && ! inside test -x /bin/kill; then
  mkdir -p "$(dirname "$standin_dropin")"
  printf '[Service]\nExecReload=\nExecReload=/bin/sh -c "kill -HUP $MAINPID"\n' > "$standin_dropin"
  inside systemctl daemon-reload
fi
inside systemctl stop mirror-agent
t0=$(inside date +%s)
sleep 1.1
check "reload: systemctl start" inside systemctl start mirror-agent
sleep 2
printf '%s\ninsecureRegistries: ["reload.invalid:5000"]\n' "$saved_agent" > "$M/etc/mirror-agent/agent.yaml"
check "systemctl reload succeeds after a valid change" inside systemctl reload mirror-agent
# No wait: `systemctl reload` returns once the daemon has applied it.
check "the new setting is in force when systemctl reload returns (http)" grep -q 'server = "http://reload.invalid:5000"' "$RH"
# libdispatch's idle worker threads exit after 5 s; the next probe or reload starts new ones.
sleep 6
check "reload: a second reload without changes succeeds" inside systemctl reload mirror-agent
check "reload: systemctl stop" inside systemctl stop mirror-agent
sleep 0.5
in_ns journalctl -u mirror-agent --since "@$t0" --no-pager -q -o short-precise > "$H_TMP/journal-window.txt" 2>&1
echo "# journal of start, 2 reloads, stop ($(wc -l < "$H_TMP/journal-window.txt") lines):"
sed 's/^/#   /' "$H_TMP/journal-window.txt"
check "the journal window has the start, the reload and the stop" bash -c "grep -q 'started (root /)' '$H_TMP/journal-window.txt' && grep -q 'agent.yaml re-read' '$H_TMP/journal-window.txt' && grep -q 'stopping on signal' '$H_TMP/journal-window.txt'"
# The one line let through is the test machine's, not the package's: sid's systemd in an nspawn
# machine on this cgroup-v1 host has no pids controller and says so ("Failed to read pids.max
# ... ignoring") when any unit stops.
machine_noise='systemd\[1\]: [^ ]+: Failed to read pids\.max for control group .*, ignoring'
check "no journal line at priority warning or worse for start, reload, stop" bash -c "set -o pipefail; nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$t0 -p warning --no-pager -q -o short-precise > '$H_TMP/journal-warnings.txt' && lacks '.' <(grep -Ev '$machine_noise' '$H_TMP/journal-warnings.txt'; true)"
check "no journal line that reads as a warning or an error (thread priority, failed...)" bash -c "test -s '$H_TMP/journal-window.txt' && lacks '[Ww][Aa][Rr][Nn]|[Ee][Rr][Rr][Oo][Rr]|[Ff][Aa][Ii][Ll]|[Dd][Ee][Nn][Ii][Ee][Dd]' <(grep -Ev '$machine_noise' '$H_TMP/journal-window.txt'; true)"
check "reload: started again" inside systemctl start mirror-agent

# --- an invalid change: systemctl reload fails, the previous settings stay -----------------------
pid=$(mainpid mirror-agent)
printf '%s\ninsecureRegistries: []\nbogus: 1\n' "$saved_agent" > "$M/etc/mirror-agent/agent.yaml"
check "systemctl reload fails after an invalid agent.yaml" bash -c "! nsenter -t $E2E_INIT_PID -m -p -- systemctl reload mirror-agent"
in_ns env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager -n 10 > "$H_TMP/status-bad.txt" 2>&1
sed 's/^/#   /' "$H_TMP/status-bad.txt"
check "systemctl status shows the error with file:line:column" grep -q "/etc/mirror-agent/agent.yaml:$((agent_lines + 2)):1" "$H_TMP/status-bad.txt"
check "and that the previous settings stay in force" grep -q 'not reloaded: agent.yaml is invalid; the daemon keeps its previous settings' "$H_TMP/status-bad.txt"
check "the agent is still active, same process" bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ] && [ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value mirror-agent)\" = $pid ]"
check "the previous settings stay in force (still http)" grep -q 'server = "http://reload.invalid:5000"' "$RH"
printf '%s\ninsecureRegistries: ["reload.invalid:5000"]\n' "$saved_agent" > "$M/etc/mirror-agent/agent.yaml"
printf 'mirrors:\n  broken.invalid:\n    endpoint: ["ftp://nope"]\n' > "$M/etc/mirror-agent/mirrors.d/61-broken.yaml"
check "systemctl reload fails on invalid desired state too" bash -c "! nsenter -t $E2E_INIT_PID -m -p -- systemctl reload mirror-agent"
check "systemctl status names the broken file" bash -c "nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager -n 10 | grep -q '61-broken.yaml:3:'"
rm -f "$M/etc/mirror-agent/mirrors.d/61-broken.yaml" "$M/etc/mirror-agent/mirrors.d/60-reload.yaml"

# --- as found ------------------------------------------------------------------------------------
if [ -f "$standin_dropin" ]; then rm -f "$standin_dropin"; inside systemctl daemon-reload; fi
printf '%s\n' "$saved_agent" > "$M/etc/mirror-agent/agent.yaml"
check "reload: back to the original agent.yaml (systemctl reload)" inside systemctl reload mirror-agent
check "reload: the case's files are gone again" wait_until 15 test ! -e "$RH"
