#!/usr/bin/env bash
# flowgate vs Suricata 7 on the same PCAPs, offline (issue 12 item 1).
#
# PCAPs (made when missing, in perf/data/, git-ignored):
#   real.pcap         perf/capture-real.sh: hping3/nmap/curl between network
#                     namespaces, replicated to >= 3 M packets; attackers in
#                     real.attackers
#   http-S.acks.pcap  flowgate-pcapgen perf-http (S sessions, 8 packets each),
#                     ACKs made consistent (perf/pcap-consistent-acks.py);
#                     attackers = its SQLi sources in 198.18.250.0/24
#
# One interleaved loop: for each run, for each PCAP: Suricata with 1 thread
# (--runmode single) and 2 detect threads (--runmode autofp), flowgate
# analyze with --shards 1 and 2, each under /usr/bin/time. Prints one line
# per measurement and then, per PCAP and side, packets/s and CPU seconds
# (user + sys, all threads) per million packets (min-max over runs),
# attackers detected (distinct attacker source addresses in alerts) and
# other sources alerted, and the per-run ratio of Suricata's CPU seconds to
# flowgate's at the same thread count.
#
# Rules: Suricata gets perf/suricata/flowgate.rules (flowgate's built-in
# detections rewritten); flowgate runs its defaults. Victim-wide rules
# (9100050-9100052) name the victim, not an attacker, and are not counted;
# Suricata's port-scan stand-in 9100031 alerts on the victim's RSTs and is
# attributed to their destination (the scanner).
#
# Usage: perf/vs-suricata.sh [RUNS] [HTTP_SESSIONS]
# Environment: CARGO_LOCK=/tmp/cargo.lock wraps the build in flock;
# SKIP_BUILD=1 uses the binaries in $CARGO_TARGET_DIR/release as they are;
# KEEP=DIR keeps alert logs and timings in DIR; MEASURE_TIMEOUT=S kills and
# leaves out a measurement that takes longer than S seconds (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
sessions=${2:-250000}
target=${CARGO_TARGET_DIR:-target}
FG=$target/release/flowgate
data=perf/data
mkdir -p "$data"

if [ "${SKIP_BUILD:-}" != 1 ]; then
  ${CARGO_LOCK:+flock "$CARGO_LOCK"} cargo build --release --quiet --workspace
fi
command -v suricata >/dev/null || scripts/install-deps.sh suricata
command -v suricata >/dev/null || { echo "vs-suricata: suricata missing" >&2; exit 1; }

real=$data/real.pcap
[ -e "$real" ] || perf/capture-real.sh
# The generator's ACK numbers are arbitrary; Suricata's stream engine drops
# such data, so both tools get a copy with consistent ACKs.
http=$data/http-$sessions.acks.pcap
if [ ! -f "$http" ]; then
  [ -f "$data/http-$sessions.pcap" ] ||
    "$target/release/flowgate-pcapgen" perf-http "$data/http-$sessions.pcap" --sessions "$sessions"
  python3 perf/pcap-consistent-acks.py "$data/http-$sessions.pcap" "$http"
fi
[ -f "$http.attackers" ] || tshark -r "$http" -n -T fields -e ip.src -Y 'ip.src == 198.18.250.0/24' |
  sort -u | sed 's/$/ sqli/' >"$http.attackers"
[ -f "$http.packets" ] || capinfos -c -M "$http" | awk '/Number of packets/ {print $NF}' >"$http.packets"
# Start-up cost (config, rule compile, threads, teardown): the first 100
# packets of the single capture, measured in the same loop.
tiny=$data/real-first100.pcap
[ -f "$tiny" ] || editcap -F pcap -r "$data/real-one.pcap" "$tiny" 1-100
[ -f "$tiny.packets" ] || echo 100 >"$tiny.packets"
[ -f "$real.packets" ] || capinfos -c -M "$real" | awk '/Number of packets/ {print $NF}' >"$real.packets"

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
ratio2=$(python3 -c "print(2 / $(nproc))")
results=$work/results.tsv
: >"$results"

# flowgate caches its compiled Hyperscan databases (see "Hyperscan database
# cache" in RESULTS): the first start on a machine compiles them, every later
# one loads them. Warm the cache once so no run's start-up is the cold one.
"$FG" analyze "$tiny" >/dev/null 2>&1 || true

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "# flowgate $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src synth Cargo.toml Cargo.lock || echo '+dirty'); $(suricata -V)"
echo "# $real: $(cat "$real.packets") packets, $(wc -l <"$data/real.attackers") attackers; $http: $(cat "$http.packets") packets, $(wc -l <"$http.attackers") attackers"

# count ALERTS KIND ATTACKERS: "detected total others alerts"
count() {
  python3 - "$@" <<'EOF'
import json, sys
path, kind, attackers = sys.argv[1:4]
att = {l.split()[0] for l in open(attackers) if l.strip()}
hit, others, n, victim = set(), set(), 0, 0
for line in open(path):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("event_type") != "alert":
        continue
    if 9100050 <= d["alert"]["signature_id"] <= 9100052:
        victim += 1
        continue
    n += 1
    # Suricata's port-scan stand-in (perf/suricata/flowgate.rules) alerts on
    # the victim's RSTs: the scanner is the destination.
    who = d["dest_ip"] if d["alert"]["signature_id"] == 9100031 else d["src_ip"]
    (hit if who in att else others).add(who)
print(len(hit), len(att), len(others), n, victim)
EOF
}

# A measurement that fails or outlives MEASURE_TIMEOUT seconds (default 600;
# each takes seconds) is killed and left out, and the loop goes on: once, on a
# noisy VM, Suricata's autofp mode wrote its alerts and then sat idle for
# minutes instead of exiting. The summary tables pair runs that both sides
# completed.
limit=${MEASURE_TIMEOUT:-600}
lost() { # run pcap-name side threads dir
  echo "run $1 $2 $3 threads $4: failed or killed after ${limit} s ($(head -1 "$5/time" 2>/dev/null)); not counted, output in $5" >&2
}

measure() { # run pcap-name pcap attackers side threads
  local r=$1 name=$2 pcap=$3 att=$4 side=$5 t=$6 d=$work/$2-$5-$6-$r
  mkdir -p "$d"
  if [ "$side" = suricata ]; then
    local mode=(--runmode single)
    [ "$t" = 2 ] && mode=(--runmode autofp --set "threading.detect-thread-ratio=$ratio2")
    if ! /usr/bin/time -f '%e %U %S' -o "$d/time" timeout -s KILL "$limit" suricata \
      -c perf/suricata/suricata.yaml -S perf/suricata/flowgate.rules -r "$pcap" -k none \
      -l "$d" "${mode[@]}" >"$d/out" 2>&1; then
      lost "$r" "$name" "$side" "$t" "$d"
      return 0
    fi
    grep -o 'Threads created -> .*Engine' "$d/out" | sed 's/ *Engine//' >"$d/threads" || true
    alerts=$d/eve.json
  else
    if ! /usr/bin/time -f '%e %U %S' -o "$d/time" timeout -s KILL "$limit" "$FG" analyze \
      "$pcap" --shards "$t" --summary json --alerts "$d/alerts.jsonl" >"$d/out" 2>"$d/err"; then
      lost "$r" "$name" "$side" "$t" "$d"
      return 0
    fi
    alerts=$d/alerts.jsonl
  fi
  read -r wall user sys <"$d/time"
  read -r hit total others n victim < <(count "$alerts" "$side" "$att")
  local pkts
  pkts=$(cat "$pcap.packets")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$side" "$t" "$pkts" \
    "$wall" "$user" "$sys" "$hit" "$total" "$others" "$n" "$victim" >>"$results"
  python3 -c '
import sys
r,name,side,t,pkts,wall,user,sys_,hit,total,others,n,victim = sys.argv[1:]
pk=int(pkts); cpu=float(user)+float(sys_)
print(f"run {r} {name:5} {side:8} threads {t}: {pk/float(wall):>10,.0f} pkts/s, wall {float(wall):6.2f} s, cpu {cpu:6.2f} s = {cpu/pk*1e6:6.2f} s/M pkts; attackers {hit}/{total}, other sources alerted {others}, alerts {n} (+{victim} victim-rule)")
' "$r" "$name" "$side" "$t" "$pkts" "$wall" "$user" "$sys" "$hit" "$total" "$others" "$n" "$victim"
  [ -n "${KEEP:-}" ] || [ "$r" = 1 ] || rm -f "$d/eve.json" "$d/alerts.jsonl"
}

for r in $(seq "$runs"); do
  for p in "start $tiny $data/real.attackers" "real $real $data/real.attackers" "http $http $http.attackers"; do
    read -r name pcap att <<<"$p"
    for t in 1 2; do
      measure "$r" "$name" "$pcap" "$att" suricata "$t"
      measure "$r" "$name" "$pcap" "$att" flowgate "$t"
    done
  done
done
# Per attacker of the real capture, run 1: alerts and signature ids.
python3 - "$data/real.attackers" "$work" <<'EOF'
import json, sys, collections
att = [l.split() for l in open(sys.argv[1]) if l.strip()]
cols = [(s, t) for t in ("1", "2") for s in ("suricata", "flowgate")]
per = {}
for s, t in cols:
    f = f"{sys.argv[2]}/real-{s}-{t}-1/" + ("eve.json" if s == "suricata" else "alerts.jsonl")
    c = collections.defaultdict(collections.Counter)
    try:
        lines = open(f).readlines()
    except FileNotFoundError:  # that measurement was left out
        lines = []
    for line in lines:
        d = json.loads(line)
        if d.get("event_type") == "alert":
            sid = d["alert"]["signature_id"]
            c[d["dest_ip"] if sid == 9100031 else d["src_ip"]][sid] += 1
    per[(s, t)] = c
print()
print("| attacker | role | " + " | ".join(f"{s} {t}t: alerts (sids)" for s, t in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for ip, role in att:
    cells = []
    for k in cols:
        c = per[k].get(ip, {})
        cells.append(f"{sum(c.values())} ({', '.join(str(x) for x in sorted(c))})" if c else "**0**")
    print(f"| {ip} | {role} | " + " | ".join(cells) + " |")
EOF
grep -h . "$work"/*-suricata-2-1/threads 2>/dev/null | sed 's/^/# suricata autofp: /' | head -1

python3 - "$results" <<'EOF'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(list)
for r, name, side, t, pkts, wall, user, sys_, hit, total, others, n, victim in rows:
    pk = int(pkts); cpu = float(user) + float(sys_)
    by[(name, side, t)].append(dict(run=r, pps=pk / float(wall), cpu=cpu / pk * 1e6,
                                    hit=int(hit), total=int(total), others=int(others), n=int(n), victim=int(victim)))
def rng(xs, f):
    lo, hi = min(xs), max(xs)
    return f(lo) if lo == hi else f"{f(lo)}–{f(hi)}"
M = lambda x: f"{x/1e6:.2f} M"
S = lambda x: f"{x:.2f}"
print()
print("| PCAP | side | threads | packets/s | CPU s per M packets | attackers detected | other sources alerted | alerts (+ victim-rule alerts) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (name, side, t), v in sorted(by.items()):
    if name == "start":
        continue
    print(f"| {name} | {side} | {t} | {rng([x['pps'] for x in v], M)} | {rng([x['cpu'] for x in v], S)} | "
          f"{rng([x['hit'] for x in v], str)} / {v[0]['total']} | {rng([x['others'] for x in v], str)} | {rng([x['n'] for x in v], str)} (+{rng([x['victim'] for x in v], str)}) |")
# CPU seconds with each run's start-up cost (the 100-packet PCAP, same
# side, threads and run) subtracted.
start = {(side, t, x["run"]): x["cpu"] * 100 / 1e6 for (name, side, t), v in by.items() if name == "start" for x in v}
raw = collections.defaultdict(list)
for r, name, side, t, pkts, wall, user, sys_, *_ in rows:
    if name != "start":
        raw[(name, side, t)].append((r, int(pkts), float(user) + float(sys_)))
print()
print("| PCAP | side | threads | start-up CPU s | CPU s per M packets without start-up |")
print("|---|---|---:|---:|---:|")
net = {}
for (name, side, t), v in sorted(raw.items()):
    v = [x for x in v if (side, t, x[0]) in start]  # runs whose start-up was measured
    xs = [(r, (cpu - start[(side, t, r)]) / pk * 1e6) for r, pk, cpu in v]
    net[(name, side, t)] = dict(xs)
    if v:
        print(f"| {name} | {side} | {t} | {rng([start[(side, t, r)] for r, _, _ in v], S)} | {rng([x for _, x in xs], S)} |")
print()
print("| PCAP | threads | Suricata CPU s / flowgate CPU s (per run) | same without start-up | packets/s flowgate / Suricata (per run) |")
print("|---|---:|---|---|---|")
for name in sorted({k[0] for k in by if k[0] != "start"}):
    for t in ("1", "2"):
        s = {x["run"]: x for x in by.get((name, "suricata", t), [])}
        f = {x["run"]: x for x in by.get((name, "flowgate", t), [])}
        cpu = [s[r]["cpu"] / f[r]["cpu"] for r in sorted(s) if r in f]
        pps = [f[r]["pps"] / s[r]["pps"] for r in sorted(s) if r in f]
        ns, nf = net.get((name, "suricata", t), {}), net.get((name, "flowgate", t), {})
        cpun = [ns[r] / nf[r] for r in sorted(ns) if r in nf]
        print(f"| {name} | {t} | {', '.join(f'{x:.1f}×' for x in cpu)} | {', '.join(f'{x:.1f}×' for x in cpun)} | {', '.join(f'{x:.1f}×' for x in pps)} |")
EOF
