#!/usr/bin/env bash
# `flowgate replay --topspeed` (AF_XDP TX) against `tcpreplay --topspeed` (AF_PACKET)
# sending the same capture onto the same veth, alternating, in one run.
# Reports each tool's own pkts/s and what the peer end received.
# Usage: perf/replay-vs-tcpreplay.sh [PACKETS] [RUNS]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${1:-1000000}
RUNS=${2:-3}
cargo build --release --quiet --workspace --bins
mkdir -p perf/data
PCAP=perf/data/live-mix-$PACKETS.pcap
[ -f "$PCAP" ] || target/release/flowgate-pcapgen perf "$PCAP" --packets "$PACKETS" --sources 20000
command -v tcpreplay >/dev/null || { echo "needs tcpreplay (apt install tcpreplay)"; exit 1; }

S=fgrep-s R=fgrep-r
cleanup() { for n in $S $R; do ip netns del $n 2>/dev/null || true; done; }
trap cleanup EXIT
cleanup
for n in $S $R; do ip netns add $n; done
ip link add frS0 netns $S type veth peer name frR0 netns $R
ip -n $S link set frS0 up; ip -n $R link set frR0 up

rx() { ip -n $R -s -j link show frR0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'; }

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; $PACKETS packets per run, $RUNS runs"
for run in $(seq "$RUNS"); do
  r0=$(rx)
  fg=$(ip netns exec $S target/release/flowgate replay "$PCAP" --iface frS0 --topspeed --summary json --progress never \
        | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["packets_per_second"]))')
  sleep 0.3; r1=$(rx)
  tr=$(ip netns exec $S tcpreplay --topspeed -i frS0 "$PCAP" 2>&1 | awk '/Rated:/ {for(i=1;i<=NF;i++) if ($i ~ /pps/) print $(i-1)}' | head -1)
  sleep 0.3; r2=$(rx)
  python3 - "$run" "$fg" "$((r1 - r0))" "$tr" "$((r2 - r1))" <<'PY'
import sys
run, fg, fgrx, tr, trrx = sys.argv[1:]
fg, tr = float(fg), float(tr.replace(",", ""))
print(f"run {run}: flowgate replay {fg/1e6:.3f} Mpps (peer got {fgrx})  tcpreplay {tr/1e6:.3f} Mpps (peer got {trrx})  ratio {fg/tr:.2f}x")
PY
done
