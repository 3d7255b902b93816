/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The departure rule. shaper-bpf/src/edt.ts is the same arithmetic in TypeScript; a kernel test
 * runs both on random packet sequences and requires equal results to the nanosecond.
 *
 * For each class on the packet's path, leaf first, then each parent, a slot in its own schedule:
 *
 *   delay_c  = ceil(wire_len * 8 * 1e9 / rate_c)
 *   next_c   = max(t_last_c + delay_c, now - burst_c)
 *   t_last_c = next_c
 *   depart   = max(skb->tstamp, next_c for every class on the path)
 *   held     = depart - max(now, skb->tstamp)        (0 when depart is not later)
 *
 * so a packet leaves at the later of its own class's slot and every ancestor's, and every
 * schedule on the path advances by this packet's transmission time at that class's rate.
 *
 * skb->tstamp (TCP's own EDT, SO_MAX_PACING_RATE, SO_TXTIME) enters the departure only, never a
 * schedule: a socket that paces itself must not hold back the other flows of its class. And
 * pacer's own delay ("held": the delayed counter, delay_ns, the delay histogram, the ECN
 * threshold) counts only what pacer adds to the socket's own time.
 *
 * If any slot is more than the leaf's horizon ahead of now, the packet is dropped and no t_last
 * moves (fq would drop it anyway, and a schedule advanced for a dropped packet would waste
 * budget). With fq missing, the same rule with a short horizon is a policer.
 *
 * What a parent guarantees, and what it does not. Each class reserves its slot when the packet
 * is stamped. A packet whose own class's slot is later than its parent's (a child held back by
 * its own rate) leaves after the parent's slot: the parent's slot was reserved early and the
 * bytes land later, on top of the slots the parent gives siblings meanwhile. So the parent's
 * rate holds over the long run (its schedule is charged for every byte) but in a window W the
 * bytes departing under a parent are bounded by rate_p * (W + lead) + burst_p + one packet,
 * where lead is the largest time by which a child's departure follows its slot at the parent
 * (at most the child's horizon). docs/data-plane.md ("What a parent guarantees") explains why a
 * schedule that is one number per class cannot also keep a child's backlog from delaying its
 * siblings, and what would.
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
/*
 * Compare-and-exchange tries on an idle schedule before the claim falls back to fetch-and-add.
 * (A test fixture builds with 1 to show that even constant losses drop nothing.)
 */
#ifndef PACER_CAS_TRIES
#define PACER_CAS_TRIES 4
#endif

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

/* One class's slot as this packet reads its schedule: what the rule gives with no other CPU. */
static __always_inline __u64 pacer_next(__u64 t_last, __u64 delay, __u64 earliest)
{
	return pacer_max(t_last + delay, earliest);
}

/*
 * Claiming a slot when CPUs run the program at once. Two CPUs that both read t_last and both
 * write t_last + delay would send two packets in one slot (the class would get up to twice its
 * rate). A spin lock would serialise them, but the verifier allows one lock held at a time and no
 * map lookups under it, and a packet's path spans several classes. So:
 *
 * - Busy schedule (t_last + delay >= now - burst, the case of every class that is pacing):
 *   __sync_fetch_and_add(t_last, delay). The adds of all CPUs are serialised by the hardware, each
 *   returns the value before its own add, so every packet owns [old, old + delay] and no slot is
 *   shared or lost. t_last only grows (adds, restarts at a later now - burst; a give-back below
 *   takes away only what the same packet added), so the value the add returns is >= the one read
 *   and old + delay >= now - burst still holds: the add gives exactly the rule's
 *   max(t_last + delay, now - burst). It never fails, so it never retries.
 * - Idle schedule (t_last + delay < now - burst): the schedule restarts at now - burst, which is a
 *   store, not an add, so it is a compare-and-exchange. A CPU that loses it re-reads: the winner
 *   usually made the schedule busy, and the add above follows. After PACER_CAS_TRIES lost tries the
 *   packet takes the add anyway (its slot may then lie before now - burst: it leaves at once, and
 *   the class gains at most one packet of credit, which is counted). No packet is dropped for
 *   losing a race; stats->contended counts every lost try.
 *
 * PACER_RACY is only for the test fixture that shows what the atomics prevent.
 */
struct pacer_claim {
	__u64 next;    /* the slot's end: this packet's departure in this class */
	__u64 added;   /* what was added to t_last (0 when it was a compare-and-exchange) */
	__u64 old;     /* t_last before a compare-and-exchange */
};

static __always_inline __u32 pacer_claim_slot(__u64 *t_last, __u64 delay, __u64 earliest, struct pacer_claim *c)
{
#ifdef PACER_RACY
	__u64 old = *(volatile __u64 *)t_last;

	c->next = pacer_next(old, delay, earliest);
	c->added = 0;
	c->old = old;
	*(volatile __u64 *)t_last = c->next;
	return 0;
#else
	__u32 lost = 0;

	for (int try = 0; try < PACER_CAS_TRIES; try++) {
		__u64 old = *(volatile __u64 *)t_last;

		if (old + delay >= earliest)
			break;
		if (__sync_val_compare_and_swap(t_last, old, earliest) == old) {
			c->next = earliest;
			c->added = 0;
			c->old = old;
			return lost;
		}
		lost++;
	}
	c->next = __sync_fetch_and_add(t_last, delay) + delay;
	c->added = delay;
	return lost;
#endif
}

/*
 * Gives a claimed slot back (a later class on the path refused the packet after another CPU moved
 * its schedule). An add is undone by a subtract: adds and subtracts commute, so t_last ends as if
 * this packet had never come, whatever other CPUs added in between; a packet that claimed between
 * the two got a slot later by this packet's delay, i.e. it leaves up to one packet's time later
 * than it had to (never earlier: the undo cannot under-pace). A compare-and-exchange restart is
 * undone only if nobody claimed after it; otherwise it stays (pacing more, never less).
 */
static __always_inline void pacer_release_slot(__u64 *t_last, struct pacer_claim *c)
{
#ifndef PACER_RACY
	if (c->added)
		__sync_fetch_and_sub(t_last, c->added);
	else
		__sync_val_compare_and_swap(t_last, c->next, c->old);
#endif
}

#endif
