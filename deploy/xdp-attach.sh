#!/usr/bin/env bash
# Put flowgate's XDP program inline between two ports (the counterpart of
# adding an iptables NFQUEUE rule). Without `flowgate live` running, the pair
# is a fail-open wire whose kernel blocklist still applies; pass
# --fail-closed to drop instead when nothing is inspecting.
#   deploy/xdp-attach.sh INGRESS EGRESS [--fail-closed] [--config FILE]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 INGRESS EGRESS [--fail-closed] [--config FILE]" >&2; exit 2; }
in=$1 out=$2; shift 2
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
exec flowgate xdp attach --ingress "$in" --egress "$out" "$@"
