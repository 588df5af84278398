#!/usr/bin/env bash
# ET Open web rules in flowgate vs Suricata 7.
#
# usage: perf/et-open.sh RULES_DIR PCAP...
#
# Prints (1) how many rules of emerging-sql, emerging-web_server and
# emerging-web_specific_apps load in flowgate, and the skip reasons by
# count (`flowgate rules check`); (2) per PCAP, the alerts of Suricata
# (`suricata -r PCAP -S rules -k none`) and of flowgate (`analyze --mode
# detect`, built-in rules off) restricted to the sids both load, compared
# per flow (src ip/port, dst ip/port): alerts flowgate raises that Suricata
# does not (must be 0), and Suricata's alerted flows flowgate also alerts
# on (flowgate reports the first matching rule per request, Suricata every
# rule, so this is per flow, not per sid).
#
# Address groups: HOME_NET and EXTERNAL_NET are set to `any` for Suricata,
# as flowgate does not evaluate address variables. Environment: FLOWGATE
# (binary, default target/release/flowgate), SURICATA (default suricata),
# SURICATA_ARGS (extra options, e.g. `--set stream.async-oneside=true
# --set stream.midstream=true` for captures without a server side),
# KEEP=1 keeps the work directory.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,4p "$0"; exit 64; }
rules_dir=$1
shift
FG=${FLOWGATE:-target/release/flowgate}
SURICATA=${SURICATA:-suricata}
work=$(mktemp -d)
[ "${KEEP:-}" = 1 ] && echo "work dir: $work" || trap 'rm -rf "$work"' EXIT

files=()
for f in emerging-sql emerging-web_server emerging-web_specific_apps; do
    files+=("$rules_dir/$f.rules")
done
cat "${files[@]}" >"$work/all.rules"

"$FG" rules check "${files[@]}" >"$work/check.txt" 2>&1 || true
printf '[signatures]\nbuiltin = false\nrule_files = [%s]\n' \
    "$(printf '"%s",' "${files[@]}" | sed 's/,$//')" >"$work/flowgate.toml"

python3 - "$work/check.txt" "${files[@]}" >"$work/loaded.txt" 2>"$work/load-summary.txt" <<'EOF'
import re, sys
check, files = sys.argv[1], sys.argv[2:]
skipped = set()
for l in open(check):
    m = re.match(r"  skipped \S+: sid (\d+):", l)
    if m:
        skipped.add(int(m.group(1)))
all_sids = []
for f in files:
    for l in open(f, encoding="utf-8", errors="replace"):
        m = re.search(r"\bsid:\s*(\d+)\s*;", l)
        if re.match(r"^(alert|drop|reject|pass)\s", l) and m:
            all_sids.append(int(m.group(1)))
loaded = [s for s in all_sids if s not in skipped]
print(" ".join(map(str, loaded)))
sys.stderr.write(f"rules: {len(all_sids)}, load: {len(loaded)} ({100*len(loaded)/max(1,len(all_sids)):.1f} %), skipped: {len(all_sids)-len(loaded)}\n")
EOF
echo "== load (flowgate rules check)"
cat "$work/load-summary.txt"
grep -E '^/|^compiled' "$work/check.txt"
echo "skip reasons (top 10):"
sed -n '/^skip reasons:/,/^compiled/p' "$work/check.txt" | grep -v -e '^skip reasons' -e '^compiled' | head -10

i=0
for pcap in "$@"; do
    i=$((i + 1))
    echo "== $pcap"
    mkdir -p "$work/s$i"
    "$SURICATA" -r "$pcap" -S "$work/all.rules" -k none -l "$work/s$i" \
        --set vars.address-groups.HOME_NET=any \
        --set vars.address-groups.EXTERNAL_NET=any ${SURICATA_ARGS:-} >"$work/s$i/stdout" 2>&1 || {
        echo "suricata failed:"; tail -5 "$work/s$i/stdout"; exit 1; }
    "$FG" analyze -c "$work/flowgate.toml" --mode detect --summary none \
        --alerts "$work/f$i.jsonl" "$pcap" >/dev/null 2>"$work/f$i.log"
    python3 - "$work/loaded.txt" "$work/s$i/eve.json" "$work/f$i.jsonl" <<'EOF'
import json, sys
loaded = set(map(int, open(sys.argv[1]).read().split()))
def alerts(path):
    out = set()
    for l in open(path):
        v = json.loads(l)
        if v.get("event_type") != "alert":
            continue
        sid = v["alert"]["signature_id"]
        if sid in loaded:
            out.add(((v["src_ip"], v.get("src_port"), v["dest_ip"], v.get("dest_port")), sid))
    return out
s, f = alerts(sys.argv[2]), alerts(sys.argv[3])
extra = sorted(f - s)
s_flows = {k for k, _ in s}
f_flows = {k for k, _ in f}
print(f"suricata: {len(s)} alert(s) on {len(s_flows)} flow(s) for rules both load; flowgate: {len(f)} alert(s) on {len(f_flows)} flow(s)")
print(f"flowgate alerts Suricata does not raise: {len(extra)}")
for k, sid in extra[:20]:
    print(f"  extra: sid {sid} on {k}")
if s_flows:
    both = len(s_flows & f_flows)
    print(f"Suricata-alerted flows flowgate also alerts on: {both}/{len(s_flows)} ({100*both/len(s_flows):.1f} %)")
    missed = {}
    for k, sid in s:
        if k not in f_flows:
            missed[sid] = missed.get(sid, 0) + 1
    if missed:
        print("  missed sids (first 15):", " ".join(str(x) for x in sorted(missed)[:15]))
EOF
done
