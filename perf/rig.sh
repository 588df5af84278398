# Sourced by perf/live-inline.sh and perf/live-idle.sh: the three-namespace veth line
# of the live benchmarks (addresses are the scripts' business; 198.18.0.0/15 only).
#
#   attacker NS_A  PA0 ══ PGA  gateway NS_G  PGB ══ PV0  NS_V victim      (P = PREFIX)
#
# rig_up NS_A NS_G NS_V PREFIX BPFDIR: the namespaces, both veth pairs up, GRO on and TX
# checksum offload off on the outer ends (what flowgate's XDP redirect needs on veth),
# and a bpffs at BPFDIR on the host side (pins made inside `ip netns exec` die with it).
rig_up() {
  local a=$1 g=$2 v=$3 p=$4 bpf=$5 x
  for x in $a $g $v; do ip netns add "$x"; ip -n "$x" link set lo up; done
  ip link add "${p}A0" netns "$a" type veth peer name "${p}GA" netns "$g"
  ip link add "${p}GB" netns "$g" type veth peer name "${p}V0" netns "$v"
  ip -n "$a" link set "${p}A0" up
  ip -n "$g" link set "${p}GA" up
  ip -n "$g" link set "${p}GB" up
  ip -n "$v" link set "${p}V0" up
  ip netns exec "$a" ethtool -K "${p}A0" gro on tx off >/dev/null
  ip netns exec "$v" ethtool -K "${p}V0" gro on tx off >/dev/null
  mkdir -p "$bpf"
  mount -t bpf bpf "$bpf"
}

# rig_down NS_A NS_G NS_V BPFDIR: undo rig_up; quiet about what is not there.
rig_down() {
  local x
  for x in "$1" "$2" "$3"; do ip netns del "$x" 2>/dev/null || true; done
  umount "$4" 2>/dev/null || true
}
