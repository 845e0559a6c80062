/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Native routing (skn_settings.routing_native): pod packets cross between nodes unencapsulated.
 * The sender routes them by the kernel's FIB, so whatever route the node holds is used (the
 * agent's direct routes to nodes on one L2 segment, BGP's otherwise); the receiver knows the
 * sending node only by the frame's previous hop, which it checks against the neighbour through
 * which it reaches the node that owns the source address.
 */
#ifndef SKN_LIB_NATIVE_H
#define SKN_LIB_NATIVE_H

#include "common.h"
#include "eth.h"
#include "ipv4.h"
#include <linux/ip.h>

/* skn_native_route's answer when the host stack must take the packet. */
#define SKN_NATIVE_TO_STACK (-1)

/* One router hop: TTL − 1, with the IPv4 checksum updated incrementally. 0 or a negative errno. */
static __always_inline int skn_ipv4_dec_ttl(struct __sk_buff *skb, __u32 l3_off)
{
	__u32 off = l3_off + offsetof(struct iphdr, ttl);
	__be16 old, new;

	/* TTL and protocol share one 16-bit word of the checksum. */
	if (bpf_skb_load_bytes(skb, off, &old, sizeof(old)) < 0)
		return -1;
	new = bpf_htons(bpf_ntohs(old) - 0x0100);
	if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old, new, sizeof(new)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/*
 * Sends a pod's IPv4 packet (Ethernet at 0) towards its destination as the kernel would forward
 * it: FIB lookup from the pod's veth, one TTL hop, MACs of the next hop, out of the route's
 * device; without a neighbour entry yet, bpf_redirect_neigh resolves it. `skip_ifindex` is a device
 * the packet must not be sent out of directly (the VXLAN device, which needs a tunnel key: the
 * stack's route through it reaches skn_to_vxlan). Returns the TC action with `*ifindex` set, or
 * SKN_NATIVE_TO_STACK when the stack must take it: no route, the TTL runs out, the packet is too
 * big for the device (the stack answers with the ICMP error), or a route through `skip_ifindex`.
 */
static __always_inline int skn_native_route(struct __sk_buff *skb, const struct skn_pkt *p,
                                            __u32 skip_ifindex, __u32 *ifindex)
{
	struct bpf_fib_lookup fib = {};
	struct iphdr ip;
	int rc;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ttl <= 1)
		return SKN_NATIVE_TO_STACK;
	fib.family = SKN_AF_INET;
	fib.tos = ip.tos;
	fib.l4_protocol = p->proto;
	if (p->proto != IPPROTO_ICMP) {
		fib.sport = p->sport_be;
		fib.dport = p->dport_be;
	}
	/* 0: the helper checks the device MTU against the skb itself, GSO included. */
	fib.tot_len = 0;
	fib.ipv4_src = p->saddr_be;
	fib.ipv4_dst = p->daddr_be;
	fib.ifindex = skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return SKN_NATIVE_TO_STACK;
	if (fib.ifindex == skip_ifindex || fib.ifindex == skb->ifindex)
		return SKN_NATIVE_TO_STACK;
	if (skn_ipv4_dec_ttl(skb, ETH_HLEN) < 0)
		return SKN_NATIVE_TO_STACK;
	*ifindex = fib.ifindex;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The FIB left the next hop (the gateway, or the destination itself) in ipv4_dst. */
		struct bpf_redir_neigh nh = {};

		nh.nh_family = SKN_AF_INET;
		nh.ipv4_nh = fib.ipv4_dst;
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	if (skn_eth_rewrite(skb, fib.smac, fib.dmac) < 0)
		return SKN_NATIVE_TO_STACK;
	return bpf_redirect(fib.ifindex, 0);
}

/*
 * Did this frame come from the previous hop through which this node reaches `node_ip_be`, on the
 * device it arrived on? On one L2 segment that hop is the node itself (its MAC); across routers,
 * the router towards it. The answer rests on the node's neighbour entry: the agent keeps those of
 * direct nodes resolved ("managed" entries), and a sender resolved this node before sending, which
 * creates the entry here too. An unknown neighbour is not the node.
 */
static __always_inline int skn_native_from_node(struct __sk_buff *skb, __u32 node_ip_be)
{
	struct bpf_fib_lookup fib = {};
	__u8 src[ETH_ALEN];
	__u32 i;

	fib.family = SKN_AF_INET;
	fib.ipv4_dst = node_ip_be;
	fib.ifindex = skb->ifindex;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (fib.ifindex != skb->ifindex)
		return 0;
	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_source), src, sizeof(src)) < 0)
		return 0;
	for (i = 0; i < ETH_ALEN; i++)
		if (src[i] != fib.dmac[i])
			return 0;
	return 1;
}

#endif
