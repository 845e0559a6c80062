/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN encapsulation through the collect_md device: tunnel key, inner MACs. */
#ifndef SKN_LIB_OVERLAY_H
#define SKN_LIB_OVERLAY_H

#include "common.h"
#include "eth.h"

/* Every node's VXLAN MAC is derived from its underlay address (0e:5e:a.b.c.d, locally
 * administered), so the sender knows the receiver's without a table. The agent uses the same
 * rule (maps/config.ts). */
static __always_inline void skn_vxlan_mac(__u32 node_ip_be, __u8 *mac)
{
	mac[0] = 0x0e;
	mac[1] = 0x5e;
	__builtin_memcpy(mac + 2, &node_ip_be, 4);
}

/* Sets the tunnel metadata; the VNI carries the source identity. Returns 0 or a negative errno. */
static __always_inline int skn_tunnel_set(struct __sk_buff *skb, __u32 tunnel_ip_be, __u32 identity)
{
	struct bpf_tunnel_key key = {};

	key.remote_ipv4 = bpf_ntohl(tunnel_ip_be);
	key.tunnel_id = identity & SKN_ID_MAX;
	key.tunnel_ttl = 64;
	return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX);
}

/* Inner Ethernet header for the overlay: from this node's VXLAN MAC to the remote node's, so
 * the receiving device sees a frame for itself (PACKET_HOST). */
static __always_inline int skn_overlay_set_macs(struct __sk_buff *skb, const __u8 *own_vxlan_mac,
                                                __u32 tunnel_ip_be)
{
	__u8 remote[ETH_ALEN];

	skn_vxlan_mac(tunnel_ip_be, remote);
	return skn_eth_rewrite(skb, own_vxlan_mac, remote);
}

#endif
