#!/usr/bin/env bash
# Offline throughput: packets/s of `flowgate analyze` on a large mixed PCAP
# (64-128 byte frames, 20k benign sources, 2 % attack traffic), 1 vs 2
# shards, interleaved runs in one session so both see the same machine.
# Usage: perf/analyze-throughput.sh [PACKETS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-5000000}
runs=${2:-3}
pcap=perf/data/mix-${packets}.pcap
cargo build --release --quiet --workspace
[ -f "$pcap" ] || ./target/release/flowgate-pcapgen perf "$pcap" --packets "$packets"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# pcap: $pcap ($(stat -c %s "$pcap") bytes, $packets packets)"
declare -A sum
for r in $(seq "$runs"); do
  for shards in 1 2; do
    out=$(./target/release/flowgate analyze "$pcap" --shards "$shards" --summary json --alerts /dev/null)
    pps=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["packets_per_second"]))' <<<"$out")
    echo "run $r shards $shards: $pps pkts/s"
    sum[$shards]=$(( ${sum[$shards]:-0} + pps ))
  done
done
one=$(( sum[1] / runs )); two=$(( sum[2] / runs ))
echo "mean: 1 shard $one pkts/s, 2 shards $two pkts/s, ratio $(python3 -c "print(round($two/$one, 2))")"
