// SPDX-License-Identifier: GPL-2.0
/*
 * flowgate_xdp.c - XDP front end of flowgate's live mode.
 *
 * Built with:  clang -O2 -g -target bpf -c flowgate_xdp.c  (see build.sh)
 * Loaded by:   aya 0.14 (userspace), program "flowgate_xdp", SEC("xdp").
 *
 * ------------------------------------------------------------------------
 * Contract with the Rust loader (names are stable; the Rust side uses them)
 * ------------------------------------------------------------------------
 *
 * Maps (BTF-defined, section ".maps"):
 *
 *   blocklist_v4    HASH          key __u32 (IPv4 source, network byte order,
 *                                 i.e. the 4 address bytes as on the wire)
 *                                 value __u64 expiry, CLOCK_MONOTONIC ns
 *                                 max_entries 65536 (resize before load)
 *   blocklist_v6    HASH          key struct fg_in6 { __u8 addr[16]; }
 *                                 value __u64 expiry, CLOCK_MONOTONIC ns
 *                                 max_entries 65536 (resize before load)
 *   allowlist_v4    LPM_TRIE      key struct fg_lpm_v4 { __u32 prefixlen; __u8 addr[4]; }
 *                                 value __u8 (ignored; presence = allowed)
 *                                 BPF_F_NO_PREALLOC, max_entries 1024
 *   allowlist_v6    LPM_TRIE      key struct fg_lpm_v6 { __u32 prefixlen; __u8 addr[16]; }
 *                                 value __u8, BPF_F_NO_PREALLOC, max_entries 1024
 *   xsks_map        XSKMAP        key __u32 = port offset + rx queue index,
 *                                 value __u32 AF_XDP socket fd, max_entries 64
 *   ifindex_offset  HASH          key __u32 ingress ifindex -> value __u32
 *                                 port offset into xsks_map, max_entries 16
 *   peer_devmap     DEVMAP_HASH   key __u32 ingress ifindex -> value
 *                                 struct bpf_devmap_val (ifindex of the peer
 *                                 port the frame leaves by), max_entries 16
 *   counters        PERCPU_ARRAY  key __u32 index -> __u64, max_entries 11
 *   syn_guard_v4    HASH          key __u32 (IPv4 destination, wire order)
 *                                 value struct fg_guard (below), max_entries 4096
 *   syn_guard_v6    HASH          key struct fg_in6 (IPv6 destination)
 *                                 value struct fg_guard, max_entries 4096
 *   syn_seen        LRU_HASH      key struct fg_syn_key { __u8 src[16]; __u8 dst[16]; }
 *                                 (IPv4 as IPv4-mapped IPv6), value __u64 time
 *                                 of the first SYN seen, CLOCK_MONOTONIC ns,
 *                                 max_entries 131072 (resize before load)
 *
 * .rodata config (set before load, e.g. aya EbpfLoader::set_global):
 *
 *   const volatile __u8 fail_closed = 0;   1 = fallback drops, never forwards
 *
 * Counter indices (counters map, per CPU; sum across CPUs):
 *
 *   0 FG_CNT_XSK_REDIRECT     redirected to an AF_XDP socket
 *   1 FG_CNT_FALLBACK_FWD     fallback: forwarded out the peer port (devmap)
 *   2 FG_CNT_BLOCK_DROP       dropped: source in blocklist, not expired
 *   3 FG_CNT_PASS_NO_PEER     fallback: no peer configured -> XDP_PASS
 *   4 FG_CNT_FAIL_CLOSED_DROP fallback: dropped because fail_closed = 1
 *   5 FG_CNT_PARSE_ERROR      too short / truncated / malformed L2-L3 header
 *                             or more than two VLAN tags (frame still takes
 *                             the normal path below, it is NOT dropped)
 *   6 FG_CNT_BLOCK_EXPIRED    blocklist entry found expired and deleted
 *   7 FG_CNT_ALLOW_OVERRIDE   blocklist hit ignored because allowlisted
 *   8 FG_CNT_GUARD_FIRST_DROP SYN guard: first SYN of a source to a guarded
 *                             victim (or a resend within 200 ms) dropped
 *   9 FG_CNT_GUARD_PASS       SYN guard: retransmitted SYN passed
 *  10 FG_CNT_GUARD_RATE_DROP  SYN guard: retransmitted SYN over the
 *                             victim's per-second limit dropped
 *
 * Verdict logic, per frame:
 *
 *   1. Parse Ethernet, up to two VLAN tags (0x8100 / 0x88a8), then IPv4 or
 *      IPv6 (only the source address is read). Anything that does not parse
 *      counts [5] and continues at step 3 as a non-IP frame.
 *   2. IPv4 / IPv6 only: look the source up in blocklist_v{4,6}.
 *        - present, expiry > now (bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC
 *          as of the last tick, so a block may outlast its expiry by one
 *          jiffy; it spares every dropped packet a clock-source read, the
 *          largest single cost of this path in a VM):
 *            if the source matches allowlist_v{4,6} (LPM)  -> count [7], go on
 *            else                                          -> count [2], XDP_DROP
 *        - present, expiry <= now: delete the entry, count [6], go on.
 *      The allowlist has precedence over the blocklist: an allowlisted
 *      source is never dropped here. (It is only consulted on a live
 *      blocklist hit, so clean traffic pays one hash lookup, not a trie walk.)
 *      Non-IP frames (ARP, LLDP, ...) skip this step: never blocklist-dropped.
 *   2b. SYN guard (IPv4 without fragment offset, or IPv6 with TCP as the
 *      first next header): a TCP SYN without ACK/RST to a destination with
 *      a live syn_guard_v{4,6} entry (until > now) is dropped unless its
 *      (source, destination) pair sent a SYN before, at least 200 ms
 *      earlier: a real client's TCP retransmits its SYN after its initial
 *      RTO (1 s), a spoofed source of a random-source flood never comes
 *      back. Passed SYNs are capped at the entry's limit per second (0 = no
 *      cap). Userspace (the sink) inserts entries when the engine reports a
 *      victim SYN flood, extends them while the guard keeps dropping, and
 *      deletes them when they expire.
 *   3. AF_XDP: off = ifindex_offset[ingress_ifindex]; if present,
 *      bpf_redirect_map(&xsks_map, off + rx_queue_index, 0). If a socket is
 *      bound at that key the helper returns XDP_REDIRECT -> count [0], return it.
 *      (With flags 0 a missing key returns XDP_ABORTED; we never return that,
 *      we fall through. A failed lookup clears the redirect state, so the
 *      second bpf_redirect_map below is fine.)
 *   4. Fallback (userspace not attached for this port/queue, e.g. crashed):
 *        - fail_closed == 1                              -> count [4], XDP_DROP
 *        - bpf_redirect_map(&peer_devmap, ingress_ifindex, 0) == XDP_REDIRECT
 *                                                        -> count [1], forward
 *          unchanged out the peer port (a wire, not the host stack)
 *        - otherwise (no peer configured)                -> count [3], XDP_PASS
 *
 * Rust loader duties: set fail_closed before load; resize blocklist_v*
 * before load if wanted; fill ifindex_offset {ingress -> 0, egress -> Q}
 * (Q >= queue count of the first port, offset + queues <= 64); put each
 * AF_XDP socket fd at xsks_map[offset(port) + queue]; fill peer_devmap
 * symmetrically {ingress -> egress, egress -> ingress}; write blocklist
 * expiries in CLOCK_MONOTONIC ns. See README.md.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* ---- counters ---------------------------------------------------------- */

enum fg_counter {
	FG_CNT_XSK_REDIRECT = 0,
	FG_CNT_FALLBACK_FWD = 1,
	FG_CNT_BLOCK_DROP = 2,
	FG_CNT_PASS_NO_PEER = 3,
	FG_CNT_FAIL_CLOSED_DROP = 4,
	FG_CNT_PARSE_ERROR = 5,
	FG_CNT_BLOCK_EXPIRED = 6,
	FG_CNT_ALLOW_OVERRIDE = 7,
	FG_CNT_GUARD_FIRST_DROP = 8,
	FG_CNT_GUARD_PASS = 9,
	FG_CNT_GUARD_RATE_DROP = 10,
	FG_CNT_MAX = 11,
};

/* ---- config (.rodata, frozen at load) ---------------------------------- */

#ifndef FG_FAIL_CLOSED_DEFAULT
#define FG_FAIL_CLOSED_DEFAULT 0
#endif

/* 1 = when no AF_XDP socket takes the frame, drop it instead of forwarding. */
const volatile __u8 fail_closed = FG_FAIL_CLOSED_DEFAULT;

/* ---- key types --------------------------------------------------------- */

struct fg_in6 {
	__u8 addr[16];
};

struct fg_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct fg_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A victim's SYN guard. `until` and `limit` are written by userspace; the
 * rest is the program's (racy across CPUs by design: an approximate
 * per-second cap is enough, and the totals use atomic adds). */
struct fg_guard {
	__u64 until;        /* CLOCK_MONOTONIC ns; guard off at or after this */
	__u64 window;       /* start of the current one-second window */
	__u64 dropped;      /* SYNs dropped by this guard, all reasons */
	__u64 passed_total; /* retransmitted SYNs passed */
	__u32 limit;        /* passed SYNs per second; 0 = uncapped */
	__u32 passed;       /* passed in the current window */
};

struct fg_syn_key {
	__u8 src[16];
	__u8 dst[16];
};

struct tcp_min {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags; /* CWR ECE URG ACK PSH RST SYN FIN, high to low */
};

#define FG_TCP_SYN 0x02
#define FG_TCP_RST 0x04
#define FG_TCP_ACK 0x10

/* A TCP retransmission comes after the initial RTO (RFC 6298: 1 s); a
 * resend sooner than this is the same first attempt (a flooder sending
 * every spoofed SYN twice back to back). */
#define FG_GUARD_MIN_GAP_NS (200ULL * 1000 * 1000)
#define FG_GUARD_WINDOW_NS (1000ULL * 1000 * 1000)

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* ---- maps -------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} blocklist_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fg_in6);
	__type(value, __u64);
} blocklist_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_lpm_v4);
	__type(value, __u8);
} allowlist_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_lpm_v6);
	__type(value, __u8);
} allowlist_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} ifindex_offset SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} peer_devmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fg_guard);
} syn_guard_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fg_in6);
	__type(value, struct fg_guard);
} syn_guard_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct fg_syn_key);
	__type(value, __u64);
} syn_seen SEC(".maps");

/* ---- helpers ----------------------------------------------------------- */

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

enum fg_l3 {
	FG_L3_OTHER = 0, /* non-IP, or not parseable: never blocklist-dropped */
	FG_L3_V4 = 1,
	FG_L3_V6 = 2,
};

/*
 * Returns 1 if the frame must be dropped because its source is blocklisted
 * (and not allowlisted), 0 otherwise.
 */
static __always_inline int check_v4(__u32 saddr)
{
	__u64 *exp = bpf_map_lookup_elem(&blocklist_v4, &saddr);

	if (!exp)
		return 0;

	if (*exp <= bpf_ktime_get_coarse_ns()) {
		bpf_map_delete_elem(&blocklist_v4, &saddr);
		count(FG_CNT_BLOCK_EXPIRED);
		return 0;
	}

	struct fg_lpm_v4 lk = { .prefixlen = 32 };

	__builtin_memcpy(lk.addr, &saddr, 4);
	if (bpf_map_lookup_elem(&allowlist_v4, &lk)) {
		count(FG_CNT_ALLOW_OVERRIDE);
		return 0;
	}
	return 1;
}

static __always_inline int check_v6(const struct fg_in6 *src)
{
	struct fg_in6 key;

	__builtin_memcpy(&key, src, sizeof(key)); /* map keys live on the stack */

	__u64 *exp = bpf_map_lookup_elem(&blocklist_v6, &key);

	if (!exp)
		return 0;

	if (*exp <= bpf_ktime_get_coarse_ns()) {
		bpf_map_delete_elem(&blocklist_v6, &key);
		count(FG_CNT_BLOCK_EXPIRED);
		return 0;
	}

	struct fg_lpm_v6 lk = { .prefixlen = 128 };

	__builtin_memcpy(lk.addr, key.addr, 16);
	if (bpf_map_lookup_elem(&allowlist_v6, &lk)) {
		count(FG_CNT_ALLOW_OVERRIDE);
		return 0;
	}
	return 1;
}

/*
 * The SYN guard for one SYN to a guarded victim `g`. Returns 1 to drop.
 */
static __always_inline int syn_guard(struct fg_guard *g, const struct fg_syn_key *k, __u64 now)
{
	__u64 *seen = bpf_map_lookup_elem(&syn_seen, k);

	if (!seen) {
		__u64 t = now;

		bpf_map_update_elem(&syn_seen, k, &t, BPF_ANY);
		__sync_fetch_and_add(&g->dropped, 1);
		count(FG_CNT_GUARD_FIRST_DROP);
		return 1;
	}
	if ((__s64)(now - *seen) < (__s64)FG_GUARD_MIN_GAP_NS) {
		/* Keep the first time: the real retransmission still passes. */
		__sync_fetch_and_add(&g->dropped, 1);
		count(FG_CNT_GUARD_FIRST_DROP);
		return 1;
	}
	if (now - g->window >= FG_GUARD_WINDOW_NS) {
		g->window = now;
		g->passed = 0;
	}
	if (g->limit && g->passed >= g->limit) {
		__sync_fetch_and_add(&g->dropped, 1);
		count(FG_CNT_GUARD_RATE_DROP);
		return 1;
	}
	__sync_fetch_and_add(&g->passed, 1);
	__sync_fetch_and_add(&g->passed_total, 1);
	count(FG_CNT_GUARD_PASS);
	return 0;
}

/* Flags byte of a TCP header at `th`, or -1 if it is not in the frame. */
static __always_inline int tcp_flags(void *th, void *data_end)
{
	struct tcp_min *t = th;

	if ((void *)(t + 1) > data_end)
		return -1;
	return t->flags;
}

static __always_inline int is_bare_syn(int fl)
{
	return fl >= 0 && (fl & (FG_TCP_SYN | FG_TCP_ACK | FG_TCP_RST)) == FG_TCP_SYN;
}

/* ---- program ----------------------------------------------------------- */

SEC("xdp")
int flowgate_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* Copy ctx fields to locals before using them as map keys (verifier). */
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 rxq = ctx->rx_queue_index;
	struct ethhdr *eth = data;
	void *cur;
	__u16 proto;
	long ret;

	/* ---- parse ---- */
	if ((void *)(eth + 1) > data_end) {
		count(FG_CNT_PARSE_ERROR);
		goto deliver;
	}
	proto = eth->h_proto;
	cur = eth + 1;

#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = cur;

		if ((void *)(vh + 1) > data_end) {
			count(FG_CNT_PARSE_ERROR);
			goto deliver;
		}
		proto = vh->h_vlan_encapsulated_proto;
		cur = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = cur;

		if ((void *)(ip4 + 1) > data_end || ip4->version != 4 || ip4->ihl < 5) {
			count(FG_CNT_PARSE_ERROR);
			goto deliver;
		}
		if (check_v4(ip4->saddr)) {
			count(FG_CNT_BLOCK_DROP);
			return XDP_DROP;
		}
		/* First fragments carry the TCP header too. */
		if (ip4->protocol == IPPROTO_TCP && !(ip4->frag_off & bpf_htons(0x1fff))) {
			void *th = (void *)ip4 + ip4->ihl * 4;
			__u32 daddr = ip4->daddr;

			if (is_bare_syn(tcp_flags(th, data_end))) {
				struct fg_guard *g = bpf_map_lookup_elem(&syn_guard_v4, &daddr);
				__u64 now = bpf_ktime_get_ns();

				if (g && g->until > now) {
					struct fg_syn_key k = {};

					k.src[10] = 0xff;
					k.src[11] = 0xff;
					k.dst[10] = 0xff;
					k.dst[11] = 0xff;
					__builtin_memcpy(&k.src[12], &ip4->saddr, 4);
					__builtin_memcpy(&k.dst[12], &daddr, 4);
					if (syn_guard(g, &k, now))
						return XDP_DROP;
				}
			}
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6) {
			count(FG_CNT_PARSE_ERROR);
			goto deliver;
		}
		if (check_v6((const struct fg_in6 *)&ip6->saddr)) {
			count(FG_CNT_BLOCK_DROP);
			return XDP_DROP;
		}
		/* TCP right after the fixed header; extension headers skip the
		 * guard (the engine still sees and counts them). */
		if (ip6->nexthdr == IPPROTO_TCP && is_bare_syn(tcp_flags(ip6 + 1, data_end))) {
			struct fg_in6 dkey;

			__builtin_memcpy(&dkey, &ip6->daddr, sizeof(dkey));

			struct fg_guard *g = bpf_map_lookup_elem(&syn_guard_v6, &dkey);
			__u64 now = bpf_ktime_get_ns();

			if (g && g->until > now) {
				struct fg_syn_key k;

				__builtin_memcpy(k.src, &ip6->saddr, 16);
				__builtin_memcpy(k.dst, dkey.addr, 16);
				if (syn_guard(g, &k, now))
					return XDP_DROP;
			}
		}
	} else if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		/* A third VLAN tag: we cannot see the source, userspace decides. */
		count(FG_CNT_PARSE_ERROR);
	}
	/* ARP and every other non-IP ethertype: straight to delivery. */

deliver:
	/* ---- AF_XDP socket for this port + queue ---- */
	{
		__u32 *off = bpf_map_lookup_elem(&ifindex_offset, &ifindex);

		if (off) {
			__u32 key = *off + rxq;

			ret = bpf_redirect_map(&xsks_map, key, 0);
			if (ret == XDP_REDIRECT) {
				count(FG_CNT_XSK_REDIRECT);
				return XDP_REDIRECT;
			}
		}
	}

	/* ---- fallback: nobody in userspace for this frame ---- */
	if (fail_closed) {
		count(FG_CNT_FAIL_CLOSED_DROP);
		return XDP_DROP;
	}

	ret = bpf_redirect_map(&peer_devmap, ifindex, 0);
	if (ret == XDP_REDIRECT) {
		count(FG_CNT_FALLBACK_FWD);
		return XDP_REDIRECT;
	}

	count(FG_CNT_PASS_NO_PEER);
	return XDP_PASS;
}
