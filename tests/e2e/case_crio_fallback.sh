# shellcheck shell=bash
# CRI-O without a reload: when the unit cannot reload (CanReload=no), the agent must use
# ReloadOrRestartUnit and say that it restarted CRI-O, not that CRI-O "reloaded". Uses run.sh's
# STAND-IN crio.service (CRI-O is not in Debian), with its ExecReload cleared by a drop-in.
# Sourced by run.sh; leaves crio.service and the desired state as it found them.
if [ ! -f "$M/etc/systemd/system/crio.service" ]; then
  check "CRI-O fallback case: the stand-in crio.service is present" false
else
  mkdir -p "$M/etc/systemd/system/crio.service.d"
  printf '[Service]\nExecReload=\n' > "$M/etc/systemd/system/crio.service.d/50-no-reload.conf"
  inside systemctl daemon-reload
  check "control: the stand-in now has CanReload=no" test "$(inside systemctl show -p CanReload --value crio.service)" = no
  crio_pid=$(mainpid crio)
  cat > "$M/etc/mirror-agent/mirrors.d/50-crio-fallback.yaml" <<YAML
mirrors:
  crio-fallback.invalid:
    endpoint: ["http://$REG_MIRROR_ADDR"]
YAML
  check "the agent restarts CRI-O through ReloadOrRestartUnit (MainPID changed)" \
    wait_until 30 bash -c "p=\$(nsenter -t $E2E_INIT_PID -m -p -- systemctl show -p MainPID --value crio.service); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != '$crio_pid' ]"
  check "and its journal says it restarted it (no reload)" \
    wait_until 15 bash -c "nsenter -t $E2E_INIT_PID -m -p -- journalctl -u mirror-agent --no-pager -q | grep -q 'crio.service cannot reload (CanReload=no): restarted'"
  rm -f "$M/etc/mirror-agent/mirrors.d/50-crio-fallback.yaml" "$M/etc/systemd/system/crio.service.d/50-no-reload.conf"
  rmdir "$M/etc/systemd/system/crio.service.d" 2>/dev/null || true
  inside systemctl daemon-reload
  wait_until 15 bash -c "[ ! -e '$M/etc/containers/registries.conf.d/99-mirror-agent.conf' ] || ! grep -q crio-fallback.invalid '$M/etc/containers/registries.conf.d/99-mirror-agent.conf'" || true
fi
