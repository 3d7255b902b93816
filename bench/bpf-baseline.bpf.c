// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor for `npm run bench:bpf`: the least an EDT pacer can do per packet, after Cilium's
 * edt_sched_departure (bpf/lib/edt.h). One hash lookup of the packet's class, keyed by a field of
 * the context (here skb->mark; Cilium uses queue_mapping), then
 *
 *   t_next = t_last + wire_len * 8e9 / rate   against   max(skb->tstamp, now)
 *
 * and skb->tstamp = t_next. No packet parsing, no classification maps, no parents, no stats, no
 * compare-and-exchange (a plain read-then-write of t_last, as in Cilium).
 *
 * bench_now plays the role of pacer_tc's pacer_test_now: 0 = the real clock (bpf_ktime_get_ns),
 * otherwise a fixed time, read the same way (one volatile load and a branch), so both programs
 * pay the same for the clock in either mode.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NSEC_PER_SEC 1000000000ULL

struct edt_info {
	__u64 rate_bps;   /* bits per second */
	__u64 t_last;     /* departure of the class's last packet */
	__u64 horizon_ns; /* drop what would wait longer */
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct edt_info);
} edt_class SEC(".maps");

__u64 bench_now = 0;

SEC("tc")
int edt_baseline(struct __sk_buff *skb)
{
	__u32 key = skb->mark;
	__u64 wire_len = skb->wire_len;
	__u64 t = skb->tstamp;
	__u64 now, delay, t_next;
	struct edt_info *info;

	info = bpf_map_lookup_elem(&edt_class, &key);
	if (!info)
		return TC_ACT_OK;
	now = *(volatile __u64 *)&bench_now;
	if (!now)
		now = bpf_ktime_get_ns();
	if (t < now)
		t = now;
	delay = wire_len * 8 * NSEC_PER_SEC / info->rate_bps;
	t_next = *(volatile __u64 *)&info->t_last + delay;
	if (t_next <= t) {
		*(volatile __u64 *)&info->t_last = t;
		return TC_ACT_OK;
	}
	if (t_next - now >= info->horizon_ns)
		return TC_ACT_SHOT;
	*(volatile __u64 *)&info->t_last = t_next;
	skb->tstamp = t_next;
	return TC_ACT_OK;
}
