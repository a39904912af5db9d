# A real systemd to test against: a debootstrapped Debian bookworm root booted with
# systemd-nspawn -b. The root is built once and cached under .cache/e2e (git-ignored); each run
# boots a fresh copy. nspawn shares the host's network, so registries on the host's 127.0.0.1
# are reachable from inside. Sourced by the e2e suite; every wait is bounded.

E2E_CACHE=${E2E_CACHE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache/e2e}
E2E_PACKAGES="systemd,systemd-sysv,dbus,containerd,ca-certificates,libsystemd0,libyaml-0-2,libstdc++6,procps"
E2E_NSPAWN_PID=""
E2E_INIT_PID=""
E2E_ROOT=""

e2e_mirror() {
  local uri
  uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$uri" ] || uri=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

# e2e_prepare_root DEST: a fresh copy of the cached root (built first if there is none).
e2e_prepare_root() {
  local dest=$1 key tarball
  key=$(echo "$E2E_PACKAGES" | sha256sum | cut -c1-12)
  tarball="$E2E_CACHE/bookworm-$key.tar"
  if [ ! -f "$tarball" ]; then
    mkdir -p "$E2E_CACHE"
    local build="$E2E_CACHE/build-$$"
    rm -rf "$build"
    echo "# debootstrap bookworm (cached afterwards in $tarball)"
    debootstrap --variant=minbase --include="$E2E_PACKAGES" bookworm "$build" "$(e2e_mirror)" > "$E2E_CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$E2E_CACHE/debootstrap.log"; rm -rf "$build"; return 1; }
    echo "e2e-test" > "$build/etc/hostname"
    # No network setup inside: the host's loopback is shared.
    rm -f "$build/etc/resolv.conf"; echo "nameserver 127.0.0.1" > "$build/etc/resolv.conf"
    # A quiet console and no getty waiting for a terminal.
    ln -sf /dev/null "$build/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$build/etc/systemd/system/getty@tty1.service"
    tar -C "$build" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$build"
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  tar -C "$dest" -xf "$tarball"
}

# e2e_boot DEST: boots it; waits until systemd is up and containerd active (bounded).
e2e_boot() {
  E2E_ROOT=$1
  E2E_MACHINE_LOG="$E2E_ROOT.console.log"
  systemd-nspawn -D "$E2E_ROOT" --register=no --keep-unit --console=pipe -q -b \
    --machine="mirror-agent-e2e-$$" > "$E2E_MACHINE_LOG" 2>&1 < /dev/null &
  E2E_NSPAWN_PID=$!
  local i
  for i in $(seq 1 300); do
    E2E_INIT_PID=$(pgrep -P "$E2E_NSPAWN_PID" -x systemd 2>/dev/null | head -1)
    [ -n "$E2E_INIT_PID" ] && break
    kill -0 "$E2E_NSPAWN_PID" 2>/dev/null || { cat "$E2E_MACHINE_LOG"; return 1; }
    sleep 0.1
  done
  [ -n "$E2E_INIT_PID" ] || { echo "no init in the machine"; return 1; }
  export E2E_NSPAWN_PID E2E_INIT_PID E2E_MACHINE_LOG E2E_ROOT
  for i in $(seq 1 900); do
    local state
    state=$(e2e_exec systemctl is-system-running 2>/dev/null)
    case "$state" in running|degraded) break ;; esac
    sleep 0.1
  done
  for i in $(seq 1 300); do
    [ "$(e2e_exec systemctl is-active containerd 2>/dev/null)" = active ] && return 0
    sleep 0.1
  done
  echo "containerd did not become active in the machine"; return 1
}

# e2e_exec CMD...: runs CMD inside the machine (all of its namespaces).
e2e_exec() {
  nsenter -t "$E2E_INIT_PID" -m -u -i -p -C -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0 LANG=C.UTF-8 "$@"
}

# e2e_copy_in SRC DEST: the machine's file system is the root directory, so a copy into it is
# a copy into the machine.
e2e_copy_in() {
  mkdir -p "$E2E_ROOT$(dirname "$2")" && cp "$1" "$E2E_ROOT$2"
}

# e2e_shutdown: stops the machine (poweroff, then TERM, then KILL; bounded). Safe to call twice.
e2e_shutdown() {
  [ -n "$E2E_NSPAWN_PID" ] || return 0
  if kill -0 "$E2E_NSPAWN_PID" 2>/dev/null; then
    e2e_exec systemctl poweroff --no-block >/dev/null 2>&1
    local i
    for i in $(seq 1 150); do kill -0 "$E2E_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$E2E_NSPAWN_PID" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$E2E_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$E2E_NSPAWN_PID" 2>/dev/null
  fi
  wait "$E2E_NSPAWN_PID" 2>/dev/null
  E2E_NSPAWN_PID=""
}
