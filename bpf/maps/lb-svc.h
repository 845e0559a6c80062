/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_svc: every Service frontend this node translates, keyed by address, port and protocol.
 * Written by the agent (policy/lb-builder.ts); read by lib/lb.h for every packet from a pod. */
#ifndef SKN_MAPS_LB_SVC_H
#define SKN_MAPS_LB_SVC_H

#include "../lib/common.h"

/* A frontend: a ClusterIP:port, a NodePort on one of the node's addresses, an externalIP:port or a
 * LoadBalancer ingress IP:port. */
struct skn_lb_svc_key {
	__u32 addr_be; /* frontend address, network order */
	__u16 port_be; /* frontend port, network order */
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 _pad; /* 0 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_svc_key) == 8, "lb svc key layout");

enum skn_lb_svc_flag {
	SKN_LB_AFFINITY = 1 << 0, /* sessionAffinity: ClientIP (skn_lb_affinity, affinity_timeout_s) */
	SKN_LB_EXT_LOCAL = 1 << 1, /* externalTrafficPolicy: Local (NodePort/external frontends only) */
	SKN_LB_INT_LOCAL = 1 << 2, /* internalTrafficPolicy: Local (ClusterIP frontends only) */
	SKN_LB_CONSISTENT = 1 << 3, /* pick through skn_lb_maglev (the same backend on every node) */
	SKN_LB_NODEPORT = 1 << 4, /* a NodePort on one of this node's addresses */
	SKN_LB_EXTERNAL = 1 << 5, /* an externalIP or a LoadBalancer ingress IP */
};

struct skn_lb_svc {
	__u32 svc_id; /* one id per frontend, never 0; keys skn_lb_slot, skn_lb_revnat, skn_lb_maglev */
	__u16 count; /* usable backends (slots 0..count-1); 0: reject (no endpoints) */
	__u16 local_count; /* of which on this node, stored first (slots 0..local_count-1) */
	__u32 flags; /* enum skn_lb_svc_flag */
	__u32 affinity_timeout_s; /* sessionAffinityConfig.clientIP.timeoutSeconds (with SKN_LB_AFFINITY) */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_svc) == 16, "lb svc value layout");

#define SKN_LB_SVC_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_LB_SVC_MAX);
	__type(key, struct skn_lb_svc_key);
	__type(value, struct skn_lb_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_svc SEC(".maps");

static __always_inline const struct skn_lb_svc *skn_lb_svc_lookup(__u32 addr_be, __u16 port_be, __u8 proto)
{
	struct skn_lb_svc_key key = {};

	key.addr_be = addr_be;
	key.port_be = port_be;
	key.proto = proto;
	return bpf_map_lookup_elem(&skn_lb_svc, &key);
}

#endif
