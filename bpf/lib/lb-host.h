/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * node → ClusterIP (and hostNetwork pods, which share the node's network namespace), translated at
 * TC on the host side. With Service load balancing on, the agent routes the Service CIDR into the
 * VXLAN device (`<service CIDR> dev skn_vxlan src <node IP>`), so the node's packets to a frontend
 * meet skn_to_vxlan, which
 *  - picks the backend (random; the flow keeps it in skn_lb_flow while it exists, so a connected UDP
 *    socket's next packet after a backend's deletion goes to a live one),
 *  - rewrites the destination to it and records the translated flow in conntrack (SKN_CT_LB and the
 *    frontend's svc_id), as the pod-originated path does (lib/lb.h),
 *  - sends it to a local backend's veth, or on through the overlay to the backend's node, where the
 *    backend's ingress policy sees "remote node" (the node sees "host" on its own node).
 * Replies are rewritten back to the frontend before the stack sees them: from a local backend in
 * skn_from_pod (lib/lb.h's reverse translation of SKN_CT_LB flows), from another node in
 * skn_from_vxlan (skn_lb_host_reply below), so the node's socket sees the ClusterIP answer.
 *
 * Why TC and not the socket hooks (connect4/sendmsg4/recvmsg4): the lab's nodes are network
 * namespaces sharing one cgroup tree, so a cgroup program would have to filter by netns cookie and
 * would see every other process of the machine; and a connected UDP socket translated at connect()
 * keeps the backend's address for good, which is exactly the stale-backend bug this design avoids
 * (here every packet is translated, so a deleted backend is replaced at the next one).
 */
#ifndef SKN_LIB_LB_HOST_H
#define SKN_LIB_LB_HOST_H

#include "common.h"
#include "conntrack.h"
#include "eth.h"
#include "ipv4.h"
#include "lb-nat.h"
#include "../maps/endpoints.h"
#include "../maps/ipcache.h"

/* What skn_lb_host_xlate decided for a node's packet to a frontend. */
enum skn_lb_host_result {
	SKN_LB_HOST_PASS = 0, /* not a frontend: the caller goes on as before */
	SKN_LB_HOST_LOCAL = 1, /* translated, backend is a pod on this node: `*ep` */
	SKN_LB_HOST_REMOTE = 2, /* translated, backend behind the overlay: `*dst` (the caller encapsulates) */
	SKN_LB_HOST_NO_BACKEND = 3, /* a frontend without a usable backend */
	SKN_LB_HOST_UNROUTABLE = 4, /* a backend that is neither a local pod nor behind a node */
	SKN_LB_HOST_ERROR = 5, /* the packet could not be rewritten */
};

/*
 * Translates the node's packet `p` (parsed at `l3_off`) if it is addressed to a Service frontend.
 * On success `p` holds the translated packet, and the flow is in conntrack.
 */
static __always_inline enum skn_lb_host_result skn_lb_host_xlate(struct __sk_buff *skb, __u32 l3_off,
                                                                 struct skn_pkt *p,
                                                                 const struct skn_endpoint **ep,
                                                                 const struct skn_ipcache_entry **dst)
{
	const struct skn_lb_svc *svc;
	const struct skn_lb_backend *be;
	const struct skn_ipcache_entry *src;
	struct skn_ct_state ct = {};
	__u32 backend_id = 0, tunnel_ip_be = 0;

	if (p->frag || p->is_icmp_error ||
	    (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP))
		return SKN_LB_HOST_PASS;
	svc = skn_lb_svc_lookup(p->daddr_be, p->dport_be, p->proto);
	if (!svc)
		return SKN_LB_HOST_PASS;
	be = skn_lb_flow_backend(p, svc,
	                         (svc->flags & SKN_LB_INT_LOCAL) ? SKN_LB_PICK_LOCAL : SKN_LB_PICK_RANDOM,
	                         &backend_id);
	if (!be)
		return SKN_LB_HOST_NO_BACKEND;
	if (skn_lb_rewrite(skb, l3_off, p->proto, 0, p->daddr_be, be->addr_be, p->dport_be,
	                   p->proto == IPPROTO_SCTP ? p->dport_be : be->port_be) < 0)
		return SKN_LB_HOST_ERROR;
	p->daddr_be = be->addr_be;
	if (p->proto != IPPROTO_SCTP)
		p->dport_be = be->port_be;

	*ep = skn_endpoint_lookup(p->daddr_be);
	*dst = skn_ipcache_lookup(p->daddr_be);
	if (!*ep) {
		if (!*dst || !(*dst)->tunnel_ip_be)
			return SKN_LB_HOST_UNROUTABLE;
		tunnel_ip_be = (*dst)->tunnel_ip_be;
	}
	if (skn_ct_lookup(p, &ct) == SKN_CT_NEW) {
		src = skn_ipcache_lookup(p->saddr_be);
		skn_ct_create(&ct, src ? src->identity : SKN_ID_HOST, *dst ? (*dst)->identity : SKN_ID_UNMANAGED,
		              0, tunnel_ip_be, 0);
		ct.entry = bpf_map_lookup_elem(&skn_conntrack2, &ct.key);
	}
	if (ct.entry && ct.entry->lb_svc_id != svc->svc_id) {
		ct.entry->lb_svc_id = svc->svc_id;
		__sync_fetch_and_or(&ct.entry->flags, SKN_CT_LB);
	}
	return *ep ? SKN_LB_HOST_LOCAL : SKN_LB_HOST_REMOTE;
}

/*
 * A reply for the node from another node (skn_from_vxlan, on its way to the stack), of a flow the
 * node sent to a frontend: its source becomes the frontend again. `ct` is the packet's lookup.
 */
static __always_inline void skn_lb_host_reply(struct __sk_buff *skb, __u32 l3_off, const struct skn_pkt *p,
                                              const struct skn_ct_state *ct)
{
	const struct skn_ct_entry *e = ct->entry;
	const struct skn_lb_revnat *rn;

	if (!e || !(e->flags & SKN_CT_LB) || p->is_icmp_error)
		return;
	/* Only the backend's side is rewritten: the packet's source is not the initiator. */
	if (ct->src_is_b == !!(e->flags & SKN_CT_INITIATOR_B))
		return;
	rn = skn_lb_revnat_get(e->lb_svc_id);
	if (!rn)
		return;
	skn_lb_rewrite(skb, l3_off, p->proto, 1, p->saddr_be, rn->addr_be, p->sport_be,
	               p->proto == IPPROTO_SCTP ? p->sport_be : rn->port_be);
}

#endif
