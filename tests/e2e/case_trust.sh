# Issue 19 under real systemd: a FIFO in mirrors.d never stops `systemctl stop`, and a secret
# scan over everything the agent prints, logs and leaves readable (with its negative control).
# Sourced by run.sh with the machine booted and the package installed; leaves the agent active
# and agent.yaml as it found it.

in_machine() { nsenter -t "$E2E_INIT_PID" -m -p -- "$@"; }
trust_stop_timeout=$(in_machine systemctl show -p TimeoutStopUSec --value mirror-agent)

# --- a FIFO dropped into mirrors.d while the daemon runs -------------------------------------
inside mkfifo /etc/mirror-agent/mirrors.d/90-fifo.yaml
check "a FIFO in mirrors.d is reported in STATUS, not read" wait_until 20 bash -c "nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p StatusText --value mirror-agent | grep -q '90-fifo.yaml'"
check "the agent keeps answering (active, watchdog not fired)" test "$(inside systemctl is-active mirror-agent)" = active
t0=$(date +%s)
inside timeout 60 systemctl stop mirror-agent
t1=$(date +%s)
check "systemctl stop ends within TimeoutStopSec ($trust_stop_timeout): took $((t1 - t0)) s" test $((t1 - t0)) -lt 20
check "and it stopped cleanly (Result=success, not timeout)" test "$(in_machine systemctl show -p Result --value mirror-agent)" = success
inside systemctl start mirror-agent
check "it starts again with the FIFO still there" test "$(inside systemctl is-active mirror-agent)" = active
inside rm -f /etc/mirror-agent/mirrors.d/90-fifo.yaml
cat > "$M/etc/mirror-agent/mirrors.d/91-after-fifo.yaml" <<YAML
mirrors:
  after-fifo.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
check "and keeps applying later valid changes" wait_until 20 test -f "$M/etc/containerd/certs.d/after-fifo.invalid/hosts.toml"
rm -f "$M/etc/mirror-agent/mirrors.d/91-after-fifo.yaml"

# --- the secret scan ---------------------------------------------------------------------------
S_K3S="K3s-Auth-$RANDOM$RANDOM"; S_URL="Url-Userinfo-$RANDOM$RANDOM"; S_TOML="Toml-Auth-$RANDOM$RANDOM"
S_ROOTONLY="Root-Only-$RANDOM$RANDOM"
SECRETS="$S_K3S|$S_URL|$S_TOML|$S_ROOTONLY"
mkdir -p "$M/var/lib/prometheus/node-exporter"
cp -p "$M/etc/containerd/config.toml" "$H_TMP/trust-config.toml"
cat >> "$M/etc/containerd/config.toml" <<TOML

[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example".auth]
  password = "$S_TOML"
  username = "puller"
TOML
chmod 600 "$M/etc/containerd/config.toml"
printf '%s: here\n' "$S_ROOTONLY" > "$M/etc/trust-root-only"; chmod 600 "$M/etc/trust-root-only"
inside ln -s ../../trust-root-only /etc/mirror-agent/mirrors.d/92-link.yaml
inside chown -h nobody:nogroup /etc/mirror-agent/mirrors.d/92-link.yaml
printf 'configs:\n  r.example:\n    auth: "admin:%s"\n' "$S_K3S" > "$M/etc/mirror-agent/mirrors.d/93-auth.yaml"
printf 'mirrors:\n  quay.io:\n    endpoint: ["https://admin:%s@m.example"]\n' "$S_URL" > "$M/etc/mirror-agent/mirrors.d/94-url.yaml"
# A plain value (no secret) that the whole message quotes: the journal and validate say it;
# STATUS=, status.json, status and metrics name the problem by place and kind only.
V_PLAIN="Quoted-Input-$RANDOM$RANDOM"
printf 'mirrors:\n  docker.io:\n    endpoint: ["ftp://%s.example"]\n' "$V_PLAIN" > "$M/etc/mirror-agent/mirrors.d/89-plain.yaml"
check "the bad files are reported in STATUS" wait_until 20 bash -c "nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p StatusText --value mirror-agent | grep -q 'error'"
TS="$H_TMP/trust-scan"; mkdir -p "$TS"
inside mirror-agent validate > "$TS/validate.out" 2> "$TS/validate.err"
inside mirror-agent validate --json > "$TS/validate.json" 2>&1
inside mirror-agent apply --dry-run --diff > "$TS/diff.out" 2>&1
inside mirror-agent apply --json --dry-run > "$TS/apply.json" 2>&1
inside mirror-agent status > "$TS/status.out" 2>&1
inside mirror-agent status --json > "$TS/status.json" 2>&1
inside mirror-agent check > "$TS/check.out" 2>&1
in_machine journalctl -u mirror-agent --no-pager -o verbose > "$TS/journal.txt" 2>&1
in_machine systemctl show -p StatusText --value mirror-agent > "$TS/status-text.txt"
# /run is the machine's own tmpfs (not under $M): the status file is read from inside.
inside cat /run/mirror-agent/status.json > "$TS/run-status.json" 2>&1
in_machine env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager > "$TS/systemctl-status.txt" 2>&1
in_machine env SYSTEMD_COLORS=0 systemctl status -n 0 mirror-agent --no-pager > "$TS/systemctl-status-n0.txt" 2>&1
check "the journal and validate quote the planted plain value (the checks below can see it)" grep -q "89-plain.yaml:3:.*$V_PLAIN" "$TS/journal.txt" "$TS/validate.err"
check "STATUS= names the first problem by kind and place" grep -q 'error: invalid mirror at /etc/mirror-agent/mirrors.d/89-plain.yaml:3:[0-9]* and [0-9]* more' "$TS/status-text.txt"
check "the status file was read (the next check reads something real)" grep -q '"result" : "invalid"' "$TS/run-status.json"
# (grep exits 2 when one of its paths is missing even if another matched: judge by its output.)
check "the plain value is in none of STATUS=, systemctl status -n 0, status.json, status, status --json, metrics" bash -c "! grep -l '$V_PLAIN' '$TS/status-text.txt' '$TS/systemctl-status-n0.txt' '$TS/run-status.json' '$TS/status.out' '$TS/status.json' '$M'/var/lib/prometheus/node-exporter/* 2>/dev/null | grep ."
check "the refusal names the symlink and why" grep -q '92-link.yaml:1:1: refusing to trust this file: the symlink /etc/mirror-agent/mirrors.d/92-link.yaml is owned by uid' "$TS/validate.err" "$TS/validate.out"
check "the journal has the errors (the scan reads something real)" grep -q '94-url.yaml' "$TS/journal.txt"
trust_scan() {
  # Judged by what grep prints, not by exit statuses: grep exits 2 when one of its paths is
  # missing or unreadable even if another matched, and under run.sh's pipefail a
  # `grep ... | grep . && found=1` would then never set found (the scan would pass vacuously).
  local hits
  hits=$( {
    grep -lE "$SECRETS" "$TS"/* "$M/run/mirror-agent/status.json" "$M"/var/lib/prometheus/node-exporter/* 2>/dev/null
    # Every file a non-root user can read, as the kernel decides (nobody, no groups).
    in_machine setpriv --reuid=nobody --regid=nogroup --clear-groups grep -rlE "$SECRETS" /etc /run /var /tmp /root 2>/dev/null \
      | grep -v -e '^/etc/mirror-agent/mirrors.d/'
  } || true)
  [ -z "$hits" ] || { echo "$hits"; return 1; }
}
check "no planted secret in stdout, stderr, --json, --diff, the journal, STATUS=, status.json, metrics or any file a non-root user can read" trust_scan
printf '%s\n' "$S_TOML" > "$M/etc/trust-planted"; chmod 644 "$M/etc/trust-planted"
check "negative control: a secret in a world-readable file is found (in the scan's own shell)" fails trust_scan
rm -f "$M/etc/trust-planted"
printf 'leak %s\n' "$S_K3S" >> "$TS/journal.txt"
check "negative control: a secret in the journal output is found (in the scan's own shell)" fails trust_scan
rm -f "$M"/etc/mirror-agent/mirrors.d/9[234]-*.yaml "$M/etc/mirror-agent/mirrors.d/89-plain.yaml" "$M/etc/trust-root-only"
cp -p "$H_TMP/trust-config.toml" "$M/etc/containerd/config.toml"
check "the agent is back to a clean state" wait_until 20 output_lacks 'error' nsenter -t "$E2E_INIT_PID" -m -p -- systemctl show -p StatusText --value mirror-agent
check "and active" test "$(inside systemctl is-active mirror-agent)" = active
