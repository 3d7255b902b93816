/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Classification: which class a packet belongs to. First match wins, in this order:
 *   1. the socket mark        (mark_class, hash)
 *   2. the socket's cgroup v2 (cgroup_class, hash by cgroup id)
 *   3. the destination prefix (dst4_class / dst6_class, LPM tries: the longest prefix wins)
 *   4. the interface default  (settings.default_class)
 * otherwise 0: the packet is not shaped.
 */
#ifndef PACER_CLASSIFY_H
#define PACER_CLASSIFY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pacer.h"

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
/* 802.1ad (QinQ) carries two tags; more is not a real deployment. */
#define PACER_MAX_VLAN_TAGS 2

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mark_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cgroup_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, struct pacer_lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dst4_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PACER_MAX_SELECTORS);
	__type(key, struct pacer_lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dst6_class SEC(".maps");

static __always_inline __u32 pacer_lookup_u32(void *map, const void *key)
{
	__u32 *id = bpf_map_lookup_elem(map, key);

	return id ? *id : 0;
}

/*
 * The destination's class, from the packet itself. Tags that are in the packet (not offloaded to
 * skb metadata) are skipped; with VLAN offload the packet already starts with the inner type.
 */
static __always_inline __u32 pacer_classify_dst(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < PACER_MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > data_end)
			return 0;
		proto = tag->encapsulated_proto;
		off += sizeof(*tag);
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = data + off;
		struct pacer_lpm4_key key = { .prefixlen = 32 };

		if ((void *)(ip4 + 1) > data_end)
			return 0;
		__builtin_memcpy(key.addr, &ip4->daddr, sizeof(key.addr));
		return pacer_lookup_u32(&dst4_class, &key);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		struct pacer_lpm6_key key = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(key.addr, &ip6->daddr, sizeof(key.addr));
		return pacer_lookup_u32(&dst6_class, &key);
	}
	return 0;
}

static __always_inline __u32 pacer_classify(struct __sk_buff *skb, __u32 default_class)
{
	/* Read ctx fields into locals first: the verifier rejects a load from a computed ctx pointer. */
	__u32 mark = skb->mark;
	__u64 cgroup_id;
	__u32 id;

	if (mark) {
		id = pacer_lookup_u32(&mark_class, &mark);
		if (id)
			return id;
	}
	cgroup_id = bpf_skb_cgroup_id(skb);
	if (cgroup_id) {
		id = pacer_lookup_u32(&cgroup_class, &cgroup_id);
		if (id)
			return id;
	}
	id = pacer_classify_dst(skb);
	if (id)
		return id;
	return default_class;
}

#endif
