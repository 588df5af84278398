#!/usr/bin/env bash
# Offline throughput on HTTP-heavy traffic (signatures on): complete HTTP
# sessions, 2 % carrying SQL injection; 1 vs 2 shards, signatures on vs off,
# interleaved in one session. With BASELINE (a flowgate binary built from an
# earlier commit), that binary runs interleaved with this one on the same
# PCAP, so the ratio is measured side by side on the same noisy machine.
# Usage: perf/analyze-http.sh [SESSIONS] [RUNS] [BASELINE]
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-250000}
runs=${2:-3}
baseline=${3:-}
target=${CARGO_TARGET_DIR:-target}
pcap=perf/data/http-${sessions}.pcap
cargo build --release --quiet --workspace
mkdir -p perf/data
[ -f "$pcap" ] || "$target/release/flowgate-pcapgen" perf-http "$pcap" --sessions "$sessions"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# pcap: $pcap ($(stat -c %s "$pcap") bytes, $((sessions * 8)) packets)"
echo "# this: $(git rev-parse --short HEAD)${baseline:+; baseline: $baseline}"
bins=("$target/release/flowgate")
[ -n "$baseline" ] && bins+=("$baseline")
for r in $(seq "$runs"); do
  for bin in "${bins[@]}"; do
    for sig in true false; do
      for shards in 1 2; do
        out=$("$bin" analyze "$pcap" --shards "$shards" --summary json --alerts /dev/null --set signatures.enabled=$sig)
        python3 -c '
import json,sys
d=json.load(sys.stdin)
st=d["stats"]
reqs=st.get("http_requests", st.get("http_scans", 0))
print("run %s %-10s signatures %-5s shards %s: %d pkts/s, %.1f MB/s, %d alerts, %d requests/scans" % (sys.argv[1], sys.argv[3], sys.argv[2], d["shards"], d["packets_per_second"], d["bytes"]/d["elapsed_seconds"]/1e6, d["alerts"], reqs))' "$r" "$sig" "$(basename "$bin")" <<<"$out"
      done
    done
  done
done
