#!/usr/bin/env bash
# Self-test of the nspawn harness (nspawn.sh): prepares a root in a temporary directory (building
# the cache on first use), boots it, checks systemd, containerd and D-Bus inside, shuts it down
# and removes the root. Needs root. Prints "N passed, N failed"; exits non-zero if any failed.
# Usage: tests/e2e/selftest.sh            (E2E_CACHE=... to use another cache directory)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=nspawn.sh
source "$here/nspawn.sh"

PASSED=0 FAILED=0
ST_TMP=""
LISTENER_PID=""
# check NAME CMD...: runs CMD; "ok - NAME" or "not ok - NAME" with the end of its output.
check() {
  local name=$1 out; shift
  out="${ST_TMP:-/tmp}/check.out"
  if "$@" > "$out" 2>&1; then
    PASSED=$((PASSED + 1)); echo "ok - $name"
  else
    FAILED=$((FAILED + 1)); echo "not ok - $name"; tail -20 "$out" | sed 's/^/#   /'
  fi
  return 0
}
summary() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
cleanup() {
  [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null && wait "$LISTENER_PID" 2>/dev/null
  e2e_shutdown
  [ -n "$ST_TMP" ] && rm -rf "$ST_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mirror-agent-e2e-selftest.XXXXXX") || exit 1
M="$ST_TMP/machine"

# --- prepare ------------------------------------------------------------------------------------
tarball=$(e2e_cache_tarball)
if [ -f "$tarball" ]; then cache=hit; else cache="miss (builds it: about a minute)"; fi
echo "# cache: $tarball: $cache"
t=$EPOCHREALTIME
if ! e2e_prepare_root "$M"; then echo "not ok - prepare the root"; echo "0 passed, 1 failed"; exit 1; fi
echo "# prepare: $(elapsed "$t")s"
check "the cache tarball exists" test -f "$tarball"
check "the root has systemd, containerd and apt" test -x "$M/lib/systemd/systemd" -a -x "$M/usr/bin/containerd" -a -x "$M/usr/bin/apt-get"
check "hostname file is $E2E_HOSTNAME" test "$(cat "$M/etc/hostname")" = "$E2E_HOSTNAME"
check "resolv.conf is a plain file with a nameserver" bash -c "test ! -L '$M/etc/resolv.conf' && grep -q '^nameserver' '$M/etc/resolv.conf'"
check "e2e_copy_in before boot" bash -c "source '$here/nspawn.sh'; E2E_ROOT='$M'; echo before > '$ST_TMP/before'; e2e_copy_in '$ST_TMP/before' /etc/e2e-before && grep -q before '$M/etc/e2e-before'"

# --- boot -----------------------------------------------------------------------------------------
t=$EPOCHREALTIME
if ! e2e_boot "$M"; then
  echo "not ok - boot to running with containerd active"; summary; exit 1
fi
echo "# boot to running (containerd active): $(elapsed "$t")s (machine $E2E_MACHINE, nspawn $E2E_NSPAWN_PID, init $E2E_INIT_PID)"
check "booted: E2E_NSPAWN_PID, E2E_INIT_PID, E2E_MACHINE_LOG exported" \
  bash -c '[ -n "$E2E_NSPAWN_PID" ] && [ -n "$E2E_INIT_PID" ] && [ -f "$E2E_MACHINE_LOG" ]'
check "init is systemd, a child of nspawn" \
  bash -c "[ \"\$(cat /proc/$E2E_INIT_PID/comm)\" = systemd ] && [ \"\$(ps -o ppid= -p $E2E_INIT_PID | tr -d ' ')\" = $E2E_NSPAWN_PID ]"
check "the console log has the boot messages" grep -q 'Welcome to' "$E2E_MACHINE_LOG"
check "systemctl is-system-running: running or degraded" \
  bash -c "source '$here/nspawn.sh'; s=\$(e2e_exec systemctl is-system-running); echo \$s; [ \"\$s\" = running ] || [ \"\$s\" = degraded ]"
check "the machine shares the host's network namespace" \
  test "$(readlink /proc/$E2E_INIT_PID/ns/net)" = "$(readlink /proc/self/ns/net)"
check "it has its own PID namespace (init is PID 1 inside)" test "$(e2e_exec cat /proc/1/comm)" = systemd
check "hostname inside is $E2E_HOSTNAME" test "$(e2e_exec hostname)" = "$E2E_HOSTNAME"
check "e2e_exec returns the command's status" bash -c "source '$here/nspawn.sh'; e2e_exec sh -c 'exit 3'; [ \$? = 3 ]"
check "e2e_exec passes stdin through" test "$(echo hello | e2e_exec cat)" = hello
check "e2e_exec has a clean environment (no pager, no colors)" \
  bash -c "source '$here/nspawn.sh'; out=\$(e2e_exec env) && printf '%s\n' \"\$out\" | grep -qx 'SYSTEMD_COLORS=0' && printf '%s\n' \"\$out\" | grep -qx 'SYSTEMD_PAGER=' && ! printf '%s\n' \"\$out\" | grep -q E2E_"

# --- containerd -----------------------------------------------------------------------------------
check "systemctl is-active containerd: active" test "$(e2e_exec systemctl is-active containerd)" = active
pid1=$(e2e_exec systemctl show -p MainPID containerd | sed -n 's/^MainPID=//p')
echo "# containerd MainPID before restart: ${pid1:-none}"
check "containerd has a MainPID" test "${pid1:-0}" -gt 0
check "systemctl restart containerd" e2e_exec systemctl restart containerd
pid2=$(e2e_exec systemctl show -p MainPID containerd | sed -n 's/^MainPID=//p')
echo "# containerd MainPID after restart: ${pid2:-none}"
check "containerd MainPID changed ($pid1 -> $pid2)" bash -c "[ '${pid2:-0}' -gt 0 ] && [ '${pid2:-0}' != '${pid1:-0}' ]"
check "containerd is active after the restart" test "$(e2e_exec systemctl is-active containerd)" = active
check "containerd config dump prints config_path" bash -c "source '$here/nspawn.sh'; e2e_exec containerd config dump | grep -E '^[[:space:]]*config_path = '"
check "ctr talks to containerd" e2e_exec ctr version

# --- the root is minimal: no D-Bus daemon ---------------------------------------------------------
check "systemctl reaches systemd without a D-Bus daemon (its private socket)" \
  bash -c "source '$here/nspawn.sh'; e2e_exec systemctl show -p Id --value containerd.service | grep -qx containerd.service"
check "the root has no dbus (minbase + systemd-sysv + containerd: the agent's Depends must bring it)" \
  bash -c "source '$here/nspawn.sh'; e2e_exec true && s=\$(e2e_exec dpkg-query -W -f='\${Status}' dbus 2>/dev/null; true) && [ \"\$s\" != 'install ok installed' ]"

# --- files in, offline .deb install ---------------------------------------------------------------
echo "copied in" > "$ST_TMP/payload"; chmod 640 "$ST_TMP/payload"
check "e2e_copy_in to /etc (plain cp into the root)" \
  bash -c "source '$here/nspawn.sh'; e2e_copy_in '$ST_TMP/payload' /etc/e2e/payload && [ \"\$(e2e_exec cat /etc/e2e/payload)\" = 'copied in' ] && [ \"\$(e2e_exec stat -c %a /etc/e2e/payload)\" = 640 ]"
check "e2e_copy_in to /run (a tmpfs inside: goes through the machine)" \
  bash -c "source '$here/nspawn.sh'; e2e_copy_in '$ST_TMP/payload' /run/e2e/payload && [ \"\$(e2e_exec cat /run/e2e/payload)\" = 'copied in' ] && [ ! -e '$M/run/e2e/payload' ]"
check "the base libraries are there (libsystemd0, libstdc++6, libgcc-s1, libc6)" \
  e2e_exec dpkg-query -W libsystemd0 libstdc++6 libgcc-s1 libc6
deb="$ST_TMP/e2e-dummy.deb"
mkdir -p "$ST_TMP/pkg/DEBIAN" "$ST_TMP/pkg/usr/share/e2e-dummy"
echo hi > "$ST_TMP/pkg/usr/share/e2e-dummy/hi"
cat > "$ST_TMP/pkg/DEBIAN/control" <<'CONTROL'
Package: e2e-dummy
Version: 1.0
Architecture: amd64
Maintainer: e2e <e2e@invalid.invalid>
Depends: libc6 (>= 2.35), libgcc-s1 (>= 3.3.1), libstdc++6 (>= 12), libsystemd0 (>= 237)
Recommends: containerd | cri-o
Description: dummy with mirror-agent's dependencies
CONTROL
dpkg-deb --root-owner-group --build "$ST_TMP/pkg" "$deb" >/dev/null
e2e_copy_in "$deb" /root/
# Offline: any download would have to go through a proxy on the discard port, and fail.
check "apt-get install ./dummy.deb works offline (no download needed)" \
  e2e_exec apt-get install -y -q -o Acquire::http::Proxy=http://127.0.0.1:9 -o Acquire::https::Proxy=http://127.0.0.1:9 \
  -o Acquire::Retries=0 /root/e2e-dummy.deb
check "dpkg has it" e2e_exec dpkg -s e2e-dummy
# The control: a dependency that is not in the root would need a download, which fails.
sed -i 's/^Package: .*/Package: e2e-dummy-needs-net/; s/^Depends: .*/Depends: jq/' "$ST_TMP/pkg/DEBIAN/control"
dpkg-deb --root-owner-group --build "$ST_TMP/pkg" "$ST_TMP/e2e-dummy-needs-net.deb" >/dev/null
e2e_copy_in "$ST_TMP/e2e-dummy-needs-net.deb" /root/
check "(control) a .deb whose dependency is missing is refused offline" \
  bash -c "source '$here/nspawn.sh'; ! e2e_exec apt-get install -y -q -o Acquire::http::Proxy=http://127.0.0.1:9 -o Acquire::https::Proxy=http://127.0.0.1:9 -o Acquire::Retries=0 /root/e2e-dummy-needs-net.deb"

# --- the host's loopback from inside ---------------------------------------------------------------
if command -v python3 >/dev/null 2>&1; then
  python3 - "$ST_TMP/port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(60)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
c, _ = s.accept(); c.sendall(b"hello from the host\n"); c.close()
PY
  LISTENER_PID=$!
  for _ in $(seq 50); do [ -s "$ST_TMP/port" ] && break; sleep 0.1; done
  port=$(cat "$ST_TMP/port" 2>/dev/null || echo 0)
  check "a server on the host's 127.0.0.1 is reachable from inside" \
    bash -c "source '$here/nspawn.sh'; e2e_exec timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port; head -1 <&3' | grep -q 'hello from the host'"
  kill "$LISTENER_PID" 2>/dev/null; wait "$LISTENER_PID" 2>/dev/null; LISTENER_PID=""
fi

# --- shutdown -------------------------------------------------------------------------------------
nspawn_pid=$E2E_NSPAWN_PID init_pid=$E2E_INIT_PID cgroups=$(echo $E2E_CGROUPS)
t=$EPOCHREALTIME
e2e_shutdown
echo "# shutdown: $(elapsed "$t")s"
check "the machine powered off cleanly" grep -q 'Container .* has been shut down\|Powering off' "$E2E_MACHINE_LOG"
check "nspawn is gone" bash -c "! kill -0 $nspawn_pid 2>/dev/null"
check "the machine's init is gone" test ! -d "/proc/$init_pid"
check "its cgroups are gone" bash -c "for c in $cgroups; do [ ! -d \"\$c\" ] || exit 1; done"
check "e2e_shutdown again is a no-op" e2e_shutdown
check "e2e_exec after shutdown fails (125)" bash -c "source '$here/nspawn.sh'; E2E_INIT_PID=''; e2e_exec true; [ \$? = 125 ]"
rm -rf "$M" "$M.console.log"
check "the temporary root is removed" test ! -e "$M"
summary
