/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map keys and values shared by the BPF programs and the agent. This is a contract: every field
 * is fixed-width with explicit padding, and shaper-bpf/src/layout.ts mirrors each struct field by
 * field, with a test asserting sizes and offsets.
 *
 * Class ids are the API's (from 1). Inside the data plane each class lives in a dense SLOT
 * (1 .. PACER_MAX_CLASSES - 1) that the agent allocates: class_config, class_state and
 * class_stats are arrays indexed by slot (an array lookup is inlined by the JIT, a hash lookup
 * is a ~30 ns call), and every selector map and settings.default_slot hold slots. Slot 0 means
 * "no class" everywhere; its entries are never written, so its rate stays 0. The pinned hash
 * class_slot (class id -> slot) lets a restarted agent and operators map slots back to classes;
 * each config entry also carries its class id.
 *
 * Slot lifecycle (the agent's, shaper-bpf/src/datapath.ts): the lowest free slot is allocated
 * for a new class; its state and stats are zeroed before its config is written. A deleted
 * class's slot is freed after its selectors and children are gone (its config is rewritten with
 * rate 0 = no class = unshaped, state, stats and delay histogram zeroed, and zeroed again when the slot is reused), and
 * settings.generation is bumped.
 */
#ifndef PACER_H
#define PACER_H

#include <linux/types.h>

/* Entries of the slot-indexed arrays: slots 1 .. PACER_MAX_CLASSES - 1 hold classes. */
#define PACER_MAX_CLASSES 65536
#define PACER_MAX_SELECTORS 65536
/* Entries of the exact-destination caches in front of the LPM tries (LRU). */
#define PACER_DST_CACHE_ENTRIES 65536
/* A root class is level 1; the API refuses deeper trees. */
#define PACER_MAX_DEPTH 4

/*
 * class_config (array): slot -> how the class is paced. Written by the agent only. An entry
 * always exists; rate_bps 0 means the slot holds no class (the packet is left unshaped).
 */
struct pacer_class_config {
	__u64 rate_bps;    /* bits per second, 1e3 .. 4e11; 0 = a free slot */
	__u64 burst_ns;    /* idle credit: how far behind "now" a departure may be scheduled */
	__u64 horizon_ns;  /* a packet that would wait longer than this is dropped */
	__u64 ecn_ns;      /* mark CE on ECT packets that wait longer than this; 0 = off */
	__u32 parent_slot; /* the parent class's slot; 0 = a root class */
	__u32 class_id;    /* the API's id of the class in this slot (for operators; the program ignores it) */
	__u32 flags;       /* reserved, 0 */
	__u32 reserved;    /* padding, 0 */
};

/*
 * class_state (array): slot -> its schedule. Kept apart from the config so that rewriting a rate
 * (or the agent restarting) never resets t_last: a changed rate applies from the next packet on,
 * with no burst in between.
 */
struct pacer_class_state {
	__u64 t_last; /* departure time (CLOCK_MONOTONIC ns) of the class's last scheduled packet */
};

/* class_stats (per-CPU array): slot -> counters. The agent sums the CPUs. */
struct pacer_class_stats {
	__u64 packets;          /* packets passed (delayed or not) */
	__u64 bytes;            /* their wire length */
	__u64 delayed;          /* packets stamped with a departure in the future */
	__u64 delay_ns;         /* sum of those delays */
	__u64 horizon_drops;    /* packets dropped because they would wait longer than horizon */
	__u64 ce_marks;         /* ECT packets marked CE */
	__u64 contended;        /* lost races for a schedule (retried or resolved by fetch-and-add; never a drop) */
};

/*
 * delay_hist (array of maps, slot >> 4 -> the group's array of 16 of this struct, index
 * slot & 15; created by the agent with the group's first class): how long each passed packet of
 * the class was held, in log-linear buckets (delay_hist.h has the rule, the bounds and why this
 * storage). Shared by all CPUs, counted with atomic adds.
 */
#define PACER_HIST_GROUP_SHIFT 4
#define PACER_HIST_GROUP (1 << PACER_HIST_GROUP_SHIFT) /* slots per inner map of delay_hist */
#define PACER_HIST_MIN_SHIFT 10  /* bucket 0: delay < 2^10 ns, including packets not delayed */
#define PACER_HIST_MAX_SHIFT 34  /* the last bucket: delay >= 2^34 ns (17.2 s) */
#define PACER_HIST_SUBBUCKETS 4  /* buckets per power of two */
#define PACER_HIST_BUCKETS (2 + (PACER_HIST_MAX_SHIFT - PACER_HIST_MIN_SHIFT) * PACER_HIST_SUBBUCKETS)

struct pacer_delay_hist {
	__u64 counts[PACER_HIST_BUCKETS];
};

/* iface_stats (per CPU, one entry): what the program saw but did not shape. */
struct pacer_iface_stats {
	__u64 unclassified_packets;
	__u64 unclassified_bytes;
};

/* settings (array, one entry). Written by the agent only. */
struct pacer_settings {
	__u32 default_slot;     /* slot of packets no selector matched; 0 = leave them unshaped */
	__u32 flags;            /* the agent's mode, for operators; the program ignores it */
	__u32 generation;       /* bumped by the agent after every change of dst4/dst6_class and every
				 * freed slot: dst4/dst6_cache entries of another generation are stale */
	__u32 cgroup_selectors; /* entries in cgroup_class; 0 = skip bpf_skb_cgroup_id */
};

/*
 * dst4_cache / dst6_cache (LRU hash): destination address -> what the LPM trie said for it (a
 * slot, or 0 for no match) and the settings.generation it was looked up under.
 */
struct pacer_dst_cache {
	__u32 slot;
	__u32 generation;
};

/* Key of dst6_cache: an IPv6 address in network order. (dst4_cache's key is a __u32, as in the header.) */
struct pacer_addr6 {
	__u8 addr[16];
};

/* Keys of the destination-prefix LPM tries: prefixlen first, then the address in network order. */
struct pacer_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct pacer_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* tcp_tuning: class id -> values for sock_ops (microseconds, as TCP_BPF_RTO_MIN takes them). */
struct pacer_tcp_tuning {
	__u32 rto_min_us;    /* 0 = leave as is */
	__u32 delack_max_us; /* 0 = leave as is */
};

/*
 * tcp_pacing: class id -> the rate sock_ops caps the class's TCP sockets at (SO_MAX_PACING_RATE),
 * set by the agent only for classes policed without fq (docs/data-plane.md, "TCP under policing").
 */
struct pacer_tcp_pacing {
	__u64 rate_bps;     /* the class's effective rate on the wire, bits/s; the program converts it to payload bytes/s */
};

/* tcp_sk_pacing (socket local storage): the class a paced socket belongs to and what was set on it. */
struct pacer_sk_pacing {
	__u32 class_id;
	__u32 applied;      /* SO_MAX_PACING_RATE last set, payload bytes/s; 0 = none yet */
	__u64 window;       /* the counting window (2^28 ns) acked_base belongs to */
	__u64 acked_base;   /* bytes_acked when the socket was first seen in that window; ~0 once counted in it */
};

/* tcp_class_flows: class id -> how many of its paced sockets were busy in this window and the one before. */
struct pacer_class_flows {
	__u64 window;
	__u32 prev;
	__u32 cur;
};

/* tcp_stats: class id -> what the kernel said when sock_ops applied the tuning. */
struct pacer_tcp_stats {
	__u64 applied;      /* sockets where every setsockopt succeeded */
	__u64 failed;       /* sockets where one failed */
	__s32 last_error;   /* the last -errno from bpf_setsockopt, 0 if none */
	__u32 last_option;  /* which option failed last (TCP_BPF_RTO_MIN = 1004, TCP_BPF_DELACK_MAX = 1003, SO_MAX_PACING_RATE = 47) */
};

#endif
