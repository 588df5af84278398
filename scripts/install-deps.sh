#!/usr/bin/env bash
# Installs the Debian 12 packages flowgate needs to build and test, skipping
# what is already there. Usage: scripts/install-deps.sh [build|test]
set -euo pipefail
what=${1:-test}
build=(build-essential pkg-config clang llvm libbpf-dev libelf-dev zlib1g-dev m4 libhyperscan-dev)
live=(iproute2 ethtool iputils-ping hping3 nmap curl tcpdump tshark python3 bpftool prometheus tcpreplay gobgpd bird2)
pkgs=("${build[@]}")
[ "$what" = test ] && pkgs+=("${live[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found. Install Rust >= 1.85 (rustup, or Debian's rustc/cargo from bookworm-backports) and re-run." >&2
  exit 1
fi
