/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_events: drop and policy-verdict records for `skeinctl monitor`. */
#ifndef SKN_MAPS_EVENTS_H
#define SKN_MAPS_EVENTS_H

#include "../lib/common.h"

enum skn_event_type {
	SKN_EV_DROP = 1, /* a packet was dropped */
	SKN_EV_VERDICT = 2, /* a new flow was allowed by policy (only with SKN_CFG_VERDICT_EVENTS) */
};

struct skn_event {
	__u64 ts_ns;
	__u8 type; /* enum skn_event_type */
	__u8 reason; /* enum skn_reason */
	__u8 dir; /* enum skn_dir of the decisive check */
	__u8 proto;
	__u32 ifindex; /* interface the program ran on */
	__u32 saddr_be;
	__u32 daddr_be;
	__u16 sport_be;
	__u16 dport_be;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id; /* allowing rule; 0 when no rule matched */
	__u32 _pad;
};
SKN_STATIC_ASSERT(sizeof(struct skn_event) == 48, "event layout");

#define SKN_EVENTS_BYTES (256 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SKN_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_events SEC(".maps");

#endif
