#!/usr/bin/env bash
# Offline reader scaling (issue 12 item 2): `analyze` with 1 and 2 shards,
# and optionally an older binary, interleaved in one session. Reports wall
# seconds of the whole run, the pipeline's own seconds (reading + deciding,
# rules loaded before), and the reader's and each shard's CPU seconds from
# the JSON summary (thread CPU clocks: what each thread needed, whatever
# else ran on the machine).
# Usage: perf/reader-scaling.sh RUNS PCAP... [-- OLD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=$1; shift
pcaps=(); old=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then old=$2; shift 2; continue; fi
  pcaps+=("$1"); shift
done
new=${FLOWGATE:-${CARGO_TARGET_DIR:-target}/release/flowgate}
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), commit $(git rev-parse --short HEAD)"
bins=(new); [ -n "$old" ] && bins+=(old)
for r in $(seq "$runs"); do
  for p in "${pcaps[@]}"; do
    for b in "${bins[@]}"; do
      bin=$new; [ "$b" = old ] && bin=$old
      for s in 1 2; do
        t=$( { /usr/bin/time -f '%e %U %S' "$bin" analyze "$p" --shards "$s" --summary json --alerts /dev/null > /tmp/reader-scaling.json; } 2>&1 | tail -1)
        python3 - "$r" "$(basename "$p")" "$b" "$s" "$t" <<'PY'
import json, sys
r, p, b, s, t = sys.argv[1:6]
wall, user, sys_ = map(float, t.split())
j = json.load(open("/tmp/reader-scaling.json"))
rd = j.get("reader_cpu_seconds")
sh = j.get("shard_cpu_seconds")
pk = j.get("shard_packets")
extra = "" if rd is None else f"  reader_cpu {rd:.2f}  shard_cpu {['%.2f' % x for x in sh]}  shard_packets {pk}"
print(f"run {r} {p:24} {b:3} shards {s}: wall {wall:.2f} s  cpu {user+sys_:.2f} s  pipeline {j['elapsed_seconds']:.2f} s  {j['packets_per_second']/1e6:.2f} Mpkt/s{extra}")
PY
      done
    done
  done
done
