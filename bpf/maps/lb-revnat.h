/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_revnat: what a translated flow's replies are rewritten back to, by the frontend's svc_id
 * (the conntrack entry of the flow holds it in lb_svc_id). */
#ifndef SKN_MAPS_LB_REVNAT_H
#define SKN_MAPS_LB_REVNAT_H

#include "../lib/common.h"

struct skn_lb_revnat {
	__u32 addr_be; /* the frontend's address, network order */
	__u16 port_be; /* the frontend's port, network order */
	__u8 proto; /* IPPROTO_* */
	__u8 _pad; /* 0 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_revnat) == 8, "lb revnat value layout");

#define SKN_LB_REVNAT_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_LB_REVNAT_MAX);
	__type(key, __u32); /* svc_id */
	__type(value, struct skn_lb_revnat);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_revnat SEC(".maps");

#endif
