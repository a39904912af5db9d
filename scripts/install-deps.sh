#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those missing.
# Usage: scripts/install-deps.sh build|test|deb|e2e|cri|bench
set -euo pipefail
build=(libyaml-dev libsystemd-dev pkg-config dpkg-dev)
test=(containerd skopeo docker-registry openssl apache2-utils python3 python3-prometheus-client iproute2 curl time strace)
deb=(debhelper dpkg-dev lintian)
# The e2e suite's CRI client (tests/e2e/cri) runs on the host with Debian's gRPC and protobuf.
e2e=(debootstrap systemd-container python3-grpcio python3-protobuf apache2-utils)
cri=(protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf)
# B5CRI pulls through containerd's CRI plugin with the same client (tests/e2e/cri).
bench=(python3-grpcio python3-protobuf)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${build[@]}" "${test[@]}") ;;
  deb) want=("${build[@]}" "${deb[@]}") ;;
  e2e) want=("${build[@]}" "${test[@]}" "${deb[@]}" "${e2e[@]}") ;;
  cri) want=("${cri[@]}") ;;
  bench) want=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|deb|e2e|cri|bench" >&2; exit 2 ;;
esac
# Debian packages only, python3-* ones too (Debian's Python refuses PyPI installs, PEP 668); the
# Makefile puts /usr/bin first on PATH so the project's scripts run Debian's python3.
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
