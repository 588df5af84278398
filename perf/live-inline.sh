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
# Two more modes, on a second capture where every packet comes from one source (198.18.66.1):
#   blocked_xdp_drop   the same XDP_DROP program, for the drop-rate floor of that capture
#   blocked_flowgate   flowgate live (prevent) with 198.18.66.1 in its kernel blocklist
#                      (`flowgate ctl block`, shard + kernel): every packet dropped by flowgate_xdp
#                      at the driver
# MODES (env) picks the modes and their order per run, default the first four.
# LIVE_ARGS (env): extra flags for every `flowgate live`, e.g. "--set live.pin_threads=false".
# LATENCY=1 (env): flowgate runs with /metrics on 127.0.0.1:9464 in the gateway namespace and
# the per-packet latency quantiles (flowgate_packet_latency_seconds) are scraped before it stops.
# Usage: perf/live-inline.sh [PACKETS] [RUNS] [PPS]   (root; addresses in 198.18.0.0/15)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${1:-1000000}
RUNS=${2:-3}
PPS=${3:-}
PACE=(--topspeed)
[ -n "$PPS" ] && PACE=(--pps "$PPS")
FG=${FG:-target/release/flowgate}
# Shared build machine: one cargo at a time (NOBUILD=1 uses the binaries as they are).
[ -n "${NOBUILD:-}" ] || flock /tmp/cargo.lock cargo build --release --quiet --workspace --bins
mkdir -p perf/data
MODES=${MODES:-xdp_drop afxdp_forward inline_detect inline_prevent}
LATENCY=${LATENCY:-}
MIX=perf/data/live-mix-$PACKETS.pcap
[ -f "$MIX" ] || "$(dirname "$FG")"/flowgate-pcapgen perf "$MIX" --packets "$PACKETS" --sources 20000
# One source, 64 B UDP frames to 256 destinations x 64 ports (for the blocklist modes).
BLOCKED=perf/data/live-blocked-$PACKETS.pcap
[ -f "$BLOCKED" ] || python3 - "$BLOCKED" "$PACKETS" <<'PY'
import struct, sys
out, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    s = sum(struct.unpack("!10H", b))
    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        payload = bytes(18)
        udp = struct.pack("!HHHH", 40000 + (i % 64), 9, 8 + len(payload), 0) + payload
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                                   bytes([198, 18, 66, 1]), bytes([198, 19, 1, (i // 64) % 256])))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
        frame = bytes.fromhex("02000000000202000000000108 00".replace(" ", "")) + bytes(ip) + udp
        t = i  # 1 us apart
        f.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(frame), len(frame)) + frame)
PY
clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c perf/xdp_drop.c -o perf/data/xdp_drop.o

A=fgbench-a G=fgbench-g V=fgbench-v
BPF=/tmp/fgbench-bpf
# Our own control socket: the default /run/flowgate/control.sock may belong to another run.
CTL=/tmp/fgbench-ctl.sock
# shellcheck source=perf/rig.sh
. perf/rig.sh
cleanup() {
  pkill -f " live --ingress fbGA" 2>/dev/null || true
  rig_down $A $G $V $BPF
}
trap cleanup EXIT
cleanup
rig_up $A $G $V fb $BPF

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
  PCAP=$MIX
  case $1 in blocked_*) PCAP=$BLOCKED ;; esac
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
  local metrics=(--no-metrics)
  [ -n "$LATENCY" ] && metrics=(--metrics-listen 127.0.0.1:9464 --set metrics.interval=\"200ms\")
  ip netns exec $G $FG live --ingress fbGA --egress fbGB --pin-dir $BPF/fg --alerts /tmp/fgbench-alerts.jsonl \
    "${metrics[@]}" --set "control.socket=\"$CTL\"" --detach-on-exit ${LIVE_ARGS:-} "$@" >/tmp/fgbench-live.log 2>&1 &
  for _ in $(seq 100); do grep -q "inline between" /tmp/fgbench-live.log && return; sleep 0.1; done
  cat /tmp/fgbench-live.log; exit 1
}
# Per-packet latency quantiles (µs) and verdict counts from /metrics, after the publish interval.
latency() { # mode
  [ -n "$LATENCY" ] || return 0
  sleep 0.5
  ip netns exec $G curl -s 127.0.0.1:9464/metrics | python3 -c '
import re, sys
mode = sys.argv[1]
q, n, b, over = {}, 0, {}, 0
for line in sys.stdin:
    m = re.match(r"flowgate_queue_full_packets_total\{.*\} (\S+)", line)
    if m: over += int(float(m.group(1)))
    m = re.match(r"flowgate_packet_latency_seconds\{.*quantile=\"([0-9.]+)\".*\} (\S+)", line)
    if m: q[m.group(1)] = float(m.group(2)) * 1e6
    m = re.match(r"flowgate_packet_latency_packets_total\{.*\} (\S+)", line)
    if m: n += int(float(m.group(1)))
    m = re.match(r"flowgate_verdict_latency_seconds_bucket\{.*le=\"([^\"]+)\".*\} (\S+)", line)
    if m: b[float(m.group(1))] = b.get(float(m.group(1)), 0) + float(m.group(2))
name = lambda k: {"0.5": "p50", "0.9": "p90", "0.99": "p99", "0.999": "p999"}.get(k, k)
parts = ["%s %.1f us" % (name(k), v) for k, v in sorted(q.items(), key=lambda kv: float(kv[0]))]
print("%-15s per-packet latency over %d packets: %s  (queue-full policy applied to %d packets)" % (mode, n, "  ".join(parts), over))
# Per batch (RX to verdict back), from the Prometheus buckets: the bucket bound holding each quantile.
if b:
    edges = sorted(b); total = b[edges[-1]]
    def qb(x):
        for e in edges:
            if b[e] >= x * total: return e
    print("%-15s per-batch verdict latency over %d batches: p50 <= %g us  p99 <= %g us  p999 <= %g us"
          % (mode, total, qb(0.5) * 1e6, qb(0.99) * 1e6, qb(0.999) * 1e6))
' "$1"
}
stop_live() { pkill -TERM -f " live --ingress fbGA"; while pgrep -f " live --ingress fbGA" >/dev/null; do sleep 0.1; done; }

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bpf || echo +dirty); $PACKETS packets per run, $RUNS runs, sender ${PACE[*]}; modes $MODES"
for run in $(seq "$RUNS"); do
  echo "## run $run"
  for mode in $MODES; do
    case $mode in
      xdp_drop|blocked_xdp_drop)
        ip -n $G link set dev fbGA xdpdrv obj perf/data/xdp_drop.o sec xdp
        [ -n "${PERF_RECORD:-}" ] && { perf record -a -g -o /tmp/fgbench-perf-$mode.data -- sleep 3 >/dev/null 2>&1 & }
        measure "$mode"
        ip -n $G link set dev fbGA xdp off ;;
      afxdp_forward|inline_detect|inline_prevent)
        case $mode in
          afxdp_forward) live --set live.inspect=false ;;
          inline_detect) live --mode detect ;;
          inline_prevent) live ;;
        esac
        [ -n "${PERF_RECORD:-}" ] && { perf record -a -g -o /tmp/fgbench-perf-$mode.data -- sleep 3 >/dev/null 2>&1 & }
        measure "$mode"; latency "$mode"; stop_live ;;
      blocked_flowgate)
        live
        $FG ctl --socket "$CTL" block 198.18.66.1 --ttl 10m --reason benchmark >/dev/null
        [ -n "${PERF_RECORD:-}" ] && { perf record -a -g -o /tmp/fgbench-perf-$mode.data -- sleep 3 >/dev/null 2>&1 & }
        measure "$mode"
        ip netns exec $G $FG xdp status --pin-dir $BPF/fg --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = s.get("counters", s)
print("  kernel counters:", {k: v for k, v in (c.items() if isinstance(c, dict) else []) if v})'
        stop_live ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
  done
done
