#!/usr/bin/env bash
# Idle CPU of `flowgate live`: no traffic on the veth line, CPU time per thread over
# SECS seconds after a short settle: on-CPU ns from /proc/PID/task/TID/schedstat
# (utime+stime ticks are 10 ms coarse) and wake-ups (voluntary context switches).
# Usage: perf/live-idle.sh [SECS] [RUNS]   (root; FG=path/to/flowgate to compare builds)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
RUNS=${2:-3}
FG=${FG:-target/release/flowgate}
A=fgidle-a G=fgidle-g V=fgidle-v
BPF=/tmp/fgidle-bpf
LOG=/tmp/fgidle-live.log
PIDFILE=/tmp/fgidle-live.pid
stop_live() {
  [ -f $PIDFILE ] || return 0
  local pid; pid=$(cat $PIDFILE); rm -f $PIDFILE
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
# shellcheck source=perf/rig.sh
. perf/rig.sh
cleanup() {
  stop_live
  rig_down $A $G $V $BPF
}
trap cleanup EXIT
cleanup
rig_up $A $G $V fi $BPF

# Per thread of PID: "name on_cpu_ns voluntary_switches".
ticks() {
  python3 - "$1" <<'PY'
import glob, sys
for t in glob.glob(f"/proc/{sys.argv[1]}/task/*"):
    try:
        name = open(t + "/comm").read().strip()
        ns = int(open(t + "/schedstat").read().split()[0])
        vol = next(int(l.split()[1]) for l in open(t + "/status") if l.startswith("voluntary_ctxt_switches"))
    except (OSError, StopIteration):
        continue
    print(name.replace(" ", "_"), ns, vol)
PY
}

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; $($FG --version); idle ${SECS}s, $RUNS runs"
for run in $(seq "$RUNS"); do
  ip netns exec $G "$FG" live --ingress fiGA --egress fiGB --pin-dir $BPF/fg \
    --alerts /tmp/fgidle-alerts.jsonl --no-metrics --detach-on-exit >$LOG 2>&1 &
  echo $! >$PIDFILE
  for _ in $(seq 100); do grep -q "inline between" $LOG && break; sleep 0.1; done
  grep -q "inline between" $LOG || { cat $LOG; exit 1; }
  sleep 2
  pid=$(cat $PIDFILE)
  before=$(ticks "$pid"); sleep "$SECS"; after=$(ticks "$pid")
  python3 - "$SECS" "$run" <<PY
import sys
secs, run = float(sys.argv[1]), sys.argv[2]
def parse(t):
    d = {}
    for line in t.strip().splitlines():
        name, ns, vol = line.split()
        a = d.setdefault(name, [0, 0])
        a[0] += int(ns); a[1] += int(vol)
    return d
b, a = parse("""$before"""), parse("""$after""")
parts = [f"{k} {100*(a[k][0]-b.get(k,[0,0])[0])/1e9/secs:.3f} % ({(a[k][1]-b.get(k,[0,0])[1])/secs:.0f} wakeups/s)"
         for k in sorted(a) if k.startswith(("io-", "shard-"))]
total = sum(v[0] for v in a.values()) - sum(v[0] for v in b.values())
print(f"run {run}: " + ", ".join(parts) + f"; whole process {100*total/1e9/secs:.3f} % of one CPU")
PY
  stop_live
done
