#!/usr/bin/env bash
# Live data-path benchmark on one veth line, all modes in one run:
#   xdp_drop        a trivial XDP_DROP program on the gateway's ingress (floor of the hook)
#   afxdp_forward   flowgate live with live.inspect=false: XDP → AF_XDP → TX on the peer, no engine
#   inline_detect   flowgate live --mode detect: full inspection, everything forwarded
#   inline_prevent  flowgate live (prevent): full inspection, 2 % attack sources blocked
# The attacker namespace sends a generated capture with `flowgate replay --topspeed`;
# rates are packets seen per second at the gateway's ingress (XDP) and at the victim.
# With PPS set the sender is paced at that rate instead of top speed: the modes then carry the
# same load, and the CPU time the whole machine spent per packet (from /proc/stat, sender
# included, which is the same in every mode) compares their cost where top speed cannot.
# Usage: perf/live-inline.sh [PACKETS] [RUNS] [PPS]   (root; addresses in 198.18.0.0/15)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${1:-1000000}
RUNS=${2:-3}
PPS=${3:-}
PACE=(--topspeed)
[ -n "$PPS" ] && PACE=(--pps "$PPS")
FG=target/release/flowgate
cargo build --release --quiet --workspace --bins
mkdir -p perf/data
PCAP=perf/data/live-mix-$PACKETS.pcap
[ -f "$PCAP" ] || target/release/flowgate-pcapgen perf "$PCAP" --packets "$PACKETS" --sources 20000
clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c perf/xdp_drop.c -o perf/data/xdp_drop.o

A=fgbench-a G=fgbench-g V=fgbench-v
BPF=/tmp/fgbench-bpf
cleanup() {
  pkill -f "flowgate live --ingress fbGA" 2>/dev/null || true
  for n in $A $G $V; do ip netns del $n 2>/dev/null || true; done
  umount $BPF 2>/dev/null || true
}
trap cleanup EXIT
cleanup
for n in $A $G $V; do ip netns add $n; ip -n $n link set lo up; done
ip link add fbA0 netns $A type veth peer name fbGA netns $G
ip link add fbGB netns $G type veth peer name fbV0 netns $V
for x in "$A fbA0" "$G fbGA" "$G fbGB" "$V fbV0"; do set -- $x; ip -n $1 link set $2 up; done
ip netns exec $A ethtool -K fbA0 gro on tx off >/dev/null
ip netns exec $V ethtool -K fbV0 gro on tx off >/dev/null
mkdir -p $BPF; mount -t bpf bpf $BPF

# Packets the gateway's ingress XDP hook saw, and packets the victim received.
xdp_seen() { ip netns exec $G ethtool -S fbGA | awk '/rx_queue_0_xdp_packets/ {print $2}'; }
victim_rx() { ip -n $V -s -j link show fbV0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'; }

send() {
  ip netns exec $A $FG replay "$PCAP" --iface fbA0 "${PACE[@]}" --summary json --progress never \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["packets"], r["seconds"])'
}

# Busy CPU jiffies of the whole machine (everything but idle and iowait).
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }

measure() { # mode
  local x0 v0 x1 v1 b0 b1 sent secs
  x0=$(xdp_seen); v0=$(victim_rx); b0=$(busy)
  read -r sent secs < <(send)
  b1=$(busy)
  sleep 0.5
  x1=$(xdp_seen); v1=$(victim_rx)
  python3 - "$1" "$sent" "$secs" "$((x1 - x0))" "$((v1 - v0))" "$((b1 - b0))" "$(getconf CLK_TCK)" <<'PY'
import sys
mode, sent, secs, seen, fwd, busy, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
print(f"{mode:15} sent {sent} in {secs:.3f}s ({sent/secs/1e6:.3f} Mpps offered)  "
      f"ingress XDP {seen/secs/1e6:.3f} Mpps  forwarded to victim {fwd} ({fwd/secs/1e6:.3f} Mpps, {100*fwd/max(sent,1):.1f} %)  "
      f"machine CPU {busy/hz*1e9/max(sent,1):.0f} ns/pkt")
PY
}

live() { # extra flags...
  ip netns exec $G $FG live --ingress fbGA --egress fbGB --pin-dir $BPF/fg --alerts /tmp/fgbench-alerts.jsonl \
    --no-metrics --detach-on-exit "$@" >/tmp/fgbench-live.log 2>&1 &
  for _ in $(seq 100); do grep -q "inline between" /tmp/fgbench-live.log && return; sleep 0.1; done
  cat /tmp/fgbench-live.log; exit 1
}
stop_live() { pkill -TERM -f "flowgate live --ingress fbGA"; while pgrep -f "flowgate live --ingress fbGA" >/dev/null; do sleep 0.1; done; }

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; $PACKETS packets per run, $RUNS runs, sender ${PACE[*]}"
for run in $(seq "$RUNS"); do
  echo "## run $run"
  ip -n $G link set dev fbGA xdpdrv obj perf/data/xdp_drop.o sec xdp
  measure xdp_drop
  ip -n $G link set dev fbGA xdp off

  live --set live.inspect=false
  measure afxdp_forward
  stop_live

  live --mode detect
  measure inline_detect
  stop_live

  live
  measure inline_prevent
  stop_live
done
