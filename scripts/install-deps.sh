#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those missing.
# Usage: scripts/install-deps.sh build|test|deb|e2e
set -euo pipefail
build=(libyaml-dev libsystemd-dev pkg-config)
test=(containerd skopeo docker-registry openssl python3 iproute2 curl)
deb=(debhelper dpkg-dev lintian)
e2e=(debootstrap systemd-container)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  deb) want=("${build[@]}" "${deb[@]}") ;;
  e2e) want=("${build[@]}" "${test[@]}" "${deb[@]}" "${e2e[@]}") ;;
  *) echo "usage: $0 build|test|deb|e2e" >&2; exit 2 ;;
esac
# Prometheus' own text-format parser checks the metrics file in the tests.
if [ "${1:-build}" != build ] && [ "${1:-build}" != deb ] && ! python3 -c 'import prometheus_client' 2>/dev/null; then
  python3 -m pip install -q prometheus_client
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "need root to install: ${missing[*]}" >&2; exit 1; fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
