/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map keys and values shared by the BPF programs and the agent. This is a contract: every field
 * is fixed-width with explicit padding, and shaper-bpf/src/layout.ts mirrors each struct field by
 * field, with a test asserting sizes and offsets.
 *
 * Class id 0 means "no class" everywhere (the API assigns ids from 1).
 */
#ifndef PACER_H
#define PACER_H

#include <linux/types.h>

#define PACER_MAX_CLASSES 65536
#define PACER_MAX_SELECTORS 65536
/* A root class is level 1; the API refuses deeper trees. */
#define PACER_MAX_DEPTH 4

/* class_config: class id -> how the class is paced. Written by the agent only. */
struct pacer_class_config {
	__u64 rate_bps;   /* bits per second, 1e3 .. 4e11 */
	__u64 burst_ns;   /* idle credit: how far behind "now" a departure may be scheduled */
	__u64 horizon_ns; /* a packet that would wait longer than this is dropped */
	__u64 ecn_ns;     /* mark CE on ECT packets that wait longer than this; 0 = off */
	__u32 parent_id;  /* 0 = a root class */
	__u32 flags;      /* reserved, 0 */
};

/*
 * class_state: class id -> its schedule. Kept apart from the config so that rewriting a rate
 * (or the agent restarting) never resets t_last: a changed rate applies from the next packet on,
 * with no burst in between.
 */
struct pacer_class_state {
	__u64 t_last; /* departure time (CLOCK_MONOTONIC ns) of the class's last scheduled packet */
};

/* class_stats (per CPU): class id -> counters. The agent sums the CPUs. */
struct pacer_class_stats {
	__u64 packets;          /* packets passed (delayed or not) */
	__u64 bytes;            /* their wire length */
	__u64 delayed;          /* packets stamped with a departure in the future */
	__u64 delay_ns;         /* sum of those delays */
	__u64 horizon_drops;    /* packets dropped because they would wait longer than horizon */
	__u64 ce_marks;         /* ECT packets marked CE */
	__u64 contention_drops; /* packets dropped after losing the schedule race too often */
};

/* iface_stats (per CPU, one entry): what the program saw but did not shape. */
struct pacer_iface_stats {
	__u64 unclassified_packets;
	__u64 unclassified_bytes;
};

/* settings (array, one entry). */
struct pacer_settings {
	__u32 default_class; /* class of packets no selector matched; 0 = leave them unshaped */
	__u32 flags;         /* reserved, 0 */
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

/* tcp_stats: class id -> what the kernel said when sock_ops applied the tuning. */
struct pacer_tcp_stats {
	__u64 applied;      /* sockets where every setsockopt succeeded */
	__u64 failed;       /* sockets where one failed */
	__s32 last_error;   /* the last -errno from bpf_setsockopt, 0 if none */
	__u32 last_option;  /* which option failed last (TCP_BPF_RTO_MIN = 1004, TCP_BPF_DELACK_MAX = 1003) */
};

#endif
