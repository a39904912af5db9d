# shellcheck shell=bash
# A real systemd to test against: a debootstrapped Debian root (minbase + systemd-sysv + Debian's
# containerd with its stock config; bookworm, trixie or sid: $E2E_SUITE) booted with
# `systemd-nspawn -b`. Sourced by the e2e suite (run.sh) and selftest.sh.
#
#   source tests/e2e/nspawn.sh
#   trap e2e_shutdown EXIT              # the library registers no trap itself
#   e2e_prepare_root "$tmp/machine"     # fresh copy of the cached root (built on first use)
#   e2e_boot "$tmp/machine"             # boots; returns once systemd is up and containerd active
#   e2e_exec systemctl is-active containerd
#   e2e_copy_in ./x.deb /root/ && e2e_exec apt-get install -y /root/x.deb   # offline: deps in the root
#   e2e_shutdown                        # poweroff, TERM, KILL; bounded; safe to call twice
#
# The root is built once with `debootstrap --variant=minbase` and cached as a tarball under
# $E2E_CACHE (default /var/cache/mirror-agent-e2e, outside the clone, so CI runs on the same
# machine reuse it), keyed by suite, package lists and recipe version. What the root holds:
#  * E2E_PACKAGES (default systemd-sysv,containerd): an init to boot and the runtime under test,
#    nothing else. Whatever else mirror-agent uses must come from its .deb's Depends, which
#    `apt install ./mirror-agent.deb` resolves from the Debian archive (the suite's lists are
#    refreshed first: sid's move daily).
#  * E2E_TEST_PACKAGES (default skopeo): TEST-SIDE tools, not installed in the root: their .debs
#    (with what they need beyond the root) are downloaded into /var/cache/e2e-test-debs/ and the
#    suite installs them after the agent, so they cannot hide a missing Depends. each run unpacks a fresh copy, so runs do not
# contaminate each other. nspawn shares the host's network namespace: registries on the host's
# 127.0.0.1 are reachable from inside. Needs root. Every wait is bounded. Safe under `set -u`;
# does not change the caller's shell options; functions return non-zero instead of exiting.
#
# Host notes (systemd 252, checked on a Debian 12 sandbox whose PID 1 is not systemd, cgroup v1
# hybrid layout):
#  * --console=read-only: needs no TTY (stdin may be /dev/null) and still copies the boot console
#    to the log. `pipe` and `passive` boot just as well but leave the log empty (PID 1 writes its
#    status to /dev/console, which they do not forward).
#  * --register=no --keep-unit: no machined and no transient scope, so no D-Bus to a host
#    systemd is needed. With --keep-unit nspawn creates its "supervisor" and "payload" cgroups
#    below the cgroup it was started in; two machines started from the same cgroup would share
#    /payload and their systemds would manage the same cgroups. e2e_boot therefore starts nspawn
#    in a cgroup of its own (e2e-<machine>, below the caller's) and removes it at shutdown.
#  * --resolv-conf=off --timezone=off --link-journal=no: nspawn's defaults would rewrite the
#    root's /etc/resolv.conf and /etc/localtime at boot and may link journals into the host's
#    /var/log/journal; the root is set up by e2e_prepare_root instead.
#  * nsenter: e2e_exec uses --all (mount, UTS, IPC, PID, cgroup, net; the user namespace is the
#    host's and is skipped) with --root --wd. Without the PID namespace (-p, which makes nsenter
#    fork the command into it) /proc/self inside does not resolve, so /etc/mtab, `mount` and the
#    like fail; without -m systemctl talks to the host's /run.
#  * The cached root's own "/" must be 0755: a 0700 root (mktemp -d) boots, but dbus-daemon,
#    after dropping to its user, cannot read its config and the boot hangs in dbus.service.
#  * /proc, /sys, /dev, /run and /tmp are fresh mounts inside the machine; a file written below
#    $E2E_ROOT/run or $E2E_ROOT/tmp on the host lands under the mount and is not seen inside.
#  * If nspawn itself is killed, the machine's init is reparented and keeps running; e2e_shutdown
#    kills that init too (which ends every process of the machine's PID namespace).
#
# sid's systemd (and trixie's 257) refuse the host's cgroup v1 (hybrid) layout; e2e_boot sets
# SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 for every suite but bookworm (override: E2E_UNIFIED=0|1).
#
# Tunables (environment, all optional): E2E_CACHE (cache directory), E2E_SUITE, E2E_MIRROR (apt
# mirror for debootstrap; default from the host's apt sources), E2E_HOSTNAME, E2E_BOOT_TIMEOUT
# (s, default 90), E2E_SHUTDOWN_TIMEOUT (s, default 20), E2E_EXEC_TIMEOUT (s per e2e_exec
# command, default 300, 0 = none), E2E_BUILD_LOCK_TIMEOUT (s to wait for a concurrent cache
# build, default 900), E2E_APT_LOCK_TIMEOUT (s to wait for the host's dpkg lock, default 300).

: "${E2E_CACHE:=/var/cache/mirror-agent-e2e}"
: "${E2E_SUITE:=bookworm}"
: "${E2E_HOSTNAME:=e2e-test}"
: "${E2E_PACKAGES:=systemd-sysv,containerd}"
: "${E2E_TEST_PACKAGES:=skopeo}"
# Bump when the cache-building steps below change, so old tarballs are not reused.
E2E_RECIPE_VERSION=4
# State of the booted machine (kept if the file is sourced again).
: "${E2E_ROOT:=}" "${E2E_NSPAWN_PID:=}" "${E2E_INIT_PID:=}" "${E2E_MACHINE_LOG:=}"
: "${E2E_MACHINE:=}" "${E2E_INIT_START:=}" "${E2E_CGROUPS:=}" "${E2E_ROOT_INODE:=}"

_e2e_log() { echo "# e2e: $*" >&2; }
_e2e_now() { date +%s; }

# e2e_require_tools: installs debootstrap and systemd-container on the host if missing (waits a
# bounded time for the dpkg lock); checks the other tools it uses. Called by prepare and boot.
e2e_require_tools() {
  if [ "$(id -u)" != 0 ]; then _e2e_log "needs root (debootstrap, systemd-nspawn, nsenter)"; return 1; fi
  local missing=() t
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
  if [ ${#missing[@]} -gt 0 ]; then
    local lock=${E2E_APT_LOCK_TIMEOUT:-300}
    _e2e_log "installing ${missing[*]} (waiting up to ${lock}s for the dpkg lock)"
    if ! DEBIAN_FRONTEND=noninteractive timeout $((lock + 600)) apt-get -o DPkg::Lock::Timeout="$lock" \
        install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
      DEBIAN_FRONTEND=noninteractive timeout $((lock + 600)) apt-get -o DPkg::Lock::Timeout="$lock" update -q >/dev/null || true
      DEBIAN_FRONTEND=noninteractive timeout $((lock + 600)) apt-get -o DPkg::Lock::Timeout="$lock" \
        install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { _e2e_log "cannot install ${missing[*]}"; return 1; }
    fi
  fi
  for t in debootstrap systemd-nspawn nsenter tar flock pgrep realpath chroot timeout sha256sum; do
    command -v "$t" >/dev/null 2>&1 || { _e2e_log "missing tool on the host: $t"; return 1; }
  done
}

# e2e_mirror: prints the Debian mirror for debootstrap: $E2E_MIRROR, else the first enabled
# "deb" source for $E2E_SUITE in /etc/apt/sources.list.d/*.sources (deb822) or
# /etc/apt/sources.list, else deb.debian.org.
e2e_mirror() {
  if [ -n "${E2E_MIRROR:-}" ]; then echo "$E2E_MIRROR"; return 0; fi
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk -v suite="$E2E_SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "" && !found) {
          split(uris, u, " "); print u[1]; found = 1
        }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      { key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
        if (key == "types") types = val; else if (key == "suites") suites = val
        else if (key == "uris") uris = val; else if (key == "enabled") enabled = tolower(val) }
      END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    # deb [option=value ...] URI SUITE COMPONENTS...
    uri=$(sed -E -n 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/\2 \3/p' \
      /etc/apt/sources.list | awk -v suite="$E2E_SUITE" '$2 == suite { print $1; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# e2e_cache_tarball: prints the path of the cached root for the current settings.
e2e_cache_tarball() {
  local key
  key=$(printf 'suite=%s variant=minbase include=%s test=%s recipe=%s\n' "$E2E_SUITE" "$E2E_PACKAGES" \
    "$E2E_TEST_PACKAGES" "$E2E_RECIPE_VERSION" \
    | sha256sum | cut -c1-12)
  echo "$E2E_CACHE/$E2E_SUITE-$key.tar"
}

# _e2e_rm_build DIR: removes a (maybe half-done) debootstrap directory; debootstrap mounts /proc
# and /sys in it while it works, and an interrupted one leaves them, so unmount first and never
# cross into another file system.
_e2e_rm_build() {
  local dir=$1 m
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$dir"
}

# _e2e_build_cache TARBALL: debootstraps a root and stores it as TARBALL. Serialised with
# flock so that concurrent first runs build it once; written to a temporary name and renamed,
# so a reader never sees half a tarball.
_e2e_build_cache() {
  local tarball=$1 fd rc=0 build log mirror t0
  mkdir -p "$E2E_CACHE" || return 1
  # One lock per tarball: the suites of the matrix build in parallel.
  exec {fd}>"$tarball.lock" || return 1
  if ! flock -w "${E2E_BUILD_LOCK_TIMEOUT:-900}" "$fd"; then
    _e2e_log "timed out waiting for another build of the cache ($tarball.lock)"
    exec {fd}>&-; return 1
  fi
  if [ -f "$tarball" ]; then exec {fd}>&-; return 0; fi   # built by whoever held the lock
  # Leftovers of an interrupted build of this tarball (under its lock: nobody else builds it).
  local stem=${tarball%.tar}
  for build in "$stem".build.*; do [ -e "$build" ] && _e2e_rm_build "$build"; done
  rm -f "$tarball.tmp"
  build=$(mktemp -d "$stem.build.XXXXXX") || { exec {fd}>&-; return 1; }
  chmod 755 "$build"   # mktemp -d makes it 0700; as the root's "/" that locks out dbus & co.
  log="$stem.debootstrap.log"
  mirror=$(e2e_mirror)
  t0=$(_e2e_now)
  _e2e_log "debootstrap $E2E_SUITE from $mirror (about a minute; log: $log; cached as $tarball)"
  if ! timeout 1800 debootstrap --variant=minbase --include="$E2E_PACKAGES" "$E2E_SUITE" "$build" "$mirror" \
      > "$log" 2>&1; then
    _e2e_log "debootstrap failed:"; tail -20 "$log" >&2; rc=1
  fi
  if [ $rc = 0 ]; then
    # No getty: nothing types at the console, and its prompts would only clutter the log.
    ln -sf /dev/null "$build/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$build/etc/systemd/system/getty@tty1.service"
    # The downloaded .debs are not needed (the package lists stay, for apt's resolver).
    rm -f "$build"/var/cache/apt/archives/*.deb "$build"/var/cache/apt/*.bin
    # TEST-SIDE packages: downloaded, not installed (see the top); e2e_install_test_packages.
    if [ -n "$E2E_TEST_PACKAGES" ]; then
      mkdir -p "$build/var/cache/e2e-test-debs/partial"
      # shellcheck disable=SC2086
      if ! timeout 900 chroot "$build" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
          apt-get install -y -q --download-only --no-install-recommends \
          -o Dir::Cache::archives=/var/cache/e2e-test-debs ${E2E_TEST_PACKAGES//,/ } >> "$log" 2>&1; then
        _e2e_log "cannot download the test-side packages ($E2E_TEST_PACKAGES):"; tail -20 "$log" >&2; rc=1
      fi
      rm -rf "$build/var/cache/e2e-test-debs/partial" "$build"/var/cache/apt/*.bin
    fi
  fi
  if [ $rc = 0 ]; then
    echo "suite=$E2E_SUITE include=$E2E_PACKAGES test=$E2E_TEST_PACKAGES recipe=$E2E_RECIPE_VERSION mirror=$mirror built=$(date -u +%FT%TZ)" \
      > "$build/etc/e2e-root"
    if tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$build" -cf "$tarball.tmp" . \
        && mv -f "$tarball.tmp" "$tarball"; then
      _e2e_log "cache built in $(( $(_e2e_now) - t0 ))s: $tarball ($(du -h "$tarball" | cut -f1))"
    else
      rm -f "$tarball.tmp"; rc=1
    fi
  fi
  _e2e_rm_build "$build"
  exec {fd}>&-
  return $rc
}

# e2e_build_cache: builds the cached root for the current settings unless it exists (for CI
# stages and to build the suites of the matrix in parallel).
e2e_build_cache() {
  local tarball
  e2e_require_tools || return 1
  tarball=$(e2e_cache_tarball)
  [ -f "$tarball" ] || _e2e_build_cache "$tarball"
}

# e2e_install_test_packages: installs the TEST-SIDE packages downloaded at cache build time
# (E2E_TEST_PACKAGES) inside the running machine, offline. Call it after the agent's install.
e2e_install_test_packages() {
  [ -n "${E2E_TEST_PACKAGES:-}" ] || return 0
  # dpkg, not apt: the set was resolved against the root when the cache was built, and apt would
  # re-resolve it against lists refreshed since (and want to download).
  e2e_exec sh -c 'ls /var/cache/e2e-test-debs/*.deb >/dev/null 2>&1 || exit 0
    dpkg -i /var/cache/e2e-test-debs/*.deb' >/dev/null
}

# e2e_prepare_root DEST: makes DEST (must not exist, or be an empty directory) a fresh copy of
# the cached root, building the cache first if there is none. Then makes it ready to boot and to
# install a local .deb offline: writes /etc/hostname ($E2E_HOSTNAME) and /etc/hosts, and an
# /etc/resolv.conf with the host's resolvers (the network is shared). Sets E2E_ROOT=DEST.
e2e_prepare_root() {
  local dest=${1:?usage: e2e_prepare_root DEST} tarball
  e2e_require_tools || return 1
  case "$dest" in /*) ;; *) dest="$PWD/$dest" ;; esac
  dest=${dest%/}
  if [ -z "$dest" ] || [ "$dest" = / ]; then _e2e_log "refusing DEST '/'"; return 1; fi
  if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    _e2e_log "DEST $dest exists and is not empty; remove it first"; return 1
  fi
  tarball=$(e2e_cache_tarball)
  if [ ! -f "$tarball" ]; then _e2e_build_cache "$tarball" || return 1; fi
  mkdir -p "$dest" || return 1
  if ! tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$dest" -xpf "$tarball"; then
    _e2e_log "cannot unpack $tarball into $dest"; return 1
  fi
  chmod 755 "$dest"
  echo "$E2E_HOSTNAME" > "$dest/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$E2E_HOSTNAME" \
    > "$dest/etc/hosts"
  rm -f "$dest/etc/resolv.conf"   # may be a symlink (resolved), which would dangle inside
  if grep -qs '^[[:space:]]*nameserver' /etc/resolv.conf; then
    grep -E '^[[:space:]]*(nameserver|search|domain|options)' /etc/resolv.conf > "$dest/etc/resolv.conf"
  else
    echo "nameserver 127.0.0.1" > "$dest/etc/resolv.conf"
  fi
  E2E_ROOT=$dest
}

# _e2e_cgroup_dirs NAME: prints the cgroup directories (one per line: the cgroup v2 hierarchy and,
# on a v1/hybrid host, the name=systemd one) in which nspawn will be started, each a child
# "e2e-NAME" of the caller's cgroup.
_e2e_cgroup_dirs() {
  local name=$1 line path
  while IFS= read -r line; do
    case "$line" in
      0::*) path=${line#0::}
        if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "/sys/fs/cgroup${path%/}/e2e-$name"
        elif [ -d /sys/fs/cgroup/unified ]; then echo "/sys/fs/cgroup/unified${path%/}/e2e-$name"; fi ;;
      *:name=systemd:*) path=${line#*:name=systemd:}
        [ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd${path%/}/e2e-$name" ;;
    esac
  done < /proc/self/cgroup
}

# _e2e_proc_start PID: the start time of PID (field 22 of /proc/PID/stat), to tell it from a reuse.
_e2e_proc_start() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }

# _e2e_init_alive: true while the machine's init (the one e2e_boot found) still runs.
_e2e_init_alive() {
  [ -n "${E2E_INIT_PID:-}" ] && [ -d "/proc/$E2E_INIT_PID" ] \
    && [ "$(_e2e_proc_start "$E2E_INIT_PID")" = "${E2E_INIT_START:-}" ]
}

# _e2e_nspawn_alive: true while nspawn runs (a zombie, not yet reaped by its parent, counts as
# gone: kill -0 would still succeed on it).
_e2e_nspawn_alive() {
  [ -n "${E2E_NSPAWN_PID:-}" ] && kill -0 "$E2E_NSPAWN_PID" 2>/dev/null \
    && [ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$E2E_NSPAWN_PID/stat" 2>/dev/null)" != Z ]
}

# e2e_boot [DEST]: boots DEST (default: $E2E_ROOT from e2e_prepare_root) with systemd-nspawn in
# the background, the console going to $E2E_MACHINE_LOG (DEST.console.log). Exports
# E2E_NSPAWN_PID, E2E_INIT_PID (the machine's systemd, as seen from the host), E2E_MACHINE_LOG,
# E2E_MACHINE and E2E_ROOT. Returns 0 once `systemctl is-system-running` inside says running or
# degraded and containerd is active, 1 if that does not happen within $E2E_BOOT_TIMEOUT seconds
# (the machine is left up for inspection: call e2e_shutdown). Call it in the calling shell, not
# in $(...) or a pipeline, or the variables are lost.
e2e_boot() {
  local dest=${1:-${E2E_ROOT:-}} deadline state="" cg unified
  if [ -z "$dest" ] || [ ! -x "$dest/sbin/init" ]; then _e2e_log "e2e_boot: '$dest' is not a prepared root"; return 1; fi
  if _e2e_nspawn_alive; then _e2e_log "e2e_boot: a machine is already running (pid $E2E_NSPAWN_PID)"; return 1; fi
  e2e_require_tools || return 1
  E2E_ROOT=$(realpath "$dest")
  E2E_MACHINE="mirror-e2e-$$-$RANDOM"
  E2E_MACHINE_LOG="$E2E_ROOT.console.log"
  E2E_CGROUPS=$(_e2e_cgroup_dirs "$E2E_MACHINE")
  E2E_ROOT_INODE=$(stat -c %d:%i "$E2E_ROOT")   # names nspawn's lock file on the directory
  E2E_INIT_PID="" E2E_INIT_START=""
  export E2E_ROOT E2E_MACHINE E2E_MACHINE_LOG E2E_NSPAWN_PID E2E_INIT_PID
  (
    # Our own cgroup, so that nspawn's supervisor/payload cgroups are ours alone (see the top).
    for cg in $E2E_CGROUPS; do
      mkdir -p "$cg" 2>/dev/null && echo "$BASHPID" > "$cg/cgroup.procs" 2>/dev/null \
        || echo "# e2e: could not move into $cg; starting nspawn in the current cgroup" >&2
    done
    # sid's systemd (and trixie's) will not boot on the host's cgroup v1 layout.
    unified=${E2E_UNIFIED:-}
    [ -z "$unified" ] && { [ "$E2E_SUITE" = bookworm ] && unified=0 || unified=1; }
    [ "$unified" = 1 ] && export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    exec systemd-nspawn --directory="$E2E_ROOT" --machine="$E2E_MACHINE" \
      --register=no --keep-unit --console=read-only \
      --resolv-conf=off --timezone=off --link-journal=no \
      --setenv=SYSTEMD_COLORS=0 --boot
  ) > "$E2E_MACHINE_LOG" 2>&1 < /dev/null &
  E2E_NSPAWN_PID=$!
  deadline=$(( $(_e2e_now) + ${E2E_BOOT_TIMEOUT:-90} ))
  # The machine's init: the child of nspawn that has exec'd systemd.
  while [ -z "$E2E_INIT_PID" ]; do
    E2E_INIT_PID=$(pgrep -P "$E2E_NSPAWN_PID" -x systemd 2>/dev/null | head -1) || true
    [ -n "$E2E_INIT_PID" ] && break
    if ! _e2e_nspawn_alive; then
      _e2e_log "systemd-nspawn exited during boot:"; tail -20 "$E2E_MACHINE_LOG" >&2; return 1
    fi
    if [ "$(_e2e_now)" -ge "$deadline" ]; then _e2e_log "no init in the machine"; return 1; fi
    sleep 0.1
  done
  E2E_INIT_START=$(_e2e_proc_start "$E2E_INIT_PID") || true
  export E2E_INIT_PID E2E_INIT_START E2E_CGROUPS E2E_ROOT_INODE
  while :; do
    state=$(E2E_EXEC_TIMEOUT=10 e2e_exec systemctl is-system-running 2>/dev/null) || true
    case "$state" in running|degraded) break ;; esac
    if ! _e2e_nspawn_alive; then
      _e2e_log "the machine stopped during boot:"; tail -20 "$E2E_MACHINE_LOG" >&2; return 1
    fi
    if [ "$(_e2e_now)" -ge "$deadline" ]; then
      _e2e_log "systemd inside is '${state:-unreachable}' after ${E2E_BOOT_TIMEOUT:-90}s"
      E2E_EXEC_TIMEOUT=10 e2e_exec systemctl list-jobs --no-legend 2>&1 | head -20 >&2 || true
      tail -20 "$E2E_MACHINE_LOG" >&2; return 1
    fi
    sleep 0.2
  done
  if [ "$state" = degraded ]; then
    _e2e_log "the machine is degraded; failed units:"
    E2E_EXEC_TIMEOUT=10 e2e_exec systemctl --failed --no-legend >&2 || true
  fi
  until [ "$(E2E_EXEC_TIMEOUT=10 e2e_exec systemctl is-active containerd 2>/dev/null)" = active ]; do
    if [ "$(_e2e_now)" -ge "$deadline" ]; then
      _e2e_log "containerd is not active in the machine:"
      E2E_EXEC_TIMEOUT=10 e2e_exec systemctl status containerd --no-pager -n 20 >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# e2e_exec CMD [ARGS...]: runs CMD inside the machine: nsenter into all of its init's namespaces
# (mount, UTS, IPC, PID, cgroup, and network, which is the host's), as root, in /, with a clean
# environment: PATH, LANG=C.UTF-8, HOME=/root, SYSTEMD_PAGER= SYSTEMD_COLORS=0 PAGER=cat,
# DEBIAN_FRONTEND=noninteractive. stdin, stdout and stderr are passed through; returns CMD's
# status (124 if it ran longer than $E2E_EXEC_TIMEOUT seconds; 125 if no machine is running).
# Add variables with `e2e_exec env VAR=value CMD...`.
e2e_exec() {
  if [ $# -eq 0 ]; then _e2e_log "usage: e2e_exec CMD [ARGS...]"; return 125; fi
  if ! _e2e_init_alive; then _e2e_log "e2e_exec: no machine is running"; return 125; fi
  local limit=${E2E_EXEC_TIMEOUT:-300} pre=()
  [ "$limit" != 0 ] && pre=(timeout --kill-after=5 "$limit")
  nsenter --target "$E2E_INIT_PID" --all --root --wd -- \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 HOME=/root TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 PAGER=cat \
    DEBIAN_FRONTEND=noninteractive "${pre[@]}" "$@"
}

# _e2e_path_inside_root HOSTPATH: true if HOSTPATH, or its deepest existing ancestor, resolves to
# a place inside $E2E_ROOT (false for absolute symlinks, which point into the host).
_e2e_path_inside_root() {
  local p=$1 root
  root=$(realpath "$E2E_ROOT") || return 1
  while [ ! -e "$p" ] && [ ! -L "$p" ]; do p=$(dirname "$p"); done
  p=$(realpath -e "$p" 2>/dev/null) || return 1
  case "$p/" in "$root"/*) return 0 ;; esac
  return 1
}

# e2e_copy_in SRC DEST_IN_MACHINE: copies the file SRC from the host to the absolute path
# DEST_IN_MACHINE (a trailing / means "into that directory"), creating parent directories; keeps
# SRC's mode, owned by root. Works before and after e2e_boot.
# Why a plain cp into $E2E_ROOT works: nspawn -D uses the directory itself as the machine's root
# file system (it bind-mounts it and pivots into it; no copy, no overlay), so $E2E_ROOT/etc/x on
# the host *is* /etc/x inside, visible at once; tests may also write into $E2E_ROOT directly.
# Two exceptions, where this goes through the machine instead (nsenter, or chroot before boot):
# paths under /run, /tmp, /dev, /proc, /sys while it runs (fresh mounts inside, which hide what
# is below them in the directory), and paths through an absolute symlink (which cp on the host
# would follow into the host's own file system).
e2e_copy_in() {
  local src=${1:?usage: e2e_copy_in SRC DEST_IN_MACHINE} dest=${2:?usage: e2e_copy_in SRC DEST_IN_MACHINE} mode host
  if [ -z "${E2E_ROOT:-}" ] || [ ! -d "$E2E_ROOT" ]; then _e2e_log "e2e_copy_in: no root (e2e_prepare_root first)"; return 1; fi
  if [ ! -f "$src" ] || [ ! -r "$src" ]; then _e2e_log "e2e_copy_in: $src is not a readable file"; return 1; fi
  case "$dest" in /*) ;; *) _e2e_log "e2e_copy_in: $dest is not an absolute path"; return 1 ;; esac
  case "$dest" in */) dest="$dest$(basename "$src")" ;; esac
  host="$E2E_ROOT$dest"
  [ -d "$host" ] && [ ! -L "$host" ] && { dest="$dest/$(basename "$src")"; host="$E2E_ROOT$dest"; }
  mode=$(stat -c %a "$src") || return 1
  local mounted=no
  case "$dest" in /run|/run/*|/tmp|/tmp/*|/dev/*|/proc/*|/sys/*) _e2e_init_alive && mounted=yes ;; esac
  if [ $mounted = no ] && [ ! -L "$host" ] && _e2e_path_inside_root "$(dirname "$host")"; then
    mkdir -p "$(dirname "$host")" && cp --no-preserve=ownership "$src" "$host.e2e-tmp" \
      && chmod "$mode" "$host.e2e-tmp" && mv -f "$host.e2e-tmp" "$host"
    return
  fi
  local script='set -e; mkdir -p "$(dirname "$1")"; cat > "$1.e2e-tmp"; chmod "$2" "$1.e2e-tmp"; mv -f "$1.e2e-tmp" "$1"'
  if _e2e_init_alive; then
    e2e_exec /bin/sh -c "$script" sh "$dest" "$mode" < "$src"
  else
    chroot "$E2E_ROOT" /bin/sh -c "$script" sh "$dest" "$mode" < "$src"
  fi
}

# e2e_shutdown: stops the machine and waits for it: `systemctl poweroff` inside, then SIGTERM to
# nspawn (which asks init to halt), then SIGKILL to nspawn and to the machine's init (ending all
# its processes); at most $E2E_SHUTDOWN_TIMEOUT s for the clean part, a few more for the kill.
# Removes the machine's cgroups. Keeps the root directory (the caller removes it) and the log.
# Returns 0, also when nothing runs; safe to call twice and from an EXIT trap.
e2e_shutdown() {
  local limit=${E2E_SHUTDOWN_TIMEOUT:-20} deadline cg
  if [ -n "${E2E_NSPAWN_PID:-}" ] || [ -n "${E2E_INIT_PID:-}" ]; then
    deadline=$(( $(_e2e_now) + limit ))
    if _e2e_nspawn_alive && _e2e_init_alive; then
      E2E_EXEC_TIMEOUT=10 e2e_exec systemctl poweroff --no-block >/dev/null 2>&1 || true
      while _e2e_nspawn_alive && [ "$(_e2e_now)" -lt "$deadline" ]; do sleep 0.1; done
    fi
    if _e2e_nspawn_alive; then
      _e2e_log "the machine did not power off; SIGTERM to nspawn"
      kill -TERM "$E2E_NSPAWN_PID" 2>/dev/null || true
      deadline=$(( $(_e2e_now) + 5 ))
      while _e2e_nspawn_alive && [ "$(_e2e_now)" -lt "$deadline" ]; do sleep 0.1; done
    fi
    if _e2e_nspawn_alive; then
      _e2e_log "SIGKILL to nspawn"; kill -KILL "$E2E_NSPAWN_PID" 2>/dev/null || true
    fi
    if _e2e_init_alive; then
      _e2e_log "SIGKILL to the machine's init ($E2E_INIT_PID)"; kill -KILL "$E2E_INIT_PID" 2>/dev/null || true
      deadline=$(( $(_e2e_now) + 5 ))
      while _e2e_init_alive && [ "$(_e2e_now)" -lt "$deadline" ]; do sleep 0.1; done
    fi
    [ -n "${E2E_NSPAWN_PID:-}" ] && wait "$E2E_NSPAWN_PID" 2>/dev/null || true
    E2E_NSPAWN_PID="" E2E_INIT_PID="" E2E_INIT_START=""
  fi
  # What a killed nspawn leaves behind (a clean exit removes the last two itself).
  if [ -n "${E2E_MACHINE:-}" ]; then
    rmdir "/run/systemd/nspawn/propagate/$E2E_MACHINE" 2>/dev/null || true
    [ -n "${E2E_ROOT_INODE:-}" ] && rm -f "/run/systemd/nspawn/locks/inode-$E2E_ROOT_INODE"
  fi
  E2E_ROOT_INODE=""
  # nspawn leaves its payload/supervisor cgroups behind; remove ours, deepest first.
  for cg in ${E2E_CGROUPS:-}; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  E2E_CGROUPS=""
  return 0
}
