/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_config: facts about this node the agent learns at run time. One entry, key 0. */
#ifndef SKN_MAPS_CONFIG_H
#define SKN_MAPS_CONFIG_H

#include "../lib/common.h"

/* The IANA VXLAN port, used when the agent leaves skn_config's port at 0. */
#define SKN_VXLAN_PORT 4789

enum skn_config_flag {
	SKN_CFG_VERDICT_EVENTS = 1 << 0, /* emit an event for every policy verdict, not only drops */
	/* Every tunnel endpoint is a direct neighbour on the uplink (the agent checked the routes):
	 * from_pod names it as the next hop, so bpf_redirect_neigh skips the route lookup. */
	SKN_CFG_TUNNEL_ONLINK = 1 << 1,
};

struct skn_config {
	__u32 vxlan_ifindex; /* 0 until the agent set up the overlay */
	__u32 node_ip_be; /* this node's underlay address */
	__u8 vxlan_mac[6]; /* this node's VXLAN device MAC (inner source MAC) */
	__be16 vxlan_port_be; /* the VXLAN UDP port, network order; 0 = SKN_VXLAN_PORT */
	__u32 flags; /* enum skn_config_flag */
	__u32 uplink_ifindex; /* non-zero: encapsulate in BPF and send straight out of this device */
};
SKN_STATIC_ASSERT(sizeof(struct skn_config) == 24, "config layout");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skn_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_config SEC(".maps");

static __always_inline const struct skn_config *skn_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&skn_config, &zero);
}

/* The UDP port VXLAN travels on, network order. */
static __always_inline __be16 skn_config_vxlan_port_be(const struct skn_config *cfg)
{
	return cfg->vxlan_port_be ?: bpf_htons(SKN_VXLAN_PORT);
}

#endif
