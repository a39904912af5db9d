#!/usr/bin/env bash
# Builds (once, cached) the .deb of an earlier commit for the upgrade test (case_upgrade.sh).
# Usage: tests/e2e/previous-deb.sh COMMIT   -> prints the path of the .deb
#
# The commit is checked out in a detached git worktree under $E2E_CACHE (not in this tree), and
# built with its own packaging (its own postinst/postrm, unit and conffiles: what users of that
# release have installed). Two build-only inputs are taken from later commits when the old tree
# lacks them: Package.resolved (the offline package mirror only has the pinned versions) and the
# SWIFT_CONFIG switch of debian/rules (1a7f7b2), so the OLD package may be a debug build
# (PREV_SWIFT_CONFIG=debug, the default: about a third of a release build's time; the old
# binary's speed does not matter to an upgrade test). The result is cached as
# $E2E_CACHE/prev-<commit>-<config>.deb, so CI builds it once per commit named by the test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
commit=${1:?usage: $0 COMMIT}
config=${PREV_SWIFT_CONFIG:-debug}
: "${E2E_CACHE:=$repo/.cache/e2e}"
mkdir -p "$E2E_CACHE"
full=$(git -C "$repo" rev-parse --verify "$commit^{commit}")
short=${full:0:12}
out="$E2E_CACHE/prev-$short-$config.deb"
if [ -s "$out" ]; then echo "$out"; exit 0; fi

exec 9>"$out.lock"
flock -w 3600 9
if [ -s "$out" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$E2E_CACHE/prev-$short.XXXXXX")
trap 'git -C "$repo" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --detach "$work/src" "$full" >&2
cd "$work/src"
[ -f Package.resolved ] || git -C "$repo" show 1a7f7b2:Package.resolved > Package.resolved
grep -q SWIFT_CONFIG packaging/debian/rules || git -C "$repo" show 1a7f7b2:packaging/debian/rules > packaging/debian/rules
ln -sfn packaging/debian debian
SWIFT=${SWIFT:-swift} SWIFT_CONFIG=$config SWIFT_SCRATCH="${PREV_SWIFT_SCRATCH:-$work/build}" \
  dpkg-buildpackage -b -us -uc -d >&2
deb=$(ls "$work"/mirror-agent_*_amd64.deb)
cp "$deb" "$out.tmp" && mv "$out.tmp" "$out"
echo "$out"
