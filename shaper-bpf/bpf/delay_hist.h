/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-class queueing-delay histograms: how long each passed packet was held (departure - now as
 * the program computes it, 0 for a packet sent at once), counted in log-linear buckets, HDR-style.
 * shaper-bpf/src/delay-hist.ts is the same bucket rule in TypeScript; a kernel test checks both
 * agree on random delays.
 *
 * Buckets (PACER_HIST_BUCKETS = 98, struct pacer_delay_hist in pacer.h):
 *   0        underflow: delay < 2^10 ns (1.024 us), which includes every packet not delayed
 *   1 .. 96  for each power of two 2^e, e = 10 .. 33, four buckets whose lower bounds are
 *            T_k * 2^(e-8), T = {256, 305, 363, 431} (= ceil(256 * 2^(k/4))): each bucket is at
 *            most 19.1% wide (its upper bound / its lower bound <= 305/256)
 *   97       overflow: delay >= 2^34 ns (17.2 s, beyond fq's default 10 s horizon)
 * so bucket 1 + 4(e-10) + k holds [T_k << (e-8), T_{k+1} << (e-8)) with T_4 = 512.
 *
 * The bucket is computed without division or loops: floor(log2) by a branch-free binary search
 * over 32/16/8/4/2/1 bits (BPF has no clz), the top 9 bits of the delay, three compares. Exact:
 * (d >> (e-8)) >= T  <=>  d >= T << (e-8), so bucket bounds are integers known to the reader.
 *
 * Storage: an ARRAY_OF_MAPS indexed by slot group (slot >> 4); each group of 16 slots has its
 * own inner map, an ARRAY of 16 histograms (784 bytes each), shared by all CPUs and counted with
 * atomic adds. Why:
 *   - cost: the JIT inlines both lookups (an outer array of maps and an inner array whose size
 *     matches the template; array_of_map_gen_lookup, array_map_gen_lookup): +4 ns per packet.
 *     A hash keyed by slot (created on the first packet, BPF_F_NO_PREALLOC) was measured first:
 *     about +25 ns per packet (one more hash lookup), 1.58-1.68x the baseline with a fixed clock,
 *     over the 1.5x target (docs/benchmarks.md).
 *   - memory: the agent creates a group's inner map when it gives the group's first slot to a
 *     class and retires it when the group's last class is gone, so memory follows the classes
 *     that exist (the agent gives the lowest free slots, so groups fill up): 16 KiB per 16
 *     classes (the kernel's allocation of 16 x 784 B plus the map header), plus 8 bytes per group
 *     for the outer array (32 KiB per interface); not 65,536 x 784 B preallocated (49 MiB), nor
 *     that times the CPU count.
 *   - few writes to the map of maps: the kernel waits an RCU grace period after each one (on
 *     6.1, after each entry of a batch), so one inner map per class made adding 200 classes take
 *     3.7 s on 6.1 in the VM. A group's map is written once per 16 classes; a class's own
 *     histogram is zeroed in place (a plain array update) when its slot is given or freed.
 * A slot whose group has no inner map (a class written without the Datapath) is not counted.
 */
#ifndef PACER_DELAY_HIST_H
#define PACER_DELAY_HIST_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pacer.h"

/* The inner map of every group of slots: the agent creates them with exactly these parameters. */
struct pacer_hist_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PACER_HIST_GROUP);
	__type(key, __u32);
	__type(value, struct pacer_delay_hist);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	/* One entry per group, and one more that the agent points retired groups at (never read here). */
	__uint(max_entries, PACER_MAX_CLASSES / PACER_HIST_GROUP + 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct pacer_hist_inner); /* a flexible array: last */
} delay_hist SEC(".maps");

/*
 * clang writes the inner map's value type to BTF only as a forward declaration (it is two
 * pointers deep in the map definition), and libbpf needs its size: a global of the type makes
 * clang emit it whole (784 bytes of .bss per loaded program; a pointer is not enough). Never read
 * or written.
 */
struct pacer_delay_hist pacer_hist_btf_anchor;

/* floor(log2(v)) for v > 0. */
static __always_inline __u32 pacer_log2(__u64 v)
{
	__u32 r, s;

	r = (v > 0xFFFFFFFFULL) << 5;
	v >>= r;
	s = (v > 0xFFFF) << 4;
	v >>= s;
	r |= s;
	s = (v > 0xFF) << 3;
	v >>= s;
	r |= s;
	s = (v > 0xF) << 2;
	v >>= s;
	r |= s;
	s = (v > 0x3) << 1;
	v >>= s;
	r |= s;
	return r | (__u32)(v >> 1);
}

static __always_inline __u32 pacer_hist_bucket(__u64 delay_ns)
{
	__u32 e, m;

	if (delay_ns < (1ULL << PACER_HIST_MIN_SHIFT))
		return 0;
	if (delay_ns >= (1ULL << PACER_HIST_MAX_SHIFT))
		return PACER_HIST_BUCKETS - 1;
	e = pacer_log2(delay_ns);
	m = delay_ns >> (e - 8);
	return 1 + (e - PACER_HIST_MIN_SHIFT) * PACER_HIST_SUBBUCKETS + (m >= 305) + (m >= 363) + (m >= 431);
}

/* Counts one passed packet of the class in `slot`, held `delay_ns`. */
static __always_inline void pacer_record_delay(__u32 slot, __u64 delay_ns)
{
	__u32 group = slot >> PACER_HIST_GROUP_SHIFT, index = slot & (PACER_HIST_GROUP - 1);
	__u32 b = pacer_hist_bucket(delay_ns);
	struct pacer_delay_hist *h;
	void *inner = bpf_map_lookup_elem(&delay_hist, &group);

	if (!inner)
		return;
	h = bpf_map_lookup_elem(inner, &index);
	/* The verifier needs the index bounded where it is used. */
	if (!h || b >= PACER_HIST_BUCKETS)
		return;
	__sync_fetch_and_add(&h->counts[b], 1);
}

#endif
