#!/usr/bin/env bash
# BPF_PROG_TEST_RUN fixtures for bpf/flowgate_xdp.c.
#
#   sudo bash bpf/test_run.sh          # exit 0 = all cases passed
#
# Needs root, clang + libbpf-dev (to build), bpftool, python3, iproute2 and
# util-linux `unshare`. The whole run happens in a private network + mount
# namespace: a veth pair (fgA/fgB) is created there, a bpffs is mounted on a
# temp dir for the pins, and all of it disappears with the namespace. The
# script also removes pins / unmounts explicitly on exit.
#
# Env: FG_XDP_KEEP=1 keeps the temp dir (frames, objects) for debugging.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "${FG_XDP_TEST_INNER:-}" != 1 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test_run.sh: must run as root (BPF_PROG_TEST_RUN, bpffs, netns)" >&2
		exit 2
	fi
	for t in bpftool python3 ip unshare clang; do
		command -v "$t" >/dev/null 2>&1 || { echo "test_run.sh: missing $t" >&2; exit 2; }
	done
	FG_XDP_TEST_INNER=1 exec unshare --net --mount --propagation private -- bash "$0" "$@"
fi

# ----------------------------------------------------------------- setup ----

H="python3 -S $here/test_helper.py"   # -S: skip site imports (startup time)
# No '.' in this path: libbpf turns '.' into '_' when it builds pin paths.
W="$(mktemp -d /tmp/fgxdptestXXXXXX)"
FS="$W/bpffs"

cleanup() {
	for d in "$FS"/open "$FS"/closed; do
		[ -d "$d" ] || continue
		rm -f "$d"/prog "$d"/maps/* 2>/dev/null
		rmdir "$d"/maps "$d" 2>/dev/null
	done
	mountpoint -q "$FS" && umount "$FS"
	if [ "${FG_XDP_KEEP:-}" = 1 ]; then
		echo "kept $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT

mkdir -p "$FS" "$W/frames"
mount -t bpf bpf "$FS" || { echo "cannot mount bpffs" >&2; exit 2; }

ip link set lo up
ip link add fgA numtxqueues 4 numrxqueues 4 type veth peer name fgB numtxqueues 4 numrxqueues 4 \
	|| { echo "cannot create veth pair" >&2; exit 2; }
ip link set fgA up
ip link set fgB up
IFA="$(ip -o link show fgA | cut -d: -f1)"
IFB="$(ip -o link show fgB | cut -d: -f1)"

echo "== bpftool: $(bpftool version 2>/dev/null | head -1); kernel $(uname -r)"
echo "== building objects into $W"
bash "$here/build.sh" "$W/open" >/dev/null || exit 1
bash "$here/build.sh" "$W/closed" -DFG_FAIL_CLOSED_DEFAULT=1 >/dev/null || exit 1

load() { # load VARIANT -> pins prog at $FS/VARIANT/prog, maps in $FS/VARIANT/maps
	mkdir -p "$FS/$1/maps"
	if ! bpftool prog load "$W/$1/flowgate_xdp.o" "$FS/$1/prog" type xdp \
		pinmaps "$FS/$1/maps" 2>"$W/load-$1.log"; then
		cat "$W/load-$1.log" >&2
		echo "FAIL: loading the $1 object" >&2
		exit 1
	fi
}
load open
load closed

# ------------------------------------------------------------- plumbing ----

PASS=0
FAIL=0
V=open  # variant the helpers below act on

M() { echo "$FS/$V/maps/$1"; }

map_set() { # map_set MAP KEYTYPE KEY VALTYPE VALUE
	# shellcheck disable=SC2046
	bpftool map update pinned "$(M "$1")" key $($H bytes "$2" "$3") value $($H bytes "$4" "$5")
}
map_set_raw() { # map_set_raw MAP "key bytes" "value bytes"
	# shellcheck disable=SC2086
	bpftool map update pinned "$(M "$1")" key $2 value $3
}
map_has() { # map_has MAP KEYTYPE KEY -> exit 0 if present
	# shellcheck disable=SC2046
	bpftool map lookup pinned "$(M "$1")" key $($H bytes "$2" "$3") >/dev/null 2>&1
}
map_del() {
	# shellcheck disable=SC2046
	bpftool map delete pinned "$(M "$1")" key $($H bytes "$2" "$3") >/dev/null 2>&1 || true
}
counters_to() { # counters_to FILE: all counter sums, index order, one line
	bpftool -j map dump pinned "$(M counters)" | $H percpu-all >"$1"
}
snap() { counters_to "$W/cnt.before"; }   # before a case
after() { counters_to "$W/cnt.after"; }   # after it (run() does this itself)
delta() { # delta IDX -> increase of counter IDX between snap and after
	local -a b a
	read -ra b <"$W/cnt.before"
	read -ra a <"$W/cnt.after"
	echo $(( ${a[$1]} - ${b[$1]} ))
}
future() { $H now 3600; }   # CLOCK_MONOTONIC ns, 1 h ahead
past() { $H now -1; }       # 1 s ago

frame() { # frame NAME KIND [helper args...] -> path
	local name="$1"; shift
	$H frame "$1" "$W/frames/$name.bin" "${@:2}" || exit 1
	echo "$W/frames/$name.bin"
}
ctx() { # ctx NAME DATA_END IFINDEX QUEUE -> path
	$H ctx "$W/frames/$1.ctx" --data-end "$2" --ifindex "$3" --queue "$4" || exit 1
	echo "$W/frames/$1.ctx"
}
run() { # run FRAME [CTX] -> retval (or ERR:...); then snapshots counters (after)
	if [ -n "${2:-}" ]; then
		bpftool -j prog run pinned "$FS/$V/prog" data_in "$1" ctx_in "$2" repeat 1 2>&1 | $H retval
	else
		bpftool -j prog run pinned "$FS/$V/prog" data_in "$1" repeat 1 2>&1 | $H retval
	fi
	after
}

# check NAME COND...   each COND is "label actual expected"
check() {
	local name="$1"; shift
	local ok=1 detail="" label actual expected
	while [ $# -gt 0 ]; do
		label="$1" actual="$2" expected="$3"; shift 3
		detail+=" $label=$actual"
		if [ "$actual" != "$expected" ]; then
			ok=0
			detail+="(want $expected)"
		fi
	done
	if [ $ok = 1 ]; then
		PASS=$((PASS + 1)); printf 'PASS  %-44s%s\n' "$name" "$detail"
	else
		FAIL=$((FAIL + 1)); printf 'FAIL  %-44s%s\n' "$name" "$detail"
	fi
}
present() { if map_has "$@"; then echo yes; else echo no; fi; }

# XDP verdicts as BPF_PROG_TEST_RUN reports them
ABORTED=0 DROP=1 PASS_=2 TX=3 REDIRECT=4

# ------------------------------------------------------------ fixtures -----
echo "== fixtures (fail_closed = 0), veth fgA=$IFA fgB=$IFB"
V=open

BAD4=198.18.0.66
F_BAD4="$(frame bad4 ipv4 --src $BAD4)"

# 1. blocklisted IPv4 source, expiry in the future -> XDP_DROP, counter[2]
map_set blocklist_v4 ip4 $BAD4 u64 "$(future)"
snap; r=$(run "$F_BAD4")
check "01 v4 blocklisted, live expiry -> DROP" \
	retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1  cnt3_pass "$(delta 3)" 0

# 2. same source, entry expired -> not dropped, entry deleted, counter[6]
map_set blocklist_v4 ip4 $BAD4 u64 "$(past)"
snap; r=$(run "$F_BAD4")
check "02 v4 blocklisted, expired -> PASS, deleted" \
	retval "$r" $PASS_  cnt2_block_drop "$(delta 2)" 0  cnt6_expired "$(delta 6)" 1 \
	entry_present "$(present blocklist_v4 ip4 $BAD4)" no

# 3. blocklisted but in an allowlisted /24 -> not dropped, counter[7]; the
#    entry stays (only expiry deletes). A /24 neighbour outside it is dropped.
map_set blocklist_v4 ip4 $BAD4 u64 "$(future)"
map_set_raw allowlist_v4 "$($H bytes lpm4 198.18.0.0/24)" "1"
snap; r=$(run "$F_BAD4")
check "03 v4 blocklisted + allowlisted /24 -> PASS" \
	retval "$r" $PASS_  cnt7_allow "$(delta 7)" 1  cnt2_block_drop "$(delta 2)" 0 \
	entry_present "$(present blocklist_v4 ip4 $BAD4)" yes
NEAR4=198.18.1.66
map_set blocklist_v4 ip4 $NEAR4 u64 "$(future)"
snap; r=$(run "$(frame near4 ipv4 --src $NEAR4)")
check "03b v4 blocklisted, outside allowlist -> DROP" \
	retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1  cnt7_allow "$(delta 7)" 0
map_del allowlist_v4 lpm4 198.18.0.0/24

# 4. IPv6 blocklisted -> DROP; expired -> deleted; allowlisted /64 -> PASS
BAD6=2001:db8:66::1
F_BAD6="$(frame bad6 ipv6 --src $BAD6)"
map_set blocklist_v6 ip6 $BAD6 u64 "$(future)"
snap; r=$(run "$F_BAD6")
check "04 v6 blocklisted -> DROP" retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1
map_set_raw allowlist_v6 "$($H bytes lpm6 2001:db8:66::/64)" "1"
snap; r=$(run "$F_BAD6")
check "04b v6 blocklisted + allowlisted /64 -> PASS" \
	retval "$r" $PASS_  cnt7_allow "$(delta 7)" 1
map_del allowlist_v6 lpm6 2001:db8:66::/64
map_set blocklist_v6 ip6 $BAD6 u64 "$(past)"
snap; r=$(run "$F_BAD6")
check "04c v6 blocklisted, expired -> PASS, deleted" \
	retval "$r" $PASS_  cnt6_expired "$(delta 6)" 1 \
	entry_present "$(present blocklist_v6 ip6 $BAD6)" no

# 5. VLAN: 802.1Q, QinQ (88a8 + 8100) -> DROP; three tags -> not parsed
map_set blocklist_v4 ip4 $BAD4 u64 "$(future)"
snap; r=$(run "$(frame vlan1 ipv4 --src $BAD4 --vlan 0x8100:10)")
check "05 802.1Q IPv4 blocklisted -> DROP" retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1
snap; r=$(run "$(frame vlan2 ipv4 --src $BAD4 --vlan 0x88a8:100 --vlan 0x8100:10)")
check "05b QinQ IPv4 blocklisted -> DROP" retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1
map_set blocklist_v6 ip6 $BAD6 u64 "$(future)"
snap; r=$(run "$(frame vlan6 ipv6 --src $BAD6 --vlan 0x8100:20)")
check "05c 802.1Q IPv6 blocklisted -> DROP" retval "$r" $DROP  cnt2_block_drop "$(delta 2)" 1
snap; r=$(run "$(frame vlan3 ipv4 --src $BAD4 --vlan 0x88a8:1 --vlan 0x8100:2 --vlan 0x8100:3)")
check "05d 3 VLAN tags -> not parsed, PASS" \
	retval "$r" $PASS_  cnt5_parse "$(delta 5)" 1  cnt2_block_drop "$(delta 2)" 0

# 6. ARP (sender IP is a blocklisted address) -> never blocklist-dropped
snap; r=$(run "$(frame arp arp --src $BAD4)")
check "06 ARP from blocklisted IP -> PASS" \
	retval "$r" $PASS_  cnt2_block_drop "$(delta 2)" 0  cnt5_parse "$(delta 5)" 0
snap; r=$(run "$(frame arpv arp --src $BAD4 --vlan 0x8100:10)")
check "06b 802.1Q ARP -> PASS" retval "$r" $PASS_  cnt2_block_drop "$(delta 2)" 0

# 7. too-short frame (10 bytes) -> parse error, still normal path.
#    The kernel refuses data_in < 14 bytes (ETH_HLEN), so pass 14 bytes and
#    an xdp_md with data_end = 10: the program sees a 10-byte frame.
F_SHORT="$(frame short raw --len 14 --pad-to 0)"
snap; r=$(run "$F_SHORT" "$(ctx short 10 0 0)")
check "07 10-byte frame -> PASS, parse error" \
	retval "$r" $PASS_  cnt5_parse "$(delta 5)" 1  cnt3_pass "$(delta 3)" 1
snap; r=$(run "$(frame trunc4 ipv4 --src $BAD4 --truncate 26)")
check "07b truncated IPv4 hdr (blocklisted) -> PASS" \
	retval "$r" $PASS_  cnt5_parse "$(delta 5)" 1  cnt2_block_drop "$(delta 2)" 0
snap; r=$(run "$(frame truncv ipv4 --src $BAD4 --vlan 0x8100:10 --truncate 16)")
check "07c truncated VLAN tag -> PASS, parse error" \
	retval "$r" $PASS_  cnt5_parse "$(delta 5)" 1

# 8. no AF_XDP socket, no peer -> XDP_PASS, counter[3]
F_OK4="$(frame ok4 ipv4 --src 198.18.0.10)"
F_OK4_LEN=$(stat -c %s "$F_OK4")
snap; r=$(run "$F_OK4")
check "08 clean v4, no xsk, no peer (lo) -> PASS" \
	retval "$r" $PASS_  cnt3_pass "$(delta 3)" 1  cnt0_xsk "$(delta 0)" 0  cnt1_fwd "$(delta 1)" 0
CTX_A0="$(ctx a0 "$F_OK4_LEN" "$IFA" 0)"
snap; r=$(run "$F_OK4" "$CTX_A0")
check "08b clean v4 on fgA, no xsk, no peer -> PASS" retval "$r" $PASS_  cnt3_pass "$(delta 3)" 1

# 9. peer configured: peer_devmap[fgA] = fgB -> redirect out fgB, counter[1]
map_set_raw peer_devmap "$($H bytes u32 "$IFA")" "$($H bytes u32 "$IFB") 0 0 0 0"
snap; r=$(run "$F_OK4" "$CTX_A0")
check "09 fallback to peer devmap -> REDIRECT" \
	retval "$r" $REDIRECT  cnt1_fwd "$(delta 1)" 1  cnt3_pass "$(delta 3)" 0
snap; r=$(run "$(frame arpA arp --src 198.18.0.10)" "$(ctx arpA 60 "$IFA" 0)")
check "09b ARP, peer configured -> REDIRECT" retval "$r" $REDIRECT  cnt1_fwd "$(delta 1)" 1
snap; r=$(run "$F_BAD4" "$CTX_A0")
check "09c blocklisted, peer configured -> DROP" retval "$r" $DROP  cnt1_fwd "$(delta 1)" 0
snap; r=$(run "$F_OK4" "$(ctx b0 "$F_OK4_LEN" "$IFB" 0)")
check "09d other port, no peer entry -> PASS" retval "$r" $PASS_  cnt3_pass "$(delta 3)" 1

# 10. ifindex_offset[fgA] = 8 but no socket in xsks_map -> devmap fallback
map_set ifindex_offset u32 "$IFA" u32 8
snap; r=$(run "$F_OK4" "$CTX_A0")
check "10 offset set, no xsk bound -> fallback REDIRECT" \
	retval "$r" $REDIRECT  cnt0_xsk "$(delta 0)" 0  cnt1_fwd "$(delta 1)" 1

# 11. AF_XDP socket bound on fgA queue 1 at xsks_map[8 + 1] -> XSK redirect.
#     Queue 2 (key 10, empty) still falls back. Closing the socket removes the
#     map entry (what happens when userspace dies) -> fallback again.
CTX_A1="$(ctx a1 "$F_OK4_LEN" "$IFA" 1)"
CTX_A2="$(ctx a2 "$F_OK4_LEN" "$IFA" 2)"
snap
XSK_OUT="$($H xsk-hold --ifname fgA --queue 1 --map "$(M xsks_map)" --key 9 -- \
	bash -c "echo \$(bpftool -j prog run pinned '$FS/$V/prog' data_in '$F_OK4' ctx_in '$CTX_A1' repeat 1 | $H retval) \
	          \$(bpftool -j prog run pinned '$FS/$V/prog' data_in '$F_OK4' ctx_in '$CTX_A2' repeat 1 | $H retval)" 2>&1)"
after
read -r r1 r2 <<<"$XSK_OUT"
check "11 xsk bound q1 -> REDIRECT to AF_XDP" \
	retval_q1 "${r1:-$XSK_OUT}" $REDIRECT  retval_q2 "${r2:-?}" $REDIRECT \
	cnt0_xsk "$(delta 0)" 1  cnt1_fwd "$(delta 1)" 1
# (XSKMAP cannot be read from userspace: lookup returns EOPNOTSUPP, so the
# removal is checked by behaviour.)
snap; r=$(run "$F_OK4" "$CTX_A1")
check "11b socket closed -> entry gone, fallback" \
	retval "$r" $REDIRECT  cnt0_xsk "$(delta 0)" 0  cnt1_fwd "$(delta 1)" 1
# blocklist is still checked before the socket
snap
XSK_OUT="$($H xsk-hold --ifname fgA --queue 1 --map "$(M xsks_map)" --key 9 -- \
	bash -c "bpftool -j prog run pinned '$FS/$V/prog' data_in '$F_BAD4' ctx_in '$CTX_A1' repeat 1 | $H retval" 2>&1)"
after
check "11c xsk bound, blocklisted source -> DROP" retval "$XSK_OUT" $DROP  cnt0_xsk "$(delta 0)" 0

# 13. SYN guard on a victim (syn_guard_v4 / syn_guard_v6, syn_seen).
VIC4=198.19.0.80
CLI4=198.18.5.5
F_SYN4="$(frame syn4 tcp4 --src $CLI4 --dst $VIC4 --flags 0x02)"
snap; r=$(run "$F_SYN4")
check "13 SYN to unguarded victim -> PASS" \
	retval "$r" $PASS_  cnt8_first "$(delta 8)" 0  seen "$(present syn_seen seen "$CLI4>$VIC4")" no
map_set syn_guard_v4 ip4 $VIC4 guard "$(future):0"
snap; r=$(run "$F_SYN4")
check "13b guarded: first SYN of a source -> DROP, remembered" \
	retval "$r" $DROP  cnt8_first "$(delta 8)" 1  seen "$(present syn_seen seen "$CLI4>$VIC4")" yes
# (first seen "in 5 s": the helper round trips here are slower than 200 ms)
map_set_raw syn_seen "$($H bytes seen "$CLI4>$VIC4")" "$($H bytes u64 "$($H now 5)")"
snap; r=$(run "$F_SYN4")
check "13c resend within 200 ms -> DROP" retval "$r" $DROP  cnt8_first "$(delta 8)" 1  cnt9_pass "$(delta 9)" 0
map_set_raw syn_seen "$($H bytes seen "$CLI4>$VIC4")" "$($H bytes u64 "$($H now -0.3)")"
snap; r=$(run "$F_SYN4")
check "13d retransmission after 200 ms -> PASS" retval "$r" $PASS_  cnt9_pass "$(delta 9)" 1  cnt8_first "$(delta 8)" 0
snap; r=$(run "$(frame synack4 tcp4 --src $CLI4 --dst $VIC4 --flags 0x12)")
check "13e SYN+ACK / ACK not guarded -> PASS" retval "$r" $PASS_  cnt8_first "$(delta 8)" 0
snap; r=$(run "$(frame ack4 tcp4 --src 198.18.5.6 --dst $VIC4 --flags 0x10)")
check "13f new source's ACK -> PASS" retval "$r" $PASS_  cnt8_first "$(delta 8)" 0
snap; r=$(run "$(frame synfr tcp4 --src 198.18.5.7 --dst $VIC4 --flags 0x02 --frag-off 0x2000)")
check "13g SYN in a first fragment -> guarded, DROP" retval "$r" $DROP  cnt8_first "$(delta 8)" 1
snap; r=$(run "$(frame synvl tcp4 --src 198.18.5.8 --dst $VIC4 --flags 0x02 --vlan 0x8100:7)")
check "13h SYN behind a VLAN tag -> guarded, DROP" retval "$r" $DROP  cnt8_first "$(delta 8)" 1
# per-second cap of passed SYNs: limit 1 -> second validated SYN dropped
map_set syn_guard_v4 ip4 $VIC4 guard "$(future):1"
F_SYN4B="$(frame syn4b tcp4 --src 198.18.5.9 --dst $VIC4 --flags 0x02)"
map_set_raw syn_seen "$($H bytes seen "198.18.5.9>$VIC4")" "$($H bytes u64 "$($H now -1)")"
map_set_raw syn_seen "$($H bytes seen "$CLI4>$VIC4")" "$($H bytes u64 "$($H now -1)")"
snap; r1=$(run "$F_SYN4"); r2=$(run "$F_SYN4B")
check "13i limit 1/s: second validated SYN -> DROP" \
	first "$r1" $PASS_  second "$r2" $DROP  cnt10_rate "$(delta 10)" 1
map_set syn_guard_v4 ip4 $VIC4 guard "$(past):0"
snap; r=$(run "$(frame synexp tcp4 --src 198.18.5.10 --dst $VIC4 --flags 0x02)")
check "13j expired guard -> PASS" retval "$r" $PASS_  cnt8_first "$(delta 8)" 0
map_del syn_guard_v4 ip4 $VIC4
VIC6=2001:db8:80::1
map_set syn_guard_v6 ip6 $VIC6 guard "$(future):0"
F_SYN6="$(frame syn6 tcp6 --src 2001:db8:5::5 --dst $VIC6 --flags 0x02)"
snap; r=$(run "$F_SYN6")
check "13k v6 guarded: first SYN -> DROP" retval "$r" $DROP  cnt8_first "$(delta 8)" 1
sleep 0.25
snap; r=$(run "$F_SYN6")
check "13l v6 retransmission -> PASS" retval "$r" $PASS_  cnt9_pass "$(delta 9)" 1
map_del syn_guard_v6 ip6 $VIC6

# --------------------------------------------------- fail_closed = 1 -------
echo "== fixtures (object built with fail_closed = 1)"
V=closed
map_set_raw peer_devmap "$($H bytes u32 "$IFA")" "$($H bytes u32 "$IFB") 0 0 0 0"
map_set ifindex_offset u32 "$IFA" u32 8
snap; r=$(run "$F_OK4" "$CTX_A0")
check "12 fail-closed, no xsk, peer set -> DROP" \
	retval "$r" $DROP  cnt4_fc_drop "$(delta 4)" 1  cnt1_fwd "$(delta 1)" 0
snap; r=$(run "$F_OK4")
check "12b fail-closed, no xsk, no peer -> DROP" retval "$r" $DROP  cnt4_fc_drop "$(delta 4)" 1
snap; r=$(run "$(frame arpC arp --src 198.18.0.10)" "$(ctx arpC 60 "$IFA" 0)")
check "12c fail-closed ARP, no xsk -> DROP" retval "$r" $DROP  cnt4_fc_drop "$(delta 4)" 1
snap
XSK_OUT="$($H xsk-hold --ifname fgA --queue 1 --map "$(M xsks_map)" --key 9 -- \
	bash -c "bpftool -j prog run pinned '$FS/$V/prog' data_in '$F_OK4' ctx_in '$CTX_A1' repeat 1 | $H retval" 2>&1)"
after
check "12d fail-closed, xsk bound -> REDIRECT to AF_XDP" \
	retval "$XSK_OUT" $REDIRECT  cnt0_xsk "$(delta 0)" 1  cnt4_fc_drop "$(delta 4)" 0
RODATA="$(bpftool -j map dump pinned "$(M flowgate_rodata)" 2>/dev/null | tr -d ' \n')"
case "$RODATA" in *'"fail_closed":1'*) ro=1 ;; *'"fail_closed":0'*) ro=0 ;; *) ro="?" ;; esac
check "12e .rodata fail_closed visible via BTF" fail_closed "$ro" 1

echo "== $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
