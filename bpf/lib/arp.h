/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The gateway's ARP responder: pods resolve 169.254.1.1 to their host-side veth. */
#ifndef SKN_LIB_ARP_H
#define SKN_LIB_ARP_H

#include "common.h"
#include "eth.h"

/* From linux/if_arp.h, which drags in libc headers. */
#define SKN_ARPHRD_ETHER 1
#define SKN_ARPOP_REQUEST 1
#define SKN_ARPOP_REPLY 2

struct skn_arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));
SKN_STATIC_ASSERT(sizeof(struct skn_arp_eth_ipv4) == 28, "arp layout");

/* Returns the ARP payload of the frame, pulling it into the linear area if needed; NULL when
 * the frame is too short for Ethernet/IPv4 ARP. Packet pointers are valid until the next helper
 * that changes packet data. */
static __always_inline struct skn_arp_eth_ipv4 *skn_arp_parse(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct skn_arp_eth_ipv4 *arp = data + sizeof(struct ethhdr);

	if ((void *)(arp + 1) > data_end) {
		if (skb->len < sizeof(struct ethhdr) + sizeof(*arp))
			return NULL;
		if (bpf_skb_pull_data(skb, sizeof(struct ethhdr) + sizeof(*arp)) < 0)
			return NULL;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		arp = data + sizeof(struct ethhdr);
		if ((void *)(arp + 1) > data_end)
			return NULL;
	}
	if (arp->htype != bpf_htons(SKN_ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != ETH_ALEN || arp->plen != 4)
		return NULL;
	return arp;
}

static __always_inline int skn_arp_is_gateway_request(const struct skn_arp_eth_ipv4 *arp)
{
	return arp->op == bpf_htons(SKN_ARPOP_REQUEST) && arp->tpa == SKN_GATEWAY_IP_BE;
}

/* Turns the request into the gateway's reply, in place; `gw_mac` answers for 169.254.1.1. */
static __always_inline void skn_arp_make_reply(struct __sk_buff *skb, struct skn_arp_eth_ipv4 *arp,
                                               const __u8 *gw_mac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__be32 sender_ip = arp->spa;

	if ((void *)(eth + 1) > data_end)
		return;
	arp->op = bpf_htons(SKN_ARPOP_REPLY);
	skn_mac_copy(arp->tha, arp->sha);
	arp->tpa = sender_ip;
	skn_mac_copy(arp->sha, gw_mac);
	arp->spa = SKN_GATEWAY_IP_BE;
	skn_mac_copy(eth->h_dest, eth->h_source);
	skn_mac_copy(eth->h_source, gw_mac);
}

#endif
