/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_flow: the backend each translated flow was given, keyed by the flow as the client sent it
 * (client → frontend). Written by the datapath at a flow's first packet; read at every later one,
 * which then goes to the same backend while that backend exists in skn_lb_backend. */
#ifndef SKN_MAPS_LB_FLOW_H
#define SKN_MAPS_LB_FLOW_H

#include "../lib/common.h"

struct skn_lb_flow_key {
	__u32 client_be; /* client address, network order */
	__u32 frontend_be; /* frontend address, network order */
	__u16 client_port_be; /* client port, network order (0 for protocols without ports) */
	__u16 frontend_port_be; /* frontend port, network order */
	__u8 proto; /* IPPROTO_* */
	__u8 _pad[3]; /* 0 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_flow_key) == 16, "lb flow key layout");

struct skn_lb_flow {
	__u32 backend_id; /* key of skn_lb_backend */
	__u32 svc_id; /* the frontend's id when the flow began: a changed id is a new frontend */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_flow) == 8, "lb flow value layout");

#define SKN_LB_FLOW_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKN_LB_FLOW_MAX);
	__type(key, struct skn_lb_flow_key);
	__type(value, struct skn_lb_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_flow SEC(".maps");

#endif
