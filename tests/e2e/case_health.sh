# shellcheck shell=bash
# Mirror health in the booted machine, sourced by tests/e2e/run.sh after install.
#  - A down endpoint (HTTPS, nothing listening) is in `systemctl status` within one probe round,
#    with its state and cause, next to the counts of every endpoint.
#  - A healthy HTTPS mirror signed by a test CA installed the way ca-certificates installs one
#    (/usr/local/share/ca-certificates + update-ca-certificates) is up.
#  - With the trust store removed, that mirror is not demoted (the refused one, in the same
#    setup, is: the control), and the node error names the missing trust store.
# Assumes inside the machine only what the package's Depends bring (ca-certificates included).
# Leaves the machine as it found it: agent active, agent.yaml and the trust store restored.

start_registry HEALTHTLS tls
health_closed=$(free_port)
health_status() { nsenter -t "$E2E_INIT_PID" -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager --full 2>/dev/null; }
health_json_state() { # SOURCE -> state of its endpoint in `mirror-agent status --json`
  nsenter -t "$E2E_INIT_PID" -m -p -- mirror-agent status --json 2>/dev/null | python3 -c '
import json, sys
p = [x for x in json.load(sys.stdin)["probes"] if sys.argv[1] in x["registries"]]
print(p[0]["state"] if p else "missing")' "$1"
}
export E2E_INIT_PID
export -f health_status health_json_state

# The test CA, installed as an admin installs a private CA on Debian.
mkdir -p "$M/usr/local/share/ca-certificates"
cp "$TEST_CA_CRT" "$M/usr/local/share/ca-certificates/mirror-agent-e2e-test-ca.crt"
check "update-ca-certificates adds the test CA to the system trust store" inside update-ca-certificates
health_agent_yaml=$H_TMP/health-agent.yaml.orig
cp -p "$M/etc/mirror-agent/agent.yaml" "$health_agent_yaml"

cat > "$M/etc/mirror-agent/mirrors.d/50-health.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: health-down.invalid
    mirrors: ["https://127.0.0.1:$health_closed", "http://$REG_MIRROR_ADDR"]
  - source: health-tls.invalid
    mirrors: ["https://$REG_HEALTHTLS_ADDR"]
YAML
{
  grep -v '^probe:' "$health_agent_yaml"
  echo "probe: {interval: 2s, jitter: 0s, timeout: 1s, connectTimeout: 1s, failureThreshold: 3, successThreshold: 1, onUnhealthy: demote}"
} > "$M/etc/mirror-agent/agent.yaml"
inside systemctl reload mirror-agent

check "within one probe round systemctl status shows the down endpoint: state and cause" wait_until 10 bash -c \
  "health_status > '$H_TMP/health-status.txt' && grep -F 'https://127.0.0.1:$health_closed/v2/ failing (1/3): connection refused' '$H_TMP/health-status.txt'"
grep 'Status:' "$H_TMP/health-status.txt" | sed 's/^/#   /'
check "and counts it with the others (none is left out)" grep -E 'Status: ".*mirrors \([0-9]+ endpoints\): [0-9]+ up, 1 failing \(1/3\)' "$H_TMP/health-status.txt"
check "mirror-agent status lists it with state, last check, latency and cause" bash -c \
  "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent status | grep -E 'https://127.0.0.1:$health_closed/v2/ +(failing \\([123]/3\\)|down|demoted) +[0-9]+s ago +[0-9]+ms +connection refused'"
check "the HTTPS mirror signed by the installed CA is up" wait_until 10 bash -c "[ \"\$(health_json_state health-tls.invalid)\" = up ]"
check "after 3 rounds the refused mirror is demoted: left out of hosts.toml" wait_until 20 bash -c \
  "lacks '127.0.0.1:$health_closed' '$M/etc/containerd/certs.d/health-down.invalid/hosts.toml'"
check "the journal says it is down, with the cause" bash -c \
  "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -F 'mirror https://127.0.0.1:$health_closed/v2/ is down (connection refused)'"

# The trust store goes away (as if ca-certificates were not installed).
inside mv /etc/ssl/certs /etc/ssl/certs.mirror-agent-e2e
check "without a trust store the node error names it in systemctl status" wait_until 10 bash -c \
  "health_status | grep -F 'node configuration error: no system trust store (none of /etc/ssl/certs/ca-certificates.crt'"
sleep 8 # four more rounds: with failureThreshold 3 a mirror failure would be demoted by now
check "the HTTPS mirror is not demoted: still in hosts.toml" grep -q "$REG_HEALTHTLS_ADDR" "$M/etc/containerd/certs.d/health-tls.invalid/hosts.toml"
check "and reported unknown, not down" test "$(health_json_state health-tls.invalid)" = unknown
check "the journal names the missing trust store" bash -c \
  "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent -p err --no-pager -q | grep -F 'no system trust store'"
inside mv /etc/ssl/certs.mirror-agent-e2e /etc/ssl/certs
check "with the trust store back the mirror is up again and the node error is gone" wait_until 10 bash -c \
  "[ \"\$(health_json_state health-tls.invalid)\" = up ] && ! health_status | grep -q 'no system trust store'"

# As found.
rm -f "$M/etc/mirror-agent/mirrors.d/50-health.yaml" "$M/usr/local/share/ca-certificates/mirror-agent-e2e-test-ca.crt"
inside update-ca-certificates --fresh >/dev/null 2>&1
cp -p "$health_agent_yaml" "$M/etc/mirror-agent/agent.yaml"
inside systemctl reload mirror-agent
check "health case: the agent is active, its settings restored" bash -c \
  "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ] && cmp -s '$health_agent_yaml' '$M/etc/mirror-agent/agent.yaml'"
check "health case: the test CA is out of the trust store" lacks "$(sed -n 2p "$TEST_CA_CRT")" "$M/etc/ssl/certs/ca-certificates.crt"
