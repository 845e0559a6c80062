/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_endpoints: the pods wired on this node, keyed by pod IPv4. Written by skein-cni. */
#ifndef SKN_MAPS_ENDPOINTS_H
#define SKN_MAPS_ENDPOINTS_H

#include "../lib/common.h"

struct skn_endpoint_key {
	__u32 ip_be;
};
SKN_STATIC_ASSERT(sizeof(struct skn_endpoint_key) == 4, "endpoint key layout");

struct skn_endpoint {
	__u32 ifindex; /* host-side veth */
	__u32 flags; /* reserved, 0 */
	__u8 mac[6]; /* pod eth0 */
	__u8 host_mac[6]; /* host-side veth: the gateway's MAC as the pod sees it */
};
SKN_STATIC_ASSERT(sizeof(struct skn_endpoint) == 20, "endpoint value layout");

#define SKN_ENDPOINTS_MAX 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_ENDPOINTS_MAX);
	__type(key, struct skn_endpoint_key);
	__type(value, struct skn_endpoint);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_endpoints SEC(".maps");

static __always_inline const struct skn_endpoint *skn_endpoint_lookup(__u32 ip_be)
{
	struct skn_endpoint_key key = {};

	key.ip_be = ip_be;
	return bpf_map_lookup_elem(&skn_endpoints, &key);
}

#endif
