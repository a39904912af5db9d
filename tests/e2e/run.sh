#!/usr/bin/env bash
# The end-to-end suite: the freshly built .deb installed in a booted Debian bookworm (real
# systemd, D-Bus and containerd, via systemd-nspawn), a real registry on the host's loopback as
# the mirror, and only real tools to look: systemctl, journalctl, containerd, ctr, apt.
# Usage: tests/e2e/run.sh path/to/mirror-agent_<version>_amd64.deb
# Ends every process it started, and the machine, on success and on failure; prints
# "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DEB=$(realpath "${1:?usage: $0 path/to/mirror-agent.deb}")
source "$here/../integration/lib.sh"
source "$here/nspawn.sh"
harness_init
cleanup() { e2e_shutdown; harness_cleanup; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the mirror, on the host's loopback --------------------------------------------------------
start_registry MIRROR
make_oci_image "$H_TMP/oci" 1
push_image "$H_TMP/oci" 1 "$REG_MIRROR_ADDR/library/hello:1" >/dev/null
push_image "$H_TMP/oci" 1 "$REG_MIRROR_ADDR/library/second:1" >/dev/null

# --- the machine ---------------------------------------------------------------------------------
M="$H_TMP/machine"
e2e_prepare_root "$M" || { echo "cannot prepare the machine"; echo "0 passed, 1 failed"; exit 1; }
e2e_boot "$M" || { echo "the machine did not boot"; echo "0 passed, 1 failed"; exit 1; }
inside() { e2e_exec "$@"; }
mainpid() { inside systemctl show -p MainPID --value "$1"; }
stock=$(sha256sum < "$M/etc/containerd/config.toml")
check "the machine runs Debian's stock containerd config.toml" grep -q 'version = 2' "$M/etc/containerd/config.toml"
check "containerd is active before the agent" test "$(inside systemctl is-active containerd)" = active
containerd_pid=$(mainpid containerd)

# Desired state before install (fleet tooling may drop it first).
mkdir -p "$M/etc/mirror-agent/mirrors.d"
cat > "$M/etc/mirror-agent/mirrors.d/10-upstream.yaml" <<YAML
apiVersion: mirror-agent/v1
kind: MirrorSet
spec:
  registries:
  - source: upstream.invalid
    mirrors: ["http://$REG_MIRROR_ADDR"]
YAML

# --- install ---------------------------------------------------------------------------------
e2e_copy_in "$DEB" /root/mirror-agent.deb
check "apt install ./mirror-agent.deb works offline" inside apt-get install -y -q --no-install-recommends /root/mirror-agent.deb
check "ldd of the installed binary lists only Debian system libraries" bash -c "! nsenter -t $E2E_INIT_PID -m -p -- ldd /usr/bin/mirror-agent | grep -E 'not found|swift'"
check "the service is enabled" test "$(inside systemctl is-enabled mirror-agent)" = enabled
check "and active (running)" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p SubState --value mirror-agent)\" = running ]"
check "active only after the first reconcile (Type=notify: the status file exists)" inside test -s /run/mirror-agent/status.json
check "mirror-agent status reads it" inside mirror-agent status
check "systemctl status shows the STATUS line" bash -c "nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager | grep -E 'Status: \".*registr.*mirror'"

# --- containerd prerequisites: config_path set, containerd restarted over D-Bus ---------------
check "config_path is set in config.toml" wait_until 30 grep -q 'config_path = "/etc/containerd/certs.d"' "$M/etc/containerd/config.toml"
check "containerd was restarted (MainPID changed)" wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value containerd); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $containerd_pid ]"
check "and is active again" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
check "containerd config dump shows the new config_path" bash -c "nsenter -t $E2E_INIT_PID -m -p -- containerd config dump | grep -q 'config_path = \"/etc/containerd/certs.d\"'"
check "the original config.toml is kept as a backup" bash -c "ls $M/var/lib/mirror-agent/backups/*/etc/containerd/config.toml"
check "mirror-agent check now passes (exit 0)" inside mirror-agent check
check "ctr pulls upstream.invalid through the mirror inside the machine" inside timeout 60 ctr image pull --hosts-dir /etc/containerd/certs.d upstream.invalid/library/hello:1
check "the mirror saw the request for upstream.invalid" registry_log_has MIRROR 'ns=upstream.invalid'
check "the journal has the registry's entries (MIRROR_AGENT_REGISTRY=)" bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent MIRROR_AGENT_REGISTRY=upstream.invalid --no-pager -q | grep -q upstream.invalid"

# --- a new file changes the running config without restarting containerd -----------------------
containerd_pid=$(mainpid containerd)
cat > "$M/etc/mirror-agent/mirrors.d/20-second.yaml" <<YAML
mirrors:
  second.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
check "a dropped file becomes a hosts.toml" wait_until 15 test -f "$M/etc/containerd/certs.d/second.invalid/hosts.toml"
check "the pull through it works" inside timeout 60 ctr image pull --hosts-dir /etc/containerd/certs.d second.invalid/library/second:1
sleep 3
check "containerd was not restarted for it" test "$(mainpid containerd)" = "$containerd_pid"

# --- a broken file changes nothing and shows in STATUS ------------------------------------------
before=$(cat "$M"/etc/containerd/certs.d/*/hosts.toml | sha256sum)
printf 'mirrors:\n  third.invalid:\n    endpoint: ["ftp://nope"]\n' > "$M/etc/mirror-agent/mirrors.d/30-broken.yaml"
check "the error shows in systemctl status" wait_until 15 bash -c "nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager | grep -q '30-broken.yaml:3:16'"
check "the files in force are unchanged" test "$before" = "$(cat "$M"/etc/containerd/certs.d/*/hosts.toml | sha256sum)"
check "the agent keeps running" test "$(inside systemctl is-active mirror-agent)" = active
rm "$M/etc/mirror-agent/mirrors.d/30-broken.yaml"
check "fixing it clears the error" wait_until 15 bash -c "! nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager | grep -q 'error:'"

# --- drift repair --------------------------------------------------------------------------------
echo '# hand edit' >> "$M/etc/containerd/certs.d/upstream.invalid/hosts.toml"
check "a hand edit of a managed hosts.toml is repaired" wait_until 15 bash -c "! grep -q 'hand edit' '$M/etc/containerd/certs.d/upstream.invalid/hosts.toml'"
check "and logged with the file name" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'repaired drift: /etc/containerd/certs.d/upstream.invalid/hosts.toml'"

# --- reload --------------------------------------------------------------------------------------
printf 'daemon: {debounce: 300ms}\n' > "$M/etc/mirror-agent/agent.yaml"
check "systemctl reload works" inside systemctl reload mirror-agent
check "and re-reads agent.yaml" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'agent.yaml re-read'"
check "the agent is active after the reload" test "$(inside systemctl is-active mirror-agent)" = active

# --- a fix that breaks containerd is rolled back -------------------------------------------------
cp "$M/etc/containerd/config.toml" "$H_TMP/good-config.toml"
# The agent watches config.toml (a change by anyone is checked and fixed): it is stopped while
# the test plants a config that needs a fix, and started with the breakage switched on.
inside systemctl stop mirror-agent
cat > "$M/etc/containerd/config.toml" <<'TOML'
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  discard_unpacked_layers = true
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
TOML
inside systemctl restart containerd
broken_input=$(sha256sum < "$M/etc/containerd/config.toml")
printf 'daemon: {restartDelay: 1s, minRestartInterval: 1s}\ntesting: {breakContainerdStart: true}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl start mirror-agent
check "the failed restart is reported loudly in the journal" wait_until 90 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent -p crit --no-pager -q | grep -q 'previous config.toml was restored'"
check "the previous config.toml is back" test "$(sha256sum < "$M/etc/containerd/config.toml")" = "$broken_input"
check "containerd is active again" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"
check "and STATUS says the restart failed" wait_until 10 bash -c "nsenter -t $E2E_INIT_PID -m -p -- env SYSTEMD_COLORS=0 systemctl status mirror-agent --no-pager | grep -q 'FAILED, rolled back'"
printf 'daemon: {restartDelay: 1s, minRestartInterval: 1s}\n' > "$M/etc/mirror-agent/agent.yaml"
inside systemctl reload mirror-agent
check "without the breakage the fix goes through" wait_until 60 grep -q 'discard_unpacked_layers = false' "$M/etc/containerd/config.toml"
check "containerd active with it" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active containerd)\" = active ]"

# --- CRI-O: a reload through D-Bus, confirmed from its journal ---------------------------------
# CRI-O is not in Debian bookworm, so a STAND-IN unit named crio.service plays its part: it
# re-reads nothing, but answers SIGHUP the way CRI-O does, by logging "Applied new registry
# configuration" (or, when /run/crio-stand-in-fail exists, "system registries reload failed").
mkdir -p "$M/etc/crio" "$M/etc/containers/registries.conf.d" "$M/usr/local/bin"
cat > "$M/usr/local/bin/crio-stand-in" <<'SH'
#!/bin/sh
# STAND-IN for CRI-O in tests only: logs what CRI-O logs on a registries reload.
trap 'if [ -e /run/crio-stand-in-fail ]; then echo "system registries reload failed: stand-in"; else echo "Applied new registry configuration"; fi' HUP
while :; do sleep 1; done
SH
chmod +x "$M/usr/local/bin/crio-stand-in"
cat > "$M/etc/systemd/system/crio.service" <<'UNIT'
[Unit]
Description=STAND-IN for CRI-O (tests only)
[Service]
ExecStart=/usr/local/bin/crio-stand-in
ExecReload=/bin/kill -HUP $MAINPID
UNIT
inside systemctl daemon-reload
inside systemctl start crio.service
inside systemctl restart mirror-agent
check "with /etc/crio present the agent writes the CRI-O drop-in" wait_until 20 test -f "$M/etc/containers/registries.conf.d/99-mirror-agent.conf"
check "and reloads crio.service over D-Bus, confirmed from its journal" wait_until 30 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'crio.service reloaded: \"Applied new registry configuration\"'"
inside touch /run/crio-stand-in-fail
cat > "$M/etc/mirror-agent/mirrors.d/40-crio.yaml" <<YAML
mirrors:
  crio-only.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
check "a failed registries reload is reported from CRI-O's journal" wait_until 30 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'system registries reload failed'"
inside rm -f /run/crio-stand-in-fail

# --- topic cases ---------------------------------------------------------------------------------
# Each tests/e2e/case_*.sh is a bash fragment sourced here, in name order, with the machine booted
# and the package installed; it may use check, wait_until, inside, mainpid, $M, $H_TMP,
# $REG_MIRROR_ADDR and $E2E_INIT_PID, and leaves the agent active with agent.yaml as it found it.
for case_file in "$here"/case_*.sh; do
  [ -e "$case_file" ] || continue
  echo "# case: $(basename "$case_file")"
  source "$case_file"
done

# --- hardening -----------------------------------------------------------------------------------
exposure=$(inside systemd-analyze security mirror-agent.service --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for mirror-agent.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security: exposure $exposure"
# The README states the figure; a unit change that raises it fails here until the README says so.
readme_exposure=$(python3 -c 'import re,sys; m=re.search(r"\*\*exposure\s+([0-9.]+)\*\*", open(sys.argv[1]).read()); print(m.group(1) if m else "")' "$here/../../README.md")
check "systemd-analyze security exposure <= the README's ${readme_exposure:-none} (got ${exposure:-none})" python3 -c "import sys; sys.exit(0 if '$exposure' and '$readme_exposure' and float('$exposure') <= float('$readme_exposure') else 1)"

# --- stop, remove, purge -------------------------------------------------------------------------
check "systemctl stop stops it" inside systemctl stop mirror-agent
check "the runtime files stay in force after stop" test -f "$M/etc/containerd/certs.d/upstream.invalid/hosts.toml"
check "apt remove works" inside apt-get remove -y -q mirror-agent
check "after remove: the binary is gone" test ! -e "$M/usr/bin/mirror-agent"
check "after remove: hosts.toml files stay" test -f "$M/etc/containerd/certs.d/upstream.invalid/hosts.toml"
check "after remove: config.toml keeps config_path" grep -q config_path "$M/etc/containerd/config.toml"
check "after remove: pulls still go through the mirror" inside timeout 60 ctr image pull --hosts-dir /etc/containerd/certs.d upstream.invalid/library/hello:1
check "apt purge works" inside apt-get purge -y -q mirror-agent
check "after purge: the agent's state is gone" test ! -e "$M/var/lib/mirror-agent"
check "after purge: its settings are gone" test ! -e "$M/etc/mirror-agent/agent.yaml"
check "after purge: the files it wrote are gone" test ! -e "$M/etc/containerd/certs.d/upstream.invalid/hosts.toml"
check "after purge: containerd's own config.toml stays" test -f "$M/etc/containerd/config.toml"
check "containerd is still active" test "$(inside systemctl is-active containerd)" = active

summary
