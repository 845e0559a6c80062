/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN encapsulation through the collect_md device: tunnel key, inner MACs. */
#ifndef SKN_LIB_OVERLAY_H
#define SKN_LIB_OVERLAY_H

#include "common.h"
#include "eth.h"
#include <linux/ip.h>
#include <linux/udp.h>

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

/* The headers the direct encapsulation inserts between the outer Ethernet header and the inner
 * IP header: outer IPv4, UDP, VXLAN, inner Ethernet. */
struct skn_vxlan_encap {
	struct iphdr ip;
	struct udphdr udp;
	__be32 vx_flags; /* 0x08000000: VNI present */
	__be32 vx_vni; /* VNI << 8 */
	struct ethhdr inner;
} __attribute__((packed));
SKN_STATIC_ASSERT(sizeof(struct skn_vxlan_encap) == 50, "VXLAN encapsulation is 50 bytes");

/*
 * Encapsulates the frame in VXLAN in place (bpf_skb_adjust_room keeps GSO and checksum offload
 * correct: the kernel marks the skb as a UDP tunnel packet) and fills the headers: outer
 * addresses node -> remote node, UDP source port from the flow hash (so the underlay spreads
 * flows), destination port `port_be`, zero UDP checksum (allowed over IPv4), VNI = identity,
 * inner MACs as the VXLAN device would have them. The outer Ethernet header is left for
 * bpf_redirect_neigh to fill. Returns 0 or a negative errno.
 */
static __always_inline int skn_vxlan_encap(struct __sk_buff *skb, __u32 node_ip_be, __u32 tunnel_ip_be,
                                           __u16 port_be, __u32 identity, const __u8 *own_vxlan_mac)
{
	struct skn_vxlan_encap h = {};
	struct iphdr ip = {};
	__u32 inner_len = skb->len - ETH_HLEN;
	__u32 hash = bpf_get_hash_recalc(skb);
	__s64 csum;

	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(inner_len + sizeof(h));
	ip.frag_off = bpf_htons(0x4000); /* DF */
	ip.ttl = 64;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = node_ip_be;
	ip.daddr = tunnel_ip_be;
	csum = bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0);
	if (csum < 0)
		return (int)csum;
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	ip.check = (__u16)~csum;
	h.ip = ip;
	/* Source port in 49152..65535, from the flow hash. */
	h.udp.source = bpf_htons(0xc000 | (hash & 0x3fff));
	h.udp.dest = port_be;
	h.udp.len = bpf_htons(inner_len + sizeof(h) - sizeof(struct iphdr));
	h.vx_flags = bpf_htonl(0x08000000);
	h.vx_vni = bpf_htonl((identity & SKN_ID_MAX) << 8);
	skn_mac_copy(h.inner.h_source, own_vxlan_mac);
	skn_vxlan_mac(tunnel_ip_be, h.inner.h_dest);
	h.inner.h_proto = bpf_htons(ETH_P_IP);

	if (bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC,
	                        BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
	                                BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
	                                BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0);
}

/* What skn_vxlan_rx_parse found in a frame on the uplink. */
struct skn_vxlan_rx {
	__u32 outer_saddr_be;
	__u32 vni;
};

/*
 * Is this frame VXLAN for this node (outer IPv4 without options or fragments, to `node_ip_be`, UDP
 * to `port_be`, VNI flag set, inner Ethernet carrying IPv4)? Fills `rx` and returns 1 when it is,
 * 0 otherwise: anything else is the stack's.
 */
static __always_inline int skn_vxlan_rx_parse(struct __sk_buff *skb, __u32 node_ip_be, __u16 port_be,
                                              struct skn_vxlan_rx *rx)
{
	struct {
		struct ethhdr eth;
		struct skn_vxlan_encap h;
	} __attribute__((packed)) f;

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)) < 0)
		return 0;
	if (f.eth.h_proto != bpf_htons(ETH_P_IP) || f.h.ip.version != 4 || f.h.ip.ihl != 5 ||
	    f.h.ip.protocol != IPPROTO_UDP || f.h.ip.daddr != node_ip_be ||
	    (f.h.ip.frag_off & bpf_htons(0x3fff)) != 0 || f.h.udp.dest != port_be ||
	    (f.h.vx_flags & bpf_htonl(0x08000000)) == 0 || f.h.inner.h_proto != bpf_htons(ETH_P_IP))
		return 0;
	rx->outer_saddr_be = f.h.ip.saddr;
	rx->vni = bpf_ntohl(f.h.vx_vni) >> 8;
	return 1;
}

/* Removes the outer IPv4, UDP, VXLAN and inner Ethernet headers: the outer Ethernet header is
 * left in front of the inner IP packet. Returns 0 or a negative errno. */
static __always_inline int skn_vxlan_decap(struct __sk_buff *skb)
{
	return bpf_skb_adjust_room(skb, -(__s32)sizeof(struct skn_vxlan_encap), BPF_ADJ_ROOM_MAC,
	                           BPF_F_ADJ_ROOM_FIXED_GSO);
}

#endif
