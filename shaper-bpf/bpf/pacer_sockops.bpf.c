// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pacer's sock_ops program: low-latency TCP tuning for the classes that ask for it, and TCP's own
 * pacing for the classes policed without fq.
 * Attached to the cgroup v2 root, it sees every TCP socket. A socket is classified in tc's order
 * (classify_order.h: its mark, its cgroup, its peer's prefix), so its packets and the socket
 * land in the same class. A socket whose class has tuning gets TCP_BPF_RTO_MIN and
 * TCP_BPF_DELACK_MAX (a listener by its mark and cgroup only, and its accepted sockets inherit
 * them). A connected socket whose class has a tcp_pacing entry gets SO_MAX_PACING_RATE at the
 * class's rate, refreshed on every RTT sample for as long as the socket lives.
 * What the kernel answered is counted per class: it refuses an RTOmin under 2 jiffies (8 ms at
 * HZ=250) with -EINVAL, and pacer reports that instead of hiding it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "pacer.h"
#include "classify_order.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOL_SOCKET 1
#define SOL_TCP 6
#define SO_MAX_PACING_RATE 47
#define TCP_BPF_DELACK_MAX 1003
#define TCP_BPF_RTO_MIN 1004
#define AF_INET 2
#define AF_INET6 10

/* Just the kernel fields needed, relocated by CO-RE against the running kernel's BTF. */
struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));
struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));
struct sock_cgroup_data {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_cgroup_data sk_cgrp_data;
} __attribute__((preserve_access_index));

/* The selector maps: the same selectors as tc's (classify.h), holding class ids, host-wide. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_mark_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_cgroup_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, struct pacer_lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_dst4_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, struct pacer_lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_dst6_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_tcp_tuning);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_tuning SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_tcp_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_stats SEC(".maps");

/*
 * Per paced class (struct in pacer.h). Pinned: the agent reads it to tell a class whose TCP is
 * paced (busy capped sockets) from one policed without a cap (docs/agent.md, "TCP under policing").
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_class_flows);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_class_flows SEC(".maps");

/* Per socket, freed with it: an RTT sample costs one storage and one map lookup, and a setsockopt only on a change. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct pacer_sk_pacing);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_sk_pacing SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_tcp_pacing);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tcp_pacing SEC(".maps");

/*
 * The socket's own cgroup (not the current task's: a passive socket is established in softirq
 * context). Accepted sockets inherit their listener's cgroup.
 */
static __always_inline __u64 socket_cgroup_id(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sock *s;

	if (!sk)
		return 0;
	s = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	return BPF_CORE_READ(s, sk_cgrp_data.cgroup, kn, id);
}

/* ip: an IPv4 address in network order. */
static __always_inline __u32 lookup_dst4(__u32 ip)
{
	struct pacer_lpm4_key key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, &ip, sizeof(ip));
	return pacer_lookup_u32(&tcp_dst4_class, &key);
}

/* What sock_ops classifies: a socket; a listener has no peer (by_peer 0). */
struct pacer_subject {
	struct bpf_sock_ops *skops;
	int by_peer;
};

/* sk->sk_mark (struct bpf_sock.mark): what tc sees in skb->mark for the socket's packets. */
static __always_inline __u32 pacer_subject_mark(struct pacer_subject *s)
{
	struct bpf_sock *sk = s->skops->sk;

	return sk ? sk->mark : 0;
}

static __always_inline __u64 pacer_subject_cgroup_id(struct pacer_subject *s)
{
	return socket_cgroup_id(s->skops);
}

static __always_inline __u32 pacer_subject_dst(struct pacer_subject *s)
{
	struct bpf_sock_ops *skops = s->skops;
	__u32 family = skops->family;

	if (!s->by_peer)
		return 0;
	if (family == AF_INET)
		return lookup_dst4(skops->remote_ip4);
	if (family == AF_INET6) {
		struct pacer_lpm6_key key = { .prefixlen = 128 };
		__u32 ip[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3] };

		/*
		 * An IPv4 peer of a dual-stack (::) socket, e.g. every connection a default node or
		 * Go server accepts over IPv4, appears as ::ffff:a.b.c.d: it is an IPv4 peer, and its
		 * packets are IPv4 packets to tc.
		 */
		if (ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff))
			return lookup_dst4(ip[3]);
		__builtin_memcpy(key.addr, ip, sizeof(ip));
		return pacer_lookup_u32(&tcp_dst6_class, &key);
	}
	return 0;
}

static __always_inline __u32 classify_socket(struct bpf_sock_ops *skops, int by_peer)
{
	struct pacer_subject subject = { .skops = skops, .by_peer = by_peer };

	return pacer_classify_in_order(&subject, &tcp_mark_class, &tcp_cgroup_class);
}

static __always_inline void record(__u32 class_id, int err, __u32 option)
{
	struct pacer_tcp_stats fresh = {}, *st = bpf_map_lookup_elem(&tcp_stats, &class_id);

	if (!st) {
		bpf_map_update_elem(&tcp_stats, &class_id, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&tcp_stats, &class_id);
		if (!st)
			return;
	}
	if (err) {
		__sync_fetch_and_add(&st->failed, 1);
		st->last_error = err;
		st->last_option = option;
	} else {
		__sync_fetch_and_add(&st->applied, 1);
	}
}

/* SO_MAX_PACING_RATE's "no cap" (~0U: the socket option is a 32-bit int through bpf_setsockopt). */
#define NO_CAP 0xffffffffU
/* Ethernet + TCP header with timestamps: what the tc program charges per segment besides the payload and IP header. */
#define ETH_TCP_OVERHEAD (14 + 32)

/* 2^28 ns = 268 ms: long enough for every sending socket to get an RTT sample, short enough to follow flows that come and go. */
#define FLOW_WINDOW_SHIFT 28

/* acked_base once the socket was counted in its window. */
#define COUNTED (~0ULL)

/*
 * How many of the class's sockets are sending: the larger of the last whole window's count and
 * the current one's, at least 1. A socket counts once per window, once the bytes acknowledged to
 * it in that window reach `busy` (the class's rate in bits/s >> 12: 1/512 of its bytes per second,
 * about 1/137 of a window's worth; 24 KB at 100 Mbit/s, 1.2 KB at 5): a socket that sends little
 * (keep-alives, small requests) does not take a share a bulk flow could use. (With 1/17 of a
 * window, a flow stalled for part of a window fell out of the count and eight flows got 0.51 of
 * 100 Mbit/s.) The window is rolled by the first socket that sees a new one; two CPUs rolling at
 * once may lose a count for one window, which only lets the class's sockets offer more than its
 * rate for that long (the policer holds it).
 */
static __always_inline __u32 sending_sockets(struct bpf_sock_ops *skops, struct pacer_sk_pacing *st, __u64 busy)
{
	__u64 acked = skops->bytes_acked;
	__u64 window = st->window; /* the socket rolled its own window first (pacing_event) */
	struct pacer_class_flows fresh = {}, *f = bpf_map_lookup_elem(&tcp_class_flows, &st->class_id);
	__u32 n;

	if (!f) {
		fresh.window = window;
		bpf_map_update_elem(&tcp_class_flows, &st->class_id, &fresh, BPF_NOEXIST);
		f = bpf_map_lookup_elem(&tcp_class_flows, &st->class_id);
		if (!f)
			return 1;
	}
	if (f->window != window) {
		f->prev = f->window + 1 == window ? f->cur : 0;
		f->cur = 0;
		f->window = window;
	}
	if (st->acked_base != COUNTED && acked - st->acked_base >= busy) {
		st->acked_base = COUNTED;
		__sync_fetch_and_add(&f->cur, 1);
	}
	n = f->prev > f->cur ? f->prev : f->cur;
	return n ? n : 1;
}

/*
 * The cap for a socket of this class, in payload bytes per second: the class's rate shared
 * equally by its busy sending sockets (each capped at the whole rate, n sockets would offer n times
 * the rate, and every policer drop stalls a sender), scaled by mss / (mss + headers) because TCP
 * paces skb->len, the payload (tcp_update_skb_after_send), while the tc program charges the
 * frame's wire length. A cap above 2^32 - 2 bytes/s (34 Gbit/s) is that: the option is 32 bits
 * wide here. NO_CAP when the class is not paced (any more).
 */
static __always_inline __u32 pacing_cap(struct bpf_sock_ops *skops, struct pacer_sk_pacing *st)
{
	struct pacer_tcp_pacing *p = bpf_map_lookup_elem(&tcp_pacing, &st->class_id);
	__u64 mss = skops->mss_cache, headers, bytes;

	if (!p || !p->rate_bps)
		return NO_CAP;
	/* Before the handshake mss_cache may still be the default 536: conservative, refreshed later. */
	if (mss < 64 || mss > 65535)
		mss = 536;
	headers = ETH_TCP_OVERHEAD + (skops->family == AF_INET6 ? 40 : 20);
	bytes = p->rate_bps / 8 / sending_sockets(skops, st, p->rate_bps >> 12) * mss / (mss + headers);
	if (bytes >= NO_CAP)
		bytes = NO_CAP - 1;
	return bytes ? bytes : 1;
}

/*
 * Sets the socket's cap if its class's changed (a rate change, borrowing, or the class no longer
 * paced: NO_CAP). Setting SO_MAX_PACING_RATE to anything but ~0U also turns on TCP's internal
 * pacing when no qdisc paces (sk_pacing_status NONE -> NEEDED, sk_setsockopt;
 * tcp_needs_internal_pacing), which is the point. Returns bpf_setsockopt's answer (0: set, or
 * nothing to set).
 *
 * The RTT callback stays on while the socket lives, paced or not: a class may be paced again
 * (fq gone once more, a class re-created, policing back after an agent restart), and a socket
 * that stopped listening would then run uncapped into a 2 ms policer for the rest of its life.
 * The cost of a socket whose class is no longer paced: one storage and one hash lookup per
 * RTT sample.
 */
static __always_inline int refresh_pacing(struct bpf_sock_ops *skops, struct pacer_sk_pacing *st)
{
	__u32 cap = pacing_cap(skops, st);
	int rc;

	if (cap == st->applied)
		return 0;
	rc = bpf_setsockopt(skops, SOL_SOCKET, SO_MAX_PACING_RATE, &cap, sizeof(cap));
	if (!rc)
		st->applied = cap;
	return rc;
}

/* A new window for this socket: its acknowledged bytes count afresh (sending_sockets). */
static __always_inline void roll_window(struct bpf_sock_ops *skops, struct pacer_sk_pacing *st, __u64 window)
{
	st->window = window;
	st->acked_base = skops->bytes_acked;
}

/*
 * A connecting or accepted socket of a paced class (it has a tcp_pacing entry): remember its class, cap it, and ask for an
 * RTT callback, so an established socket follows its class's rate within one RTT sample of a
 * change. Returns bpf_setsockopt's answer; the caller counts the socket once (record()).
 */
static __always_inline int start_pacing(struct bpf_sock_ops *skops, __u32 class_id)
{
	struct pacer_sk_pacing *st;
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&tcp_sk_pacing, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	st->class_id = class_id;
	roll_window(skops, st, bpf_ktime_get_ns() >> FLOW_WINDOW_SHIFT);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
	return refresh_pacing(skops, st);
}

/*
 * An RTT sample (or the handshake's end) of a socket that was paced. Once per window the socket is
 * classified again, so it follows its selectors: a class deleted and re-created under a new id, a
 * selector moved to another class, a mark set after connect(). Only refusals are counted here:
 * the socket was counted when it started.
 */
static __always_inline void pacing_event(struct bpf_sock_ops *skops)
{
	struct pacer_sk_pacing *st;
	struct bpf_sock *sk = skops->sk;
	__u64 window;
	int rc;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&tcp_sk_pacing, sk, 0, 0);
	if (!st)
		return;
	window = bpf_ktime_get_ns() >> FLOW_WINDOW_SHIFT;
	if (st->window != window) {
		st->class_id = classify_socket(skops, 1);
		roll_window(skops, st, window);
	}
	rc = refresh_pacing(skops, st);
	/* A socket no class selects any more is only uncapped: nothing to count it under. */
	if (rc && st->class_id)
		record(st->class_id, rc, SO_MAX_PACING_RATE);
}

SEC("sockops")
int pacer_sockops(struct bpf_sock_ops *skops)
{
	struct pacer_tcp_tuning *tuning;
	__u32 op = skops->op;
	__u32 class_id;
	int value, err = 0, rc;
	__u32 failed_option = 0;
	int paced;

	/* A paced socket: established (mss_cache is now the real one), or a new RTT sample. */
	if (op == BPF_SOCK_OPS_RTT_CB || op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		pacing_event(skops);
		return 1;
	}
	/*
	 * Before the SYN for active opens; once established for passive ones. An accepted socket's
	 * RTO is computed from its handshake RTT sample before PASSIVE_ESTABLISHED, with the RTOmin
	 * it had then, and afterwards moves only a quarter of the way per round trip: tuned only
	 * there, it keeps an RTO near 200 ms for its first round trips. So listeners are tuned too,
	 * by their mark and cgroup (a listener has no peer): accepted sockets are clones of their listener
	 * and start with its RTOmin and delayed-ACK max.
	 */
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	class_id = classify_socket(skops, op != BPF_SOCK_OPS_TCP_LISTEN_CB);
	if (!class_id)
		return 1;
	/* A listener sends no data: its accepted sockets are paced at PASSIVE_ESTABLISHED. */
	paced = op != BPF_SOCK_OPS_TCP_LISTEN_CB && bpf_map_lookup_elem(&tcp_pacing, &class_id);
	if (paced) {
		rc = start_pacing(skops, class_id);
		if (rc) {
			err = rc;
			failed_option = SO_MAX_PACING_RATE;
		}
	}
	tuning = bpf_map_lookup_elem(&tcp_tuning, &class_id);
	if (tuning && tuning->rto_min_us) {
		value = tuning->rto_min_us;
		rc = bpf_setsockopt(skops, SOL_TCP, TCP_BPF_RTO_MIN, &value, sizeof(value));
		if (rc) {
			err = rc;
			failed_option = TCP_BPF_RTO_MIN;
		}
	}
	if (tuning && tuning->delack_max_us) {
		value = tuning->delack_max_us;
		rc = bpf_setsockopt(skops, SOL_TCP, TCP_BPF_DELACK_MAX, &value, sizeof(value));
		if (rc) {
			err = rc;
			failed_option = TCP_BPF_DELACK_MAX;
		}
	}
	/* Each new socket of a tuned or paced class is counted once, with its first refusal if any. */
	if (tuning || paced)
		record(class_id, err, failed_option);
	return 1;
}
