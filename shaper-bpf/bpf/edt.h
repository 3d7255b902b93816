/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The departure rule. shaper-bpf/src/edt.ts is the same arithmetic in TypeScript; a kernel test
 * runs both on random packet sequences and requires equal results to the nanosecond.
 *
 * For each class on the packet's path, leaf first, then each parent, a slot in its own schedule:
 *
 *   delay_c  = ceil(wire_len * 8 * 1e9 / rate_c)
 *   next_c   = max(t_last_c + delay_c, now - burst_c)        (the leaf's also >= skb->tstamp)
 *   t_last_c = next_c
 *   depart   = max(skb->tstamp, next_c for every class on the path)
 *
 * so a packet leaves at the later of its own class's slot and every ancestor's, and every
 * schedule on the path advances by this packet's transmission time at that class's rate. A
 * parent's schedule is not pushed to a child's later slot: a child held back by its own rate
 * must not hold its siblings back (the parent's unused time is theirs). If any slot is more than
 * the leaf's horizon ahead of now, the packet is dropped and no t_last moves (fq would drop it
 * anyway, and a schedule advanced for a dropped packet would waste budget). With fq missing, the
 * same rule with a short horizon is a policer.
 *
 * Rounding: the delay is rounded UP, so a class never exceeds its rate; the error is under 1 ns
 * per packet (under 0.1% for 1500-byte packets at 10 Gbit/s, 0.8% at 100 Gbit/s).
 *
 * Overflow: wire_len is at most GSO_MAX_SIZE (512 KiB with BIG TCP) < 2^31, and 8e9 < 2^33, so
 * wire_len * 8e9 < 2^64 for every packet the kernel can build, at any rate.
 */
#ifndef PACER_EDT_H
#define PACER_EDT_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "pacer.h"

#define NSEC_PER_SEC 1000000000ULL
/* Tries per class at the compare-and-exchange before the packet is dropped (never observed). */
#define PACER_CAS_TRIES 8

static __always_inline __u64 pacer_delay_ns(__u32 wire_len, __u64 rate_bps)
{
	__u64 bits_ns = (__u64)wire_len * 8 * NSEC_PER_SEC;

	return (bits_ns + rate_bps - 1) / rate_bps;
}

static __always_inline __u64 pacer_max(__u64 a, __u64 b)
{
	return a > b ? a : b;
}

/* now - burst, or 0 when the clock is younger than the burst. */
static __always_inline __u64 pacer_earliest(__u64 now, __u64 burst_ns)
{
	return now > burst_ns ? now - burst_ns : 0;
}

/*
 * Why compare-and-exchange and not bpf_spin_lock: the program runs on every CPU at once, and two
 * CPUs that both read t_last and both write t_last + delay would send two packets in one slot
 * (the class would get up to twice its rate). A spin lock would serialise them too, but the
 * verifier allows one lock held at a time and no map lookups under it, and a packet's path
 * spans several classes. A per-class CAS needs neither and never spins on a lock holder: a CPU
 * that loses the race recomputes from the winner's value.
 *
 * PACER_RACY is only for the test fixture that shows what the CAS prevents.
 */
static __always_inline int pacer_claim(__u64 *t_last, __u64 old, __u64 new)
{
#ifdef PACER_RACY
	*(volatile __u64 *)t_last = new;
	return 1;
#else
	return __sync_val_compare_and_swap(t_last, old, new) == old;
#endif
}

#endif
