/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_decision: the last verdict in full, for BPF_PROG_TEST_RUN, which neither performs redirects
 * nor keeps tunnel keys. Written only when skn_settings.record_decisions is set; not pinned. */
#ifndef SKN_MAPS_DECISION_H
#define SKN_MAPS_DECISION_H

#include "../lib/common.h"
#include "../lib/settings.h"

struct skn_decision {
	__u32 action; /* TC_ACT_* the program returned */
	__u32 reason; /* enum skn_reason */
	__u32 dir; /* enum skn_dir of the decisive check */
	__u32 ifindex; /* redirect target */
	__u32 tunnel_ip_be; /* tunnel endpoint set, 0 if none */
	__u32 tunnel_id; /* VNI set: the source identity */
	__u32 rule_id; /* allowing rule */
	__u32 peer_identity; /* identity of the peer in the decisive check */
};
SKN_STATIC_ASSERT(sizeof(struct skn_decision) == 32, "decision layout");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skn_decision);
} skn_decision SEC(".maps");

/* Callers check skn_settings.record_decisions first (a load-time constant). */
static __always_inline void skn_decision_record(const struct skn_decision *d)
{
	__u32 zero = 0;

	bpf_map_update_elem(&skn_decision, &zero, d, BPF_ANY);
}

#endif
