#!/usr/bin/env bash
# Installs the Debian 12 packages flowgate needs to build and test, skipping
# what is already there. Usage: scripts/install-deps.sh [build|test|suricata]
# `suricata` (perf only, not needed by CI) installs Suricata 7 from
# bookworm-backports, adding that suite beside the machine's existing Debian
# source first; nothing happens when suricata is already installed.
set -euo pipefail
what=${1:-test}
if [ "$what" = suricata ]; then
  command -v suricata >/dev/null && exit 0
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same mirror as the existing Debian source (deb822 or one-line).
    mirror=$(grep -hs -m1 '^URIs:.*debian$' /etc/apt/sources.list.d/debian.sources | awk '{print $2}')
    [ -n "$mirror" ] || mirror=$(grep -hs -m1 '^deb .*debian/\? bookworm ' /etc/apt/sources.list | awk '{print $2}')
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "install-deps: adding bookworm-backports from $mirror"
    echo "deb $mirror bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports suricata >/dev/null
  suricata -V
  exit 0
fi
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
