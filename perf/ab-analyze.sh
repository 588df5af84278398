#!/usr/bin/env bash
# Two flowgate binaries on one capture, `analyze --shards S`, alternating
# in ABBA order (A B, then B A, ...) so neither always runs second: on a
# shared VM the second of a pair ran 5-7 % cheaper than the first even when
# both were the same binary. Prints each run's process CPU (user+sys) and
# the reader's and shards' thread CPU from the JSON summary, then means and
# medians per binary. Refuses two identical binaries (checksums shown).
# Usage: perf/ab-analyze.sh RUNS PCAP SHARDS BIN_A BIN_B
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 RUNS PCAP SHARDS BIN_A BIN_B" >&2; exit 2; }
runs=$1 pcap=$2 shards=$3 a=$4 b=$5
sa=$(md5sum <"$a" | cut -c1-12) sb=$(md5sum <"$b" | cut -c1-12)
if [ "$sa" = "$sb" ]; then
  echo "$a and $b are the same binary ($sa): nothing to compare" >&2
  exit 2
fi
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); A=$a ($sa) B=$b ($sb); $pcap, $shards shard(s)"
out=$(mktemp) json=$(mktemp)
trap 'rm -f "$out" "$json"' EXIT
for r in $(seq "$runs"); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    bin=$a; [ "$side" = B ] && bin=$b
    t=$( { /usr/bin/time -f '%U %S' "$bin" analyze "$pcap" --shards "$shards" --summary json --alerts /dev/null >"$json"; } 2>&1 | tail -1)
    python3 - "$r" "$side" "$t" "$json" <<'PY' | tee -a "$out"
import json, sys
r, side, t, path = sys.argv[1:5]
user, sys_ = map(float, t.split())
j = json.load(open(path))
sh = " ".join("%.3f" % x for x in j["shard_cpu_seconds"])
print(f"run {r} {side}: cpu {user + sys_:.3f} reader {j['reader_cpu_seconds']:.3f} shards {sh}")
PY
  done
done
python3 - "$out" <<'PY'
import statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    side = f[2].rstrip(":")
    rows.setdefault(side, []).append((float(f[4]), float(f[6]), sum(map(float, f[8:]))))
for side in sorted(rows):
    v = rows[side]
    cols = ["cpu", "reader", "shards"]
    print(f"{side}: {len(v)} runs; " + "; ".join(
        f"{c} mean {st.mean(x[i] for x in v):.3f} median {st.median(x[i] for x in v):.3f}"
        for i, c in enumerate(cols)))
PY
