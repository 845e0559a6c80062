/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the node-side Service paths (lib/lb-host.h: node → ClusterIP; lib/nodeport.h: world →
 * NodePort) share: rewriting one end of an IPv4 packet with its checksums, the flow hash every node
 * computes alike (Maglev), and choosing a frontend's backend for a flow (sticky through
 * skn_lb_flow while the backend exists, so a deleted backend is replaced at the flow's next
 * packet).
 */
#ifndef SKN_LIB_LB_NAT_H
#define SKN_LIB_LB_NAT_H

#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"
#include "ipv4.h"
#include "../maps/lb-svc.h"
#include "../maps/lb-slot.h"
#include "../maps/lb-backend.h"
#include "../maps/lb-flow.h"
#include "../maps/lb-maglev.h"
#include "../maps/lb-revnat.h"

#define SKN_IP_CSUM_OFF offsetof(struct iphdr, check)
#define SKN_IP_SADDR_OFF offsetof(struct iphdr, saddr)
#define SKN_IP_DADDR_OFF offsetof(struct iphdr, daddr)

/*
 * Rewrites the source (`src` 1) or destination address and port of the IPv4 packet at `l3_off`,
 * fixing the IP and the TCP/UDP checksums (a UDP checksum of 0 stays 0; a checksum the device
 * completes later, CHECKSUM_PARTIAL, is handled by the helpers). SCTP's CRC32c covers the ports and
 * cannot be fixed here: SCTP keeps its port (only the address changes). Returns 0 or -1.
 */
static __always_inline int skn_lb_rewrite(struct __sk_buff *skb, __u32 l3_off, __u8 proto, int src,
                                          __u32 old_addr_be, __u32 new_addr_be, __u16 old_port_be,
                                          __u16 new_port_be)
{
	__u32 addr_off = l3_off + (src ? SKN_IP_SADDR_OFF : SKN_IP_DADDR_OFF);
	__u32 l4_off, csum_off = 0, port_off;
	__u8 ihl = 0;
	__u64 csum_flags = 0;

	if (bpf_skb_load_bytes(skb, l3_off, &ihl, 1) < 0)
		return -1;
	l4_off = l3_off + (ihl & 0x0f) * 4;
	port_off = l4_off + (src ? 0 : 2);
	if (proto == IPPROTO_TCP) {
		csum_off = l4_off + offsetof(struct tcphdr, check);
	} else if (proto == IPPROTO_UDP) {
		csum_off = l4_off + offsetof(struct udphdr, check);
		csum_flags = BPF_F_MARK_MANGLED_0;
	}
	if (old_addr_be != new_addr_be) {
		if (csum_off &&
		    bpf_l4_csum_replace(skb, csum_off, old_addr_be, new_addr_be,
		                        csum_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr_be)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, l3_off + SKN_IP_CSUM_OFF, old_addr_be, new_addr_be,
		                        sizeof(new_addr_be)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr_be, sizeof(new_addr_be), 0) < 0)
			return -1;
	}
	if (old_port_be != new_port_be && proto != IPPROTO_SCTP && (csum_off || proto == IPPROTO_UDP)) {
		if (csum_off && bpf_l4_csum_replace(skb, csum_off, old_port_be, new_port_be,
		                                    csum_flags | sizeof(new_port_be)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &new_port_be, sizeof(new_port_be), 0) < 0)
			return -1;
	}
	return 0;
}

/* A 32-bit mix (murmur3's finaliser) of the flow's client address, client port, frontend port and
 * protocol. The frontend address is left out on purpose: a NodePort flow that a load balancer
 * moves from one node's address to another's still hashes alike, and the same code on every node
 * makes the same choice. */
static __always_inline __u32 skn_lb_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 skn_lb_flow_hash(const struct skn_pkt *p)
{
	__u32 h = skn_lb_mix(bpf_ntohl(p->saddr_be) ^ 0x5e1c0000u);

	h = skn_lb_mix(h ^ (((__u32)bpf_ntohs(p->sport_be) << 16) | bpf_ntohs(p->dport_be)));
	return skn_lb_mix(h ^ p->proto);
}

static __always_inline const struct skn_lb_backend *skn_lb_backend_get(__u32 backend_id)
{
	if (!backend_id)
		return NULL;
	return bpf_map_lookup_elem(&skn_lb_backend, &backend_id);
}

static __always_inline __u32 skn_lb_slot_backend(__u32 svc_id, __u32 slot)
{
	struct skn_lb_slot_key key = {};
	const struct skn_lb_slot *s;

	key.svc_id = svc_id;
	key.slot = slot;
	s = bpf_map_lookup_elem(&skn_lb_slot, &key);
	return s ? s->backend_id : 0;
}

/* How the node-side paths pick a new flow's backend. */
enum skn_lb_pick {
	SKN_LB_PICK_RANDOM = 0, /* any slot (node → ClusterIP) */
	SKN_LB_PICK_LOCAL = 1, /* local slots only (traffic policy Local) */
	SKN_LB_PICK_MAGLEV = 2, /* skn_lb_maglev by the flow hash (NodePort Cluster, consistent) */
};

/*
 * The backend of the flow `p` (as the client sent it) to frontend `svc`: the one skn_lb_flow
 * recorded while it still exists and the frontend is the same, else a new pick, recorded. Returns
 * the backend (and its id in `*id`), or NULL when there is none to pick.
 */
static __always_inline const struct skn_lb_backend *skn_lb_flow_backend(const struct skn_pkt *p,
                                                                        const struct skn_lb_svc *svc,
                                                                        enum skn_lb_pick how, __u32 *id)
{
	struct skn_lb_flow_key key = {};
	struct skn_lb_flow rec = {};
	const struct skn_lb_flow *old;
	const struct skn_lb_backend *be;
	__u32 backend_id = 0, n;

	key.client_be = p->saddr_be;
	key.frontend_be = p->daddr_be;
	key.client_port_be = p->sport_be;
	key.frontend_port_be = p->dport_be;
	key.proto = p->proto;
	old = bpf_map_lookup_elem(&skn_lb_flow, &key);
	if (old && old->svc_id == svc->svc_id) {
		be = skn_lb_backend_get(old->backend_id);
		if (be) {
			*id = old->backend_id;
			return be;
		}
	}
	if (how == SKN_LB_PICK_MAGLEV) {
		__u32 svc_id = svc->svc_id;
		const struct skn_lb_maglev *t = bpf_map_lookup_elem(&skn_lb_maglev, &svc_id);
		__u32 slot = skn_lb_flow_hash(p) % SKN_LB_MAGLEV_M;

		/* Keeps the bound check the compiler would fold away (the verifier needs it). */
		asm volatile("" : "+r"(slot));
		if (t && slot < SKN_LB_MAGLEV_M)
			backend_id = t->backend_id[slot];
	}
	if (!backend_id) {
		n = how == SKN_LB_PICK_LOCAL ? svc->local_count : svc->count;
		if (n == 0)
			return NULL;
		backend_id = skn_lb_slot_backend(svc->svc_id, (how == SKN_LB_PICK_LOCAL ? skn_lb_flow_hash(p)
		                                                                        : bpf_get_prandom_u32()) %
		                                                      n);
	}
	be = skn_lb_backend_get(backend_id);
	if (!be)
		return NULL;
	rec.backend_id = backend_id;
	rec.svc_id = svc->svc_id;
	bpf_map_update_elem(&skn_lb_flow, &key, &rec, BPF_ANY);
	*id = backend_id;
	return be;
}

/* The frontend a translated flow's replies come from (skn_lb_revnat), or NULL. */
static __always_inline const struct skn_lb_revnat *skn_lb_revnat_get(__u32 svc_id)
{
	if (!svc_id)
		return NULL;
	return bpf_map_lookup_elem(&skn_lb_revnat, &svc_id);
}

#endif
