// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pacer's tc egress program (clsact, direct-action): classify the packet, compute its earliest
 * departure time from its class's budget and every ancestor's, and stamp skb->tstamp. The fq
 * qdisc then holds the packet until that time. Maps are pinned by name, so a restarted agent
 * adopts them with every schedule intact.
 *
 * Classes are addressed by slot (pacer.h): config, schedule and counters are array entries, so
 * a shaped packet pays one hash lookup at most (its selector, or the destination cache) besides
 * the arrays, which the JIT inlines.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "pacer.h"
#include "edt.h"
#include "classify.h"
#include "delay_hist.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_class_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} class_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_class_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} class_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct pacer_class_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} class_stats SEC(".maps");

/* class id -> slot: written by the agent for itself (after a restart) and operators; the program never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PACER_MAX_CLASSES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} class_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pacer_iface_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} iface_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pacer_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

/*
 * Tests set this (through the object's .bss map) to run the program at a chosen time; it is 0 in
 * production, where the cost is one load and a branch.
 */
__u64 pacer_test_now = 0;

static __always_inline __u64 pacer_now(void)
{
	__u64 t = *(volatile __u64 *)&pacer_test_now;

	return t ? t : bpf_ktime_get_ns();
}

static __always_inline void pacer_count_unclassified(__u32 wire_len)
{
	__u32 zero = 0;
	struct pacer_iface_stats *s = bpf_map_lookup_elem(&iface_stats, &zero);

	if (s) {
		s->unclassified_packets++;
		s->unclassified_bytes += wire_len;
	}
}

struct pacer_level {
	__u64 *t_last;
	__u64 delay;
	__u64 earliest;
	struct pacer_claim claim;
};

/* Gives back the slots claimed on levels [0, upto) after a later level refused the packet. */
static __always_inline void pacer_release(struct pacer_level *levels, int upto)
{
#pragma unroll
	for (int i = 0; i < PACER_MAX_DEPTH; i++) {
		if (i >= upto)
			break;
		pacer_release_slot(levels[i].t_last, &levels[i].claim);
	}
}

static __always_inline int pacer_beyond(__u64 next, __u64 now, __u64 horizon)
{
	return next > now && next - now > horizon;
}

/*
 * Claims a slot in level i's schedule. A slot beyond the horizon as read refuses the packet before
 * anything is written; one that only another CPU's claim pushed beyond it (seen after the atomic
 * claim) gives back what was claimed. Either way no t_last moves for a dropped packet, and the
 * verdict is the one some serial order of the racing packets would give. Returns 1 to drop.
 */
static __always_inline int pacer_claim_level(struct pacer_level *levels, int i, __u64 now, __u64 horizon, __u32 *contended, __u64 *slot_end)
{
	__u64 read = *(volatile __u64 *)levels[i].t_last;

	if (pacer_beyond(pacer_next(read, levels[i].delay, levels[i].earliest), now, horizon)) {
		pacer_release(levels, i);
		return 1;
	}
	*contended += pacer_claim_slot(levels[i].t_last, levels[i].delay, levels[i].earliest, &levels[i].claim);
	if (pacer_beyond(levels[i].claim.next, now, horizon)) {
		pacer_release(levels, i + 1);
		(*contended)++;
		return 1;
	}
	*slot_end = pacer_max(*slot_end, levels[i].claim.next);
	return 0;
}

SEC("tc")
int pacer_egress(struct __sk_buff *skb)
{
	struct pacer_level levels[PACER_MAX_DEPTH] = {};
	struct pacer_class_config *leaf, *cfg;
	struct pacer_class_stats *stats;
	struct pacer_settings *set;
	__u32 wire_len = skb->wire_len ? skb->wire_len : skb->len;
	__u64 tstamp = skb->tstamp;
	__u64 now, depart, slot_end, sent, delay, horizon, ecn;
	__u32 contended = 0;
	__u32 zero = 0, slot, leaf_slot;
	int depth = 0;

	set = bpf_map_lookup_elem(&settings, &zero);
	leaf_slot = pacer_classify(skb, set);
	/* Every slot has an entry (arrays); rate 0 is a free slot, or a selector the agent has not yet pointed anywhere valid. */
	leaf = leaf_slot ? bpf_map_lookup_elem(&class_config, &leaf_slot) : NULL;
	if (!leaf || !leaf->rate_bps) {
		pacer_count_unclassified(wire_len);
		return TC_ACT_OK;
	}
	horizon = leaf->horizon_ns;
	ecn = leaf->ecn_ns;
	now = pacer_now();

	/* The path: the leaf and its ancestors, each with its schedule. */
	slot = leaf_slot;
	cfg = leaf;
#pragma unroll
	for (int i = 0; i < PACER_MAX_DEPTH; i++) {
		struct pacer_class_state *st = bpf_map_lookup_elem(&class_state, &slot);

		if (!st)
			return TC_ACT_OK; /* a slot past the array (never written by the agent): never drop for it */
		levels[i].t_last = &st->t_last;
		levels[i].delay = pacer_delay_ns(wire_len, cfg->rate_bps);
		levels[i].earliest = pacer_earliest(now, cfg->burst_ns);
		depth = i + 1;
		slot = cfg->parent_slot;
		if (!slot)
			break;
		cfg = bpf_map_lookup_elem(&class_config, &slot);
		if (!cfg || !cfg->rate_bps)
			break;
	}

	/* Claim a slot in each schedule, leaf first (pacer_claim_level). */
	slot_end = 0;
	/*
	 * Written out per level, not as a loop: clang keeps a loop of this size rolled, and reading
	 * levels[i] at a variable stack offset turns the pointers in it into scalars for the 6.1
	 * verifier ("R7 invalid mem access 'scalar'"); each call here reads constant offsets.
	 */
	_Static_assert(PACER_MAX_DEPTH == 4, "one pacer_claim_level call per level");
	if (pacer_claim_level(levels, 0, now, horizon, &contended, &slot_end) ||
	    (depth > 1 && pacer_claim_level(levels, 1, now, horizon, &contended, &slot_end)) ||
	    (depth > 2 && pacer_claim_level(levels, 2, now, horizon, &contended, &slot_end)) ||
	    (depth > 3 && pacer_claim_level(levels, 3, now, horizon, &contended, &slot_end)))
		goto horizon_drop;
	depart = pacer_max(tstamp, slot_end);

	if (depart != tstamp)
		skb->tstamp = depart;
	stats = bpf_map_lookup_elem(&class_stats, &leaf_slot);
	/* What pacer holds the packet for: beyond now, and beyond the socket's own departure time. */
	sent = pacer_max(now, tstamp);
	delay = depart > sent ? depart - sent : 0;
	if (stats) {
		stats->contended += contended;
		stats->packets++;
		stats->bytes += wire_len;
		if (delay) {
			stats->delayed++;
			stats->delay_ns += delay;
		}
	}
	pacer_record_delay(leaf_slot, delay);
	/* bpf_skb_ecn_set_ce marks only ECT packets and says whether it did. */
	if (ecn && delay > ecn && bpf_skb_ecn_set_ce(skb) && stats)
		stats->ce_marks++;
	return TC_ACT_OK;

horizon_drop:
	stats = bpf_map_lookup_elem(&class_stats, &leaf_slot);
	if (stats) {
		stats->horizon_drops++;
		stats->contended += contended;
	}
	return TC_ACT_SHOT;
}
