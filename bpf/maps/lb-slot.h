/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_slot: a frontend's backends as numbered slots, so that a random pick is one lookup.
 * Slots 0..local_count-1 hold the backends on this node, then the remote ones up to count-1. */
#ifndef SKN_MAPS_LB_SLOT_H
#define SKN_MAPS_LB_SLOT_H

#include "../lib/common.h"

struct skn_lb_slot_key {
	__u32 svc_id; /* skn_lb_svc.svc_id */
	__u32 slot; /* 0 .. count-1 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_slot_key) == 8, "lb slot key layout");

struct skn_lb_slot {
	__u32 backend_id; /* key of skn_lb_backend */
	__u32 _pad; /* 0 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_slot) == 8, "lb slot value layout");

#define SKN_LB_SLOT_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_LB_SLOT_MAX);
	__type(key, struct skn_lb_slot_key);
	__type(value, struct skn_lb_slot);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_slot SEC(".maps");

#endif
