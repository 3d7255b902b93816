/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one classification order, shared by the tc program (per packet, classify.h) and the sock_ops
 * program (per socket, pacer_sockops.bpf.c). First match wins:
 *   1. the socket mark         (skipped for mark 0)
 *   2. the socket's cgroup v2  (skipped when the subject gives cgroup id 0)
 *   3. the destination prefix  (the peer, for a socket)
 *   4. the interface default   (tc only: sock_ops does not know which interface a socket leaves by;
 *                               the API sets no interface default today, desired-state.ts)
 * Both programs read the same facts of the same socket, so a socket's packets and the socket
 * itself land in the same class:
 *   - mark: tc reads skb->mark, which the stack copies from sk->sk_mark for every packet of a full
 *     socket (net/ipv4/ip_output.c __ip_queue_xmit, net/ipv6/ip6_output.c ip6_xmit called by
 *     inet6_csk_xmit with sk->sk_mark); sock_ops reads sk->sk_mark (struct bpf_sock.mark).
 *     A mark set by netfilter (-j MARK) or another tc program is in skb->mark only: tc sees it,
 *     sock_ops cannot (docs/data-plane.md, "One classification").
 *   - cgroup: tc's bpf_skb_cgroup_id reads skb->sk's sk_cgrp_data; sock_ops reads the same field
 *     of the socket through CO-RE.
 *   - prefix: the packet's destination address is the connected socket's peer.
 *
 * Each program defines `struct pacer_subject` (what it classifies) and the three views below, and
 * passes its own selector maps: the tc maps hold slots per interface, sock_ops' maps hold class
 * ids host-wide, both written by the agent from the same desired state.
 * The views are called lazily, in order: tc asks for the cgroup only when the mark missed.
 */
#ifndef PACER_CLASSIFY_ORDER_H
#define PACER_CLASSIFY_ORDER_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct pacer_subject;
static __always_inline __u32 pacer_subject_mark(struct pacer_subject *s);
/* 0: no cgroup, or not worth asking (no cgroup selectors). */
static __always_inline __u64 pacer_subject_cgroup_id(struct pacer_subject *s);
/* The prefix maps' answer for the destination, 0 for none. */
static __always_inline __u32 pacer_subject_dst(struct pacer_subject *s);

static __always_inline __u32 pacer_lookup_u32(void *map, const void *key)
{
	__u32 *value = bpf_map_lookup_elem(map, key);

	return value ? *value : 0;
}

/* Steps 1 to 3; the caller applies its own step 4. `marks`: u32 -> u32, `cgroups`: u64 -> u32. */
static __always_inline __u32 pacer_classify_in_order(struct pacer_subject *s, void *marks, void *cgroups)
{
	__u32 mark = pacer_subject_mark(s);
	__u64 cgroup_id;
	__u32 found;

	if (mark) {
		found = pacer_lookup_u32(marks, &mark);
		if (found)
			return found;
	}
	cgroup_id = pacer_subject_cgroup_id(s);
	if (cgroup_id) {
		found = pacer_lookup_u32(cgroups, &cgroup_id);
		if (found)
			return found;
	}
	return pacer_subject_dst(s);
}

#endif
