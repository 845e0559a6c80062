/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * world → NodePort, externalIPs and LoadBalancer ingress IPs, arriving on the node's uplink.
 *
 * skn_from_uplink (TC ingress) looks the destination up in skn_lb_svc (frontends flagged
 * SKN_LB_NODEPORT or SKN_LB_EXTERNAL), picks the backend and rewrites the destination:
 *  - externalTrafficPolicy Cluster: any backend, through skn_lb_maglev by a hash of the flow that
 *    every node computes alike (lib/lb-nat.h), so a flow that moves to another node keeps its
 *    backend. The packet gets SKN_MARK_NODEPORT_SNAT and goes on to the stack, whose single static
 *    rule in Skein's nftables table (`meta mark … masquerade`, agent/node/overlay.ts) gives it the
 *    node's address and a port: the backend sees the node ("host" on this node, "remote node" on
 *    another) and its reply comes back here. Netfilter allocates the port and reverses it, which
 *    a BPF SNAT would have to redo (a port allocator, its own table, collisions with the node's own
 *    sockets) for no gain on a path that goes through the stack anyway.
 *  - externalTrafficPolicy Local: only this node's backends (none here: dropped, as kube-proxy does);
 *    the client's address is kept, and the backend's ingress policy is judged here against the
 *    client's identity (world, or its ipBlock's CIDR identity), since the conntrack entry made
 *    here makes skn_to_pod see the flow as established.
 * A frontend without any endpoint answers with an ICMP port unreachable (lib/lb.h builds it), sent
 * back out of the uplink, as kube-proxy's REJECT would.
 * The translated flow is recorded in conntrack (client → backend) with SKN_CT_NODEPORT, the
 * frontend's svc_id and SKN_CT_VIA_STACK, so the backend's replies are handed to the stack (which
 * undoes the masquerade and routes them to the uplink) and skn_to_uplink (TC egress) rewrites their
 * source back to the frontend.
 */
#ifndef SKN_LIB_NODEPORT_H
#define SKN_LIB_NODEPORT_H

#include "common.h"
#include "conntrack.h"
#include "ipv4.h"
#include "lb-nat.h"
#include "services.h"
#include "../maps/config.h"
#include "../maps/endpoints.h"
#include "../maps/ipcache.h"

/* What skn_nodeport_xlate decided for a packet arriving on the uplink. */
enum skn_nodeport_result {
	SKN_NP_PASS = 0, /* not for a NodePort/external frontend: untouched */
	SKN_NP_TRANSLATED = 1, /* rewritten, on to the stack */
	SKN_NP_NO_BACKEND = 2, /* a frontend without a usable backend (for Local: none on this node) */
	SKN_NP_ERROR = 3, /* the packet could not be rewritten */
	SKN_NP_NEW_LOCAL = 4, /* rewritten, a new Local flow to `*dst` on this node: policy first */
	SKN_NP_REJECT = 5, /* a frontend without endpoints: answered with ICMP port unreachable */
};

/*
 * Translates `p` (parsed at `l3_off`) when it is addressed to a NodePort or external frontend. On
 * SKN_NP_TRANSLATED/SKN_NP_NEW_LOCAL `p` is the translated packet, `*svc_id` its frontend and `ct`
 * its conntrack lookup (entry NULL for a new flow, which the caller records with
 * skn_nodeport_record once it is allowed).
 */
static __always_inline enum skn_nodeport_result skn_nodeport_xlate(struct __sk_buff *skb, __u32 l3_off,
                                                                   struct skn_pkt *p, struct skn_ct_state *ct,
                                                                   __u32 *svc_id)
{
	const struct skn_lb_svc *svc;
	const struct skn_lb_backend *be;
	enum skn_lb_pick how;
	__u32 backend_id = 0;
	int local;

	if (p->frag || p->is_icmp_error ||
	    (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP))
		return SKN_NP_PASS;
	svc = skn_lb_svc_lookup(p->daddr_be, p->dport_be, p->proto);
	if (!svc || !(svc->flags & (SKN_LB_NODEPORT | SKN_LB_EXTERNAL)))
		return SKN_NP_PASS;
	local = !!(svc->flags & SKN_LB_EXT_LOCAL);
	/* A Local frontend lists this node's backends only: none is kube-proxy's "no local endpoints",
	 * a drop; a Cluster frontend without any is its reject. */
	if (svc->count == 0)
		return local ? SKN_NP_NO_BACKEND : SKN_NP_REJECT;
	how = local                              ? SKN_LB_PICK_LOCAL
	      : (svc->flags & SKN_LB_CONSISTENT) ? SKN_LB_PICK_MAGLEV
	                                         : SKN_LB_PICK_RANDOM;
	be = skn_lb_flow_backend(p, svc, how, &backend_id);
	/* Local: a recorded backend that is no longer on this node is not used either. */
	if (!be || (local && !(be->flags & SKN_LB_BE_LOCAL)))
		return SKN_NP_NO_BACKEND;
	if (skn_lb_to_backend(skb, l3_off, p, be) < 0)
		return SKN_NP_ERROR;
	*svc_id = svc->svc_id;
	if (!local)
		skb->mark = SKN_MARK_NODEPORT_SNAT;
	if (skn_ct_lookup(p, ct) == SKN_CT_NEW)
		return local ? SKN_NP_NEW_LOCAL : SKN_NP_TRANSLATED;
	if (ct->entry && ct->entry->lb_svc_id != *svc_id)
		ct->entry->lb_svc_id = *svc_id;
	return SKN_NP_TRANSLATED;
}

/* Records a new translated flow: its replies go through the stack and get their source back. */
static __always_inline void skn_nodeport_record(struct skn_ct_state *ct, __u32 src_identity,
                                                __u32 dst_identity, __u32 rule_id, __u32 tunnel_ip_be,
                                                __u32 svc_id)
{
	skn_ct_create_ex(ct, src_identity, dst_identity, rule_id, tunnel_ip_be, 0,
	                 SKN_CT_NODEPORT | SKN_CT_VIA_STACK, svc_id);
}

/*
 * TC egress of the uplink: a backend's reply to a NodePort/external flow (after the stack undid the
 * masquerade) leaves with the frontend as its source. Everything from the node's own address (its
 * traffic, masqueraded pods, the overlay) is left alone at the cost of one compare. Returns 1 when it
 * rewrote the packet.
 */
static __always_inline int skn_nodeport_reply(struct __sk_buff *skb, __u32 l3_off,
                                              const struct skn_config *cfg)
{
	struct skn_ct_state ct = {};
	struct skn_pkt p = {};

	if (skn_parse_ipv4(skb, l3_off, &p) != SKN_PARSE_OK || p.frag || p.is_icmp_error)
		return 0;
	if (cfg && p.saddr_be == cfg->node_ip_be)
		return 0;
	if (skn_ct_lookup(&p, &ct) != SKN_CT_REPLY || !ct.entry || !(ct.entry->flags & SKN_CT_NODEPORT))
		return 0;
	return skn_lb_reply(skb, l3_off, &p, ct.entry) == 0;
}

#endif
