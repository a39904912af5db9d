#!/usr/bin/env bash
# Negative and positive controls for check-depends.py, on two small packages built here with
# dpkg-deb: one that runs things its Depends do not bring (procps' ps binary and its library,
# /bin/kill in ExecReload=, `ps` in postinst), one whose Depends cover everything it uses.
# Prints "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "# $tmp"
passed=0 failed=0
check() { local what=$1; shift; if "$@" >"$tmp/out" 2>&1; then echo "ok - $what"; passed=$((passed + 1)); else echo "not ok - $what"; sed 's/^/#   /' "$tmp/out"; failed=$((failed + 1)); fi; }

make_deb() { # name depends elf unit-exec-reload postinst-body
  local d="$tmp/$1"
  mkdir -p "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system"
  cp "$3" "$d/usr/bin/$1"
  printf 'Package: %s\nVersion: 1\nArchitecture: amd64\nMaintainer: test <t@invalid>\nDepends: %s\nDescription: test\n test\n' "$1" "$2" > "$d/DEBIAN/control"
  printf '[Service]\nExecStart=/usr/bin/%s\nExecReload=%s\n' "$1" "$4" > "$d/lib/systemd/system/$1.service"
  printf '#!/bin/sh\nset -e\n%s\nif [ -d /run/systemd/system ]; then\n\tsystemctl --system daemon-reload >/dev/null || true\nfi\nexit 0\n' "$5" > "$d/DEBIAN/postinst"
  chmod 0755 "$d/DEBIAN/postinst"
  dpkg-deb -b --root-owner-group "$d" "$tmp/$1.deb" >/dev/null
}

ps_bin=$(command -v ps)
ps_deps=$(dpkg-query -W -f='${Depends}' procps)
make_deb bad 'libc6' "$ps_bin" '/bin/kill -HUP $MAINPID' 'ps -e >/dev/null || true'
make_deb good "libc6, procps, $ps_deps" "$ps_bin" '/usr/bin/good reload' 'rm -f /var/lib/good/x; grep -q x /etc/hostname || true'

/usr/bin/python3 "$here/check-depends.py" "$tmp/bad.deb" > "$tmp/bad.txt"; bad_rc=$?
/usr/bin/python3 "$here/check-depends.py" "$tmp/good.deb" > "$tmp/good.txt"; good_rc=$?
check "a package missing dependencies fails (exit 1)" test "$bad_rc" = 1
check "it names the library its ELF links and Depends lack" grep -q "FAIL: /usr/bin/bad links libproc.* comes from .*procps\|FAIL: /usr/bin/bad links libproc.*not in Depends" "$tmp/bad.txt"
check "it names /bin/kill in ExecReload= (procps)" grep -q "FAIL: .*ExecReload=: /bin/kill comes from procps" "$tmp/bad.txt"
check "it names the command postinst runs (ps)" grep -q "FAIL: postinst runs ps: .* comes from procps" "$tmp/bad.txt"
check "libc6 in Depends counts" grep -q "ok: /usr/bin/bad links libc.so.6: .* (libc6, in Depends)" "$tmp/bad.txt"
check "a package whose Depends cover everything passes (exit 0)" test "$good_rc" = 0
check "Essential packages need no Depends (rm, grep)" grep -q "ok: postinst runs rm: .* (coreutils, Essential)" "$tmp/good.txt"
check "systemctl under [ -d /run/systemd/system ] is accepted, with the reason" grep -q "ok: postinst runs systemctl: debhelper" "$tmp/good.txt"
# lintian: the Makefile's `make deb` flags must fail a package whose only findings are warnings
# (the README says "no error and no warning"); `--fail-on error` alone would pass it.
w="$tmp/warnonly"
mkdir -p "$w/DEBIAN" "$w/usr/bin" "$w/usr/share/doc/warnonly"
printf '#!/bin/sh\necho hi\n' > "$w/usr/bin/warnonly"; chmod 755 "$w/usr/bin/warnonly"
printf 'Package: warnonly\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test Person <test@example.org>\nSection: utils\nPriority: optional\nDescription: lintian control package\n A package whose only lintian findings are warnings.\n' > "$w/DEBIAN/control"
printf 'Copyright: none\nLicense: public-domain\n' > "$w/usr/share/doc/warnonly/copyright"
printf 'warnonly (1.0-1) unstable; urgency=medium\n\n  * test\n\n -- Test Person <test@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n' | gzip -9n > "$w/usr/share/doc/warnonly/changelog.Debian.gz"
dpkg-deb -b --root-owner-group "$w" "$tmp/warnonly.deb" >/dev/null
read -r -a lintian_flags <<< "$(sed -n 's/^\tlintian \(--fail-on [a-z,]*\) .*/\1/p' "$here/../../Makefile")"
check "control: lintian --fail-on error passes a package with warnings only" lintian --fail-on error "$tmp/warnonly.deb"
check "make deb's lintian flags (${lintian_flags[*]:-none}) fail it" bash -c "[ -n '${lintian_flags[*]}' ] && ! lintian ${lintian_flags[*]} '$tmp/warnonly.deb'"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
