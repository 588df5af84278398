#!/usr/bin/env bash
# Offline throughput on HTTP-heavy traffic (signatures on): complete HTTP
# sessions, 2 % carrying SQL injection; 1 vs 2 shards, signatures on vs off,
# interleaved in one session.
# Usage: perf/analyze-http.sh [SESSIONS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-250000}
runs=${2:-3}
pcap=perf/data/http-${sessions}.pcap
cargo build --release --quiet --workspace
[ -f "$pcap" ] || ./target/release/flowgate-pcapgen perf-http "$pcap" --sessions "$sessions"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# pcap: $pcap ($(stat -c %s "$pcap") bytes, $((sessions * 8)) packets)"
for r in $(seq "$runs"); do
  for sig in true false; do
    for shards in 1 2; do
      out=$(./target/release/flowgate analyze "$pcap" --shards "$shards" --summary json --alerts /dev/null --set signatures.enabled=$sig)
      python3 -c '
import json,sys
d=json.load(sys.stdin)
print("run %s signatures %-5s shards %s: %d pkts/s, %.1f MB/s, %d alerts, %d scans" % (sys.argv[1], sys.argv[2], d["shards"], d["packets_per_second"], d["bytes"]/d["elapsed_seconds"]/1e6, d["alerts"], d["stats"]["http_scans"]))' "$r" "$sig" <<<"$out"
    done
  done
done
