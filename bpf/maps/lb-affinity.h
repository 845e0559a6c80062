/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_affinity: sessionAffinity ClientIP, the backend a client last used per frontend. Written
 * by the datapath; an entry older than the frontend's affinity_timeout_s is ignored. */
#ifndef SKN_MAPS_LB_AFFINITY_H
#define SKN_MAPS_LB_AFFINITY_H

#include "../lib/common.h"

struct skn_lb_affinity_key {
	__u32 client_be; /* client address, network order */
	__u32 svc_id; /* the frontend */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_affinity_key) == 8, "lb affinity key layout");

struct skn_lb_affinity {
	__u32 backend_id; /* key of skn_lb_backend */
	__u32 _pad; /* 0 */
	__u64 last_used_ns; /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC) of the last new flow */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_affinity) == 16, "lb affinity value layout");

#define SKN_LB_AFFINITY_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKN_LB_AFFINITY_MAX);
	__type(key, struct skn_lb_affinity_key);
	__type(value, struct skn_lb_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_affinity SEC(".maps");

#endif
