/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the node-side Service paths (lib/lb-host.h: node → ClusterIP; lib/nodeport.h: world →
 * NodePort) share on top of lib/lb.h: the flow hash every node computes alike (Maglev), choosing a
 * frontend's backend for a flow (sticky through skn_lb_flow while the backend exists, so a deleted
 * backend is replaced at the flow's next packet), and the destination rewrite.
 */
#ifndef SKN_LIB_LB_NAT_H
#define SKN_LIB_LB_NAT_H

#include "common.h"
#include "ipv4.h"
#include "lb.h"

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

/* How the node-side paths pick a new flow's backend. */
enum skn_lb_pick {
	SKN_LB_PICK_RANDOM =
		0, /* lib/lb.h's pick: affinity, else a random slot (local only with ITP Local) */
	SKN_LB_PICK_LOCAL = 1, /* local slots only (traffic policy Local) */
	SKN_LB_PICK_MAGLEV = 2, /* skn_lb_maglev by the flow hash (NodePort Cluster, consistent) */
};

/*
 * The backend of the flow `p` (as the client sent it) to frontend `svc`: the one skn_lb_flow
 * recorded while it still exists and the frontend is the same, else a new pick, recorded. Returns
 * the backend (and its id in `*id`), or NULL when there is none to pick.
 */
static __always_inline const struct skn_lb_backend *
skn_lb_flow_backend(const struct skn_pkt *p, const struct skn_lb_svc *svc, enum skn_lb_pick how, __u32 *id)
{
	struct skn_lb_flow_key key = {};
	struct skn_lb_flow rec = {};
	const struct skn_lb_flow *old;
	const struct skn_lb_backend *be;
	__u32 backend_id = 0;

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
	if (how == SKN_LB_PICK_LOCAL) {
		struct skn_lb_slot_key sk = {};
		const struct skn_lb_slot *slot;

		if (svc->local_count == 0)
			return NULL;
		sk.svc_id = svc->svc_id;
		sk.slot = skn_lb_flow_hash(p) % svc->local_count;
		slot = bpf_map_lookup_elem(&skn_lb_slot, &sk);
		if (slot)
			backend_id = slot->backend_id;
	}
	be = skn_lb_backend_get(backend_id);
	if (!be) {
		be = NULL;
		backend_id = skn_lb_pick(svc, p->saddr_be, &be);
		if (!backend_id || !be)
			return NULL;
	}
	rec.backend_id = backend_id;
	rec.svc_id = svc->svc_id;
	bpf_map_update_elem(&skn_lb_flow, &key, &rec, BPF_ANY);
	*id = backend_id;
	return be;
}

/* Rewrites `p`'s destination to backend `be` (SCTP keeps its port: its CRC covers it). */
static __always_inline int skn_lb_to_backend(struct __sk_buff *skb, __u32 l3_off, struct skn_pkt *p,
                                             const struct skn_lb_backend *be)
{
	__u16 port_be = p->proto == IPPROTO_SCTP ? p->dport_be : be->port_be;

	if (skn_lb_rewrite(skb, l3_off, p->l4_off, p->proto, 1, p->daddr_be, be->addr_be, p->dport_be,
	                   port_be) < 0)
		return -1;
	p->daddr_be = be->addr_be;
	p->dport_be = port_be;
	return 0;
}

#endif
