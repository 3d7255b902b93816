// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pacer's sock_ops program: low-latency TCP tuning for the classes that ask for it.
 * Attached to the cgroup v2 root, it sees every TCP socket. A socket whose cgroup, or whose peer
 * prefix, selects a class with tuning gets TCP_BPF_RTO_MIN and TCP_BPF_DELACK_MAX (a listener
 * by its cgroup only, and its accepted sockets inherit them). What the kernel answered is counted
 * per class: it refuses an RTOmin under 2 jiffies (8 ms at HZ=250) with -EINVAL, and pacer
 * reports that instead of hiding it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "pacer.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOL_TCP 6
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

static __always_inline __u32 lookup_class(void *map, const void *key)
{
	__u32 *id = bpf_map_lookup_elem(map, key);

	return id ? *id : 0;
}

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
	return lookup_class(&tcp_dst4_class, &key);
}

static __always_inline __u32 classify_socket(struct bpf_sock_ops *skops, int by_peer)
{
	__u32 family = skops->family;
	__u64 cgroup_id = socket_cgroup_id(skops);
	__u32 id = 0;

	if (cgroup_id)
		id = lookup_class(&tcp_cgroup_class, &cgroup_id);
	if (id || !by_peer)
		return id;
	if (family == AF_INET)
		return lookup_dst4(skops->remote_ip4);
	if (family == AF_INET6) {
		struct pacer_lpm6_key key = { .prefixlen = 128 };
		__u32 ip[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3] };

		/*
		 * An IPv4 peer of a dual-stack (::) socket, e.g. every connection a default node or
		 * Go server accepts over IPv4, appears as ::ffff:a.b.c.d: it is an IPv4 peer.
		 */
		if (ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff))
			return lookup_dst4(ip[3]);
		__builtin_memcpy(key.addr, ip, sizeof(ip));
		return lookup_class(&tcp_dst6_class, &key);
	}
	return 0;
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

SEC("sockops")
int pacer_sockops(struct bpf_sock_ops *skops)
{
	struct pacer_tcp_tuning *tuning;
	__u32 op = skops->op;
	__u32 class_id;
	int value, err = 0, rc;
	__u32 failed_option = 0;

	/*
	 * Before the SYN for active opens; once established for passive ones. An accepted socket's
	 * RTO is computed from its handshake RTT sample before PASSIVE_ESTABLISHED, with the RTOmin
	 * it had then, and afterwards moves only a quarter of the way per round trip: tuned only
	 * there, it keeps an RTO near 200 ms for its first round trips. So listeners are tuned too,
	 * by their cgroup (a listener has no peer): accepted sockets are clones of their listener
	 * and start with its RTOmin and delayed-ACK max.
	 */
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	class_id = classify_socket(skops, op != BPF_SOCK_OPS_TCP_LISTEN_CB);
	if (!class_id)
		return 1;
	tuning = bpf_map_lookup_elem(&tcp_tuning, &class_id);
	if (!tuning)
		return 1;
	if (tuning->rto_min_us) {
		value = tuning->rto_min_us;
		rc = bpf_setsockopt(skops, SOL_TCP, TCP_BPF_RTO_MIN, &value, sizeof(value));
		if (rc) {
			err = rc;
			failed_option = TCP_BPF_RTO_MIN;
		}
	}
	if (tuning->delack_max_us) {
		value = tuning->delack_max_us;
		rc = bpf_setsockopt(skops, SOL_TCP, TCP_BPF_DELACK_MAX, &value, sizeof(value));
		if (rc) {
			err = rc;
			failed_option = TCP_BPF_DELACK_MAX;
		}
	}
	record(class_id, err, failed_option);
	return 1;
}
