// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Cost probes for `npm run bench:bpf`: each program does one kind of operation the pacer
 * program does per packet, once, so that (probe − empty) through BPF_PROG_TEST_RUN is what that
 * operation costs here. Keys come from skb->mark so that nothing is folded at compile time; the
 * maps have the sizes and fill of the real ones (bench/bpf.ts fills them).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct val40 { /* the size of struct pacer_class_config */
	__u64 a, b, c, d;
	__u32 e, f;
};

struct val56 { /* the size of struct pacer_class_stats */
	__u64 a, b, c, d, e, f, g;
};

struct lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct val40);
} m_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct val40);
} m_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct val56);
} m_percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct val56);
} m_percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} m_lpm4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} m_lpm6 SEC(".maps");

SEC("tc")
int probe_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("tc")
int probe_ktime(struct __sk_buff *skb)
{
	skb->tstamp = bpf_ktime_get_ns();
	return TC_ACT_OK;
}

SEC("tc")
int probe_cgroup_id(struct __sk_buff *skb)
{
	skb->tstamp = bpf_skb_cgroup_id(skb);
	return TC_ACT_OK;
}

SEC("tc")
int probe_hash_lookup(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val40 *v = bpf_map_lookup_elem(&m_hash, &key);

	if (v)
		skb->tstamp = v->a;
	return TC_ACT_OK;
}

/* A hash lookup and a plain read-modify-write of one field (what Cilium does with t_last). */
SEC("tc")
int probe_hash_write(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val40 *v = bpf_map_lookup_elem(&m_hash, &key);

	if (v)
		*(volatile __u64 *)&v->b = *(volatile __u64 *)&v->b + 1;
	return TC_ACT_OK;
}

/* The same with compare-and-exchange (what pacer does with t_last). */
SEC("tc")
int probe_hash_cas(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val40 *v = bpf_map_lookup_elem(&m_hash, &key);

	if (v) {
		__u64 old = *(volatile __u64 *)&v->b;

		__sync_val_compare_and_swap(&v->b, old, old + 1);
	}
	return TC_ACT_OK;
}

SEC("tc")
int probe_array_lookup(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val40 *v = bpf_map_lookup_elem(&m_array, &key);

	if (v)
		skb->tstamp = v->a;
	return TC_ACT_OK;
}

/* Per-CPU counters as pacer keeps them: one lookup, then packets and bytes. */
SEC("tc")
int probe_percpu_hash(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val56 *s = bpf_map_lookup_elem(&m_percpu_hash, &key);

	if (s) {
		s->a++;
		s->b += skb->len;
	}
	return TC_ACT_OK;
}

SEC("tc")
int probe_percpu_array(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	struct val56 *s = bpf_map_lookup_elem(&m_percpu_array, &key);

	if (s) {
		s->a++;
		s->b += skb->len;
	}
	return TC_ACT_OK;
}

/* The mark is the IPv4 address to look up (a.b.c.d = a << 24 | ...). */
SEC("tc")
int probe_lpm4(struct __sk_buff *skb)
{
	__u32 addr = bpf_htonl(skb->mark);
	struct lpm4_key key = { .prefixlen = 32 };
	__u32 *id;

	__builtin_memcpy(key.addr, &addr, sizeof(addr));
	id = bpf_map_lookup_elem(&m_lpm4, &key);

	if (id)
		skb->tstamp = *id;
	return TC_ACT_OK;
}

/* mark = i looks up 2001:db8:i::77, inside the i-th /48. */
SEC("tc")
int probe_lpm6(struct __sk_buff *skb)
{
	__u32 i = skb->mark;
	struct lpm6_key key = { .prefixlen = 128, .addr = { 0x20, 0x01, 0x0d, 0xb8, (__u8)(i >> 8), (__u8)i } };
	__u32 *id;

	key.addr[15] = 0x77;
	id = bpf_map_lookup_elem(&m_lpm6, &key);
	if (id)
		skb->tstamp = *id;
	return TC_ACT_OK;
}
