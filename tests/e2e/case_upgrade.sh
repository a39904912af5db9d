# shellcheck shell=bash
# Upgrade and downgrade between the previous release and this package, as an admin's apt does it
# non-interactively (--force-confdef --force-confold, what unattended-upgrades uses):
#   previous .deb installed fresh -> desired state applied -> agent.yaml edited by the admin ->
#   this .deb installed over it -> the previous .deb again (downgrade) -> this .deb again.
# The previous release is built from E2E_PREVIOUS_COMMIT (default 0864bef, the last commit before
# `mirror-agent reload`) by previous-deb.sh, once, cached in $E2E_CACHE (a debug build by
# default); E2E_PREVIOUS_DEB names a ready .deb instead. Sourced by run.sh; leaves this package
# installed and active with /etc/mirror-agent as it found it.

up_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
in_ns() { nsenter -t "$E2E_INIT_PID" -m -p -- "$@"; }
APT_NI=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
prev_deb=${E2E_PREVIOUS_DEB:-}
if [ -z "$prev_deb" ]; then
  echo "# building (or reusing) the previous release's .deb from ${E2E_PREVIOUS_COMMIT:-0864bef}"
  prev_deb=$(E2E_CACHE=${E2E_CACHE:-} bash "$up_here/previous-deb.sh" "${E2E_PREVIOUS_COMMIT:-0864bef}" 2>"$H_TMP/previous-deb.log" | tail -1)
fi
new_version=$(dpkg-deb -f "$DEB" Version)
check "upgrade: the previous release's .deb is there ($prev_deb)" test -s "$prev_deb"
prev_version=$(dpkg-deb -f "$prev_deb" Version 2>/dev/null)
check "upgrade: it is an older version ($prev_version < $new_version)" dpkg --compare-versions "$prev_version" lt "$new_version"

rm -rf "$H_TMP/etc-mirror-agent.saved"
cp -a "$M/etc/mirror-agent" "$H_TMP/etc-mirror-agent.saved"
e2e_copy_in "$prev_deb" /root/mirror-agent-prev.deb
check "upgrade: purge this package first (a machine with the previous release only)" inside apt-get purge -y -q mirror-agent
check "upgrade: the previous release installs" inside "${APT_NI[@]}" /root/mirror-agent-prev.deb
check "upgrade: and runs ($prev_version)" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p SubState --value mirror-agent)\" = running ]"

cat > "$M/etc/mirror-agent/mirrors.d/70-upgrade.yaml" <<YAML
mirrors:
  upgrade.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
UH="$M/etc/containerd/certs.d/upgrade.invalid/hosts.toml"
check "upgrade: the previous release applies a desired state" wait_until 20 test -f "$UH"
check "upgrade: and records it in its ownership manifest" wait_until 10 grep -q upgrade.invalid "$M/var/lib/mirror-agent/manifest.json"
# The admin edits the conffile (the previous release's unit reloads with /bin/kill: no reload here).
printf '\n# edited by the admin\nprobe: {interval: 45s}\n' >> "$M/etc/mirror-agent/agent.yaml"
admin_agent=$(sha256sum < "$M/etc/mirror-agent/agent.yaml")
sleep 3  # let the previous release finish its passes (CRI-O drop-in, reload)
# Every file the agent manages, with inode, mtime and content: equal lists mean nothing rewritten.
managed() { find "$M/etc/containerd/certs.d" "$M/etc/containers/registries.conf.d" -type f 2>/dev/null | sort | while read -r f; do echo "$f $(stat -c '%i %Y' "$f") $(sha256sum < "$f")"; done; }
managed_before=$(managed)
manifest_before=$(sha256sum < "$M/var/lib/mirror-agent/manifest.json")
old_pid=$(mainpid mirror-agent)
echo "# managed files before the upgrade:"; printf '%s\n' "$managed_before" | sed 's/^/#   /'
t_up=$(inside date +%s)
sleep 1.1

check "upgrade: this .deb installs over it non-interactively" bash -c "nsenter -t $E2E_INIT_PID -m -p -- ${APT_NI[*]} /root/mirror-agent.deb </dev/null"
check "upgrade: dpkg has $new_version" test "$(inside dpkg-query -W -f '${Version}' mirror-agent)" = "$new_version"
check "upgrade: the daemon was restarted (new MainPID)" wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value mirror-agent); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $old_pid ]"
new_pid=$(mainpid mirror-agent)
check "upgrade: on the new binary (/proc/MAINPID/exe, not a deleted file)" test "$(inside readlink "/proc/$new_pid/exe")" = /usr/bin/mirror-agent
check "upgrade: the journal says the new version started" wait_until 15 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --since @$t_up --no-pager -q | grep -q 'mirror-agent ${new_version%%-*} started'"
check "upgrade: the admin's agent.yaml is kept" test "$(sha256sum < "$M/etc/mirror-agent/agent.yaml")" = "$admin_agent"
if [ -e "$M/etc/mirror-agent/agent.yaml.dpkg-dist" ]; then echo "# the shipped agent.yaml changed: dpkg kept the admin's and left the new one as agent.yaml.dpkg-dist"; else echo "# the shipped agent.yaml is the same in both versions: dpkg kept the admin's edit silently"; fi
check "upgrade: no conffile prompt leftovers (.dpkg-new, .dpkg-old)" bash -c "test -f '$M/etc/mirror-agent/agent.yaml' && ! compgen -G '$M/etc/mirror-agent/*.dpkg-new' && ! compgen -G '$M/etc/mirror-agent/*.dpkg-old'"
check "upgrade: the new daemon finished its first pass (status ok)" wait_until 20 bash -c "nsenter -t $E2E_INIT_PID -m -p -- mirror-agent status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"result\"] == \"ok\" and d[\"pid\"] == $new_pid else 1)'"
sleep 2
managed_after=$(managed)
check "upgrade: managed files carried over, not rewritten (same inode, mtime, content)" test "$managed_before" = "$managed_after"
check "upgrade: the ownership manifest carried over unchanged" test "$(sha256sum < "$M/var/lib/mirror-agent/manifest.json")" = "$manifest_before"
check "upgrade: the journal of the new daemon logs no file written" output_lacks '^(created|updated|adopted|removed) /' nsenter -t "$E2E_INIT_PID" -m -p -- journalctl -u mirror-agent --since "@$t_up" --no-pager -q -o cat
check "upgrade: the new daemon still applies changes" bash -c "printf 'mirrors:\n  upgrade2.invalid:\n    endpoint: [\"http://$REG_MIRROR_ADDR\"]\n' > '$M/etc/mirror-agent/mirrors.d/71-upgrade.yaml' && for i in \$(seq 1 100); do [ -f '$M/etc/containerd/certs.d/upgrade2.invalid/hosts.toml' ] && exit 0; sleep 0.1; done; exit 1"
check "upgrade: systemctl reload works after the upgrade" inside systemctl reload mirror-agent

# --- downgrade -----------------------------------------------------------------------------------
managed_before=$(managed)
check "downgrade: the previous .deb installs over this one" bash -c "nsenter -t $E2E_INIT_PID -m -p -- ${APT_NI[*]} --allow-downgrades /root/mirror-agent-prev.deb </dev/null"
check "downgrade: dpkg has $prev_version" test "$(inside dpkg-query -W -f '${Version}' mirror-agent)" = "$prev_version"
check "downgrade: the previous release runs" wait_until 30 bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p SubState --value mirror-agent)\" = running ]"
sleep 2
check "downgrade: no managed file lost or changed" test "$managed_before" = "$(managed)"
check "downgrade: the manifest still lists them" bash -c "grep -q upgrade.invalid '$M/var/lib/mirror-agent/manifest.json' && grep -q upgrade2.invalid '$M/var/lib/mirror-agent/manifest.json'"
check "downgrade: the admin's agent.yaml is kept" test "$(sha256sum < "$M/etc/mirror-agent/agent.yaml")" = "$admin_agent"
check "downgrade: the previous release still reads the new status file" inside mirror-agent status

# --- back to this package, /etc/mirror-agent as found -------------------------------------------
check "upgrade again: this .deb installs" bash -c "nsenter -t $E2E_INIT_PID -m -p -- ${APT_NI[*]} /root/mirror-agent.deb </dev/null"
rm -rf "$M/etc/mirror-agent"
cp -a "$H_TMP/etc-mirror-agent.saved" "$M/etc/mirror-agent"
inside systemctl restart mirror-agent
check "upgrade: the case's files are removed again" wait_until 20 bash -c "[ ! -e '$UH' ] && [ ! -e '$M/etc/containerd/certs.d/upgrade2.invalid/hosts.toml' ]"
check "upgrade: the suite's desired state is in force again" wait_until 20 test -f "$M/etc/containerd/certs.d/upstream.invalid/hosts.toml"
check "upgrade: the agent is active at $new_version" bash -c "[ \"\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl is-active mirror-agent)\" = active ] && [ \"\$(nsenter -t $E2E_INIT_PID -m -p -- dpkg-query -W -f '\${Version}' mirror-agent)\" = $new_version ]"
