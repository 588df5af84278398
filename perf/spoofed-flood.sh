#!/usr/bin/env bash
# Memory and detection under a spoofed SYN flood (issue 11): N distinct
# spoofed sources at 50 000 SYN/s against one victim, one real attacker at
# 2000 SYN/s and one real client inside it. For each N, `analyze` with 1 and
# 2 shards: peak RSS, wall time, alerts (victim and attacker), sources-table
# evictions, and whether both shard counts wrote the same alerts.
# Usage: perf/spoofed-flood.sh [N...]   (default: 250000 1000000 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(250000 1000000 2000000)
cargo build --release --quiet --workspace --bins
FG=${CARGO_TARGET_DIR:-target}/release/flowgate
GEN=${CARGO_TARGET_DIR:-target}/release/flowgate-pcapgen
mkdir -p perf/data
printf '%-9s %-6s %-10s %-7s %-34s %-10s %s\n' spoofed shards maxrss_MB wall_s alerts evictions same_alerts
for n in "${SIZES[@]}"; do
  pcap=perf/data/spoofed-$n.pcap
  [ -f "$pcap" ] || "$GEN" spoofed "$pcap" --spoofed "$n" >/dev/null
  for s in 1 2; do
    /usr/bin/time -o perf/data/time.txt -f "%M %e" \
      "$FG" analyze "$pcap" --shards "$s" --alerts "perf/data/spoofed-$n-$s.jsonl" --summary json \
      >"perf/data/spoofed-$n-$s.json"
    read -r rss wall <perf/data/time.txt
    summary=$(python3 - "perf/data/spoofed-$n-$s.json" "perf/data/spoofed-$n-$s.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rules = []
for line in open(sys.argv[2]):
    e = json.loads(line)
    if e.get("event_type") == "alert":
        rules.append("%s:%s>%s" % (e["alert"]["metadata"]["flowgate_rule"][0], e["src_ip"], e["dest_ip"]))
print(",".join(rules) or "-", d["stats"]["sources_table"]["evictions"])
PY
)
    same=-
    if [ "$s" = 2 ]; then
      if cmp -s "perf/data/spoofed-$n-1.jsonl" "perf/data/spoofed-$n-2.jsonl"; then same=yes; else same=NO; fi
    fi
    read -r alerts ev <<<"$summary"
    printf '%-9s %-6s %-10s %-7s %-34s %-10s %s\n' "$n" "$s" "$((rss / 1024))" "$wall" "$alerts" "$ev" "$same"
  done
done
