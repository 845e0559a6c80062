/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_backend: every backend (endpoint address, target port, protocol) by its id. One id per
 * distinct backend, shared by every frontend that uses it. A translated flow whose backend id is
 * gone from this map picks a new backend at its next packet (a deleted pod is not black-holed). */
#ifndef SKN_MAPS_LB_BACKEND_H
#define SKN_MAPS_LB_BACKEND_H

#include "../lib/common.h"

enum skn_lb_backend_flag {
	/* Not ready (terminating): in slots only while no backend is ready; otherwise in no slot, kept
	 * so that its TCP connections drain, while other flows (UDP) move on at their next packet. */
	SKN_LB_BE_TERMINATING = 1 << 0,
	SKN_LB_BE_LOCAL = 1 << 1, /* a pod on this node */
};

struct skn_lb_backend {
	__u32 addr_be; /* endpoint address, network order */
	__u16 port_be; /* target port resolved from the EndpointSlice, network order */
	__u8 proto; /* IPPROTO_* (equal to the frontend's) */
	__u8 flags; /* enum skn_lb_backend_flag */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_backend) == 8, "lb backend value layout");

#define SKN_LB_BACKEND_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_LB_BACKEND_MAX);
	__type(key, __u32); /* backend_id, never 0 */
	__type(value, struct skn_lb_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_backend SEC(".maps");

#endif
