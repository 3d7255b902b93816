/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Classification of a packet: which class (slot, see pacer.h) it belongs to, in the order of
 * classify_order.h, which the sock_ops program shares:
 *   1. the socket mark        (mark_class, hash; skipped for mark 0)
 *   2. the socket's cgroup v2 (cgroup_class, hash by cgroup id; skipped, with the helper call,
 *                              while settings.cgroup_selectors is 0)
 *   3. the destination prefix (dst4_class / dst6_class, LPM tries: the longest prefix wins),
 *                              through the exact-address caches dst4_cache / dst6_cache
 *   4. the interface default  (settings.default_slot)
 * otherwise 0: the packet is not shaped.
 *
 * The destination caches. An LPM trie lookup among 10,000 prefixes costs about two hash lookups,
 * and traffic goes to far fewer addresses than it could, so the answer for each destination
 * address (a slot, or 0 for "no prefix") is kept in an LRU hash and the trie is asked only on a
 * miss. Entries are never invalidated one by one: each carries the settings.generation it was
 * looked up under, and the agent bumps the generation AFTER every change of the tries (and
 * after freeing a slot). An entry of another generation is ignored and overwritten.
 *
 * The race this ordering prevents: a CPU misses the cache and looks the trie up just before the
 * agent changes it, so it gets the OLD answer; the agent finishes its change; the CPU then
 * inserts the old answer. Had the agent flushed the cache after its change (instead of bumping
 * a generation), that late insert would survive the flush and a hot destination would keep its
 * stale class for as long as it stays hot (LRU never evicts it). Here the CPU read the generation
 * BEFORE its trie lookup: if it read the old generation, its insert is tagged old and ignored
 * once the bump lands; if it read the new one, the bump (made after the change) preceded its
 * read, so its trie lookup saw the changed trie. Either way no stale answer is ever used after
 * the bump. (The u32 generation wraps after 2^32 changes; an entry would have to stay unused
 * across all of them to be mistaken for current.)
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
#include "classify_order.h"

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PACER_DST_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct pacer_dst_cache);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dst4_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PACER_DST_CACHE_ENTRIES);
	__type(key, struct pacer_addr6);
	__type(value, struct pacer_dst_cache);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dst6_cache SEC(".maps");

/*
 * The trie's answer for one destination address, through its cache. `generation` must have been
 * read before this call (see above). The entry is read with one 8-byte load, so slot and
 * generation always come from the same write.
 *
 * An entry of an older generation (every hot destination after an apply that bumped it) is
 * rewritten in place with one 8-byte compare-and-exchange against the value just read, not with
 * bpf_map_update_elem: an LRU update takes a free node from the LRU lists and unlinks the old one,
 * and that, not the trie lookup, was most of a miss's cost (bench:bpf, docs/benchmarks.md). The
 * exchange succeeds only if the entry still holds what this CPU read: a concurrent rewrite wins
 * and is kept (both are tagged with a generation, so the rule above holds either way), and a node
 * that LRU eviction recycled for another address in between (preallocated LRU nodes are reused at
 * once) is left alone unless it holds the very same stale slot and generation. A new address is
 * inserted with bpf_map_update_elem.
 */
static __always_inline __u32 pacer_dst_lookup(void *cache, const void *addr, void *trie, const void *lpm_key, __u32 generation)
{
	struct pacer_dst_cache *hit = bpf_map_lookup_elem(cache, addr);
	struct pacer_dst_cache fresh;
	__u64 both = 0, now_both;

	if (hit) {
		struct pacer_dst_cache seen;

		both = *(volatile __u64 *)hit;
		__builtin_memcpy(&seen, &both, sizeof(seen));
		if (seen.generation == generation)
			return seen.slot;
	}
	fresh.slot = pacer_lookup_u32(trie, lpm_key);
	fresh.generation = generation;
	if (hit) {
		__builtin_memcpy(&now_both, &fresh, sizeof(now_both));
		__sync_val_compare_and_swap((__u64 *)hit, both, now_both);
	} else {
		bpf_map_update_elem(cache, addr, &fresh, BPF_ANY);
	}
	return fresh.slot;
}

/*
 * The destination's class, from the packet itself. Tags that are in the packet (not offloaded to
 * skb metadata) are skipped; with VLAN offload the packet already starts with the inner type.
 */
static __always_inline __u32 pacer_classify_dst(struct __sk_buff *skb, __u32 generation)
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
		__u32 addr = ip4->daddr;

		__builtin_memcpy(key.addr, &addr, sizeof(key.addr));
		return pacer_dst_lookup(&dst4_cache, &addr, &dst4_class, &key, generation);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		struct pacer_lpm6_key key = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		struct pacer_addr6 addr;

		__builtin_memcpy(addr.addr, &ip6->daddr, sizeof(addr.addr));
		__builtin_memcpy(key.addr, addr.addr, sizeof(key.addr));
		return pacer_dst_lookup(&dst6_cache, &addr, &dst6_class, &key, generation);
	}
	return 0;
}

/* What tc classifies: a packet, and what it needs to know besides. */
struct pacer_subject {
	struct __sk_buff *skb;
	const struct pacer_settings *set;
	__u32 generation;
};

static __always_inline __u32 pacer_subject_mark(struct pacer_subject *s)
{
	return s->skb->mark;
}

static __always_inline __u64 pacer_subject_cgroup_id(struct pacer_subject *s)
{
	if (!s->set || !s->set->cgroup_selectors)
		return 0;
	return bpf_skb_cgroup_id(s->skb);
}

static __always_inline __u32 pacer_subject_dst(struct pacer_subject *s)
{
	return pacer_classify_dst(s->skb, s->generation);
}

/* The packet's slot. `set` is the settings entry (NULL only if the array lookup failed). */
static __always_inline __u32 pacer_classify(struct __sk_buff *skb, const struct pacer_settings *set)
{
	struct pacer_subject subject = {
		.skb = skb,
		.set = set,
		/* Before any trie lookup: see "The race this ordering prevents" above. */
		.generation = set ? *(volatile __u32 *)&set->generation : 0,
	};
	__u32 slot = pacer_classify_in_order(&subject, &mark_class, &cgroup_class);

	if (slot)
		return slot;
	return set ? set->default_slot : 0;
}

#endif
