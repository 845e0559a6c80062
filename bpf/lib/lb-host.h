/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * node → ClusterIP (and hostNetwork pods, which share the node's network namespace), translated at
 * TC on the host side. With Service load balancing on, the agent routes the Service CIDR into the
 * VXLAN device (`<service CIDR> dev skn_vxlan src <node IP>`), so the node's packets to a frontend
 * meet skn_to_vxlan, which
 *  - picks the backend as a pod's flow would (sessionAffinity, internalTrafficPolicy Local, else at
 *    random); the flow keeps it in skn_lb_flow while it exists, so a connected UDP socket's next
 *    packet after a backend's deletion goes to a live one,
 *  - rewrites the destination to it and records the translated flow in conntrack (SKN_CT_LB and the
 *    frontend's svc_id), as the pod-originated path does (lib/lb.h),
 *  - sends it to a local backend's veth, or on through the overlay to the backend's node, where the
 *    backend's ingress policy sees "remote node" (the node sees "host" on its own node).
 * Replies are rewritten back to the frontend before the stack sees them (lib/lb.h's skn_lb_reply of
 * SKN_CT_LB flows): from a local backend in skn_from_pod, from another node in skn_from_vxlan on
 * its way to the stack, so the node's socket sees the ClusterIP answer.
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
	SKN_LB_HOST_REJECT = 6, /* a frontend without endpoints (for internalTrafficPolicy Local: here) */
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
	if (svc->count == 0 || ((svc->flags & SKN_LB_INT_LOCAL) && svc->local_count == 0))
		return SKN_LB_HOST_REJECT;
	/* lib/lb.h's pick: sessionAffinity, internalTrafficPolicy Local, else at random. */
	be = skn_lb_flow_backend(p, svc, SKN_LB_PICK_RANDOM, &backend_id);
	if (!be)
		return SKN_LB_HOST_NO_BACKEND;
	if (skn_lb_to_backend(skb, l3_off, p, be) < 0)
		return SKN_LB_HOST_ERROR;

	*ep = skn_endpoint_lookup(p->daddr_be);
	*dst = skn_ipcache_lookup(p->daddr_be);
	if (!*ep) {
		if (!*dst || !(*dst)->tunnel_ip_be)
			return SKN_LB_HOST_UNROUTABLE;
		tunnel_ip_be = (*dst)->tunnel_ip_be;
	}
	if (skn_ct_lookup(p, &ct) == SKN_CT_NEW) {
		src = skn_ipcache_lookup(p->saddr_be);
		skn_ct_create_ex(&ct, src ? src->identity : SKN_ID_HOST,
		                 *dst ? (*dst)->identity : SKN_ID_UNMANAGED, 0, tunnel_ip_be, 0, SKN_CT_LB,
		                 svc->svc_id);
	} else if (ct.entry && ct.entry->lb_svc_id != svc->svc_id) {
		/* The same 5-tuple through another frontend (a port reused after a Service change). */
		ct.entry->lb_svc_id = svc->svc_id;
		__sync_fetch_and_or(&ct.entry->flags, SKN_CT_LB);
	}
	return *ep ? SKN_LB_HOST_LOCAL : SKN_LB_HOST_REMOTE;
}

/* lo's ifindex in every network namespace (LOOPBACK_IFINDEX). */
#define SKN_LOOPBACK_IFINDEX 1

/*
 * The node's packet to a frontend without endpoints becomes the frontend's ICMP port unreachable
 * (lib/lb.h), handed to the node's stack through lo's ingress, so the socket fails at once
 * (ECONNREFUSED), as with kube-proxy's REJECT. lo's address is all zeros: so is the destination MAC,
 * or the stack would take the frame for another host's. Returns the TC action, or -1.
 */
static __always_inline int skn_lb_host_reject(struct __sk_buff *skb, const struct skn_pkt *p)
{
	__u8 zero[ETH_ALEN] = {};

	if (skn_lb_make_unreachable(skb, p) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), zero, sizeof(zero), 0) < 0)
		return -1;
	return bpf_redirect(SKN_LOOPBACK_IFINDEX, BPF_F_INGRESS);
}

#endif
