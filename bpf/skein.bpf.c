// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Skein's datapath: six TC programs sharing the pinned maps.
 *
 *   skn_from_pod     host veth, TC ingress     packets leaving a pod
 *   skn_to_pod       host veth, TC egress      packets the host stack delivers to a pod
 *   skn_from_vxlan   VXLAN device, TC ingress  packets arriving from other nodes
 *   skn_to_vxlan     VXLAN device, TC egress   host traffic towards other nodes' pods, and the
 *                                              node's traffic to Service frontends (lib/lb-host.h)
 *   skn_from_uplink  uplink, TC ingress        VXLAN for local pods, decapsulated here (encap bpf);
 *                                              native routing: unencapsulated packets for local pods;
 *                                              world → NodePort/external frontends (lib/nodeport.h)
 *   skn_to_uplink    uplink, TC egress         native routing: local pods' flows the stack routed;
 *                                              replies of NodePort/external flows (lib/nodeport.h)
 *
 * Every packet a program decides on is counted under exactly one reason (skn_from_uplink leaves
 * what is not its own uncounted; skn_to_vxlan does not count again what skn_from_pod sent).
 * Policy is consulted only for new flows. */
#include "lib/common.h"
#include "lib/settings.h"
#include "lib/drop.h"
#include "lib/eth.h"
#include "lib/arp.h"
#include "lib/ipv4.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/events.h"
#include "lib/overlay.h"
#include "lib/services.h"
#include "lib/native.h"
#include "lib/lb.h"
#include "lib/lb-host.h"
#include "lib/nodeport.h"
#include "maps/config.h"
#include "maps/decision.h"
#include "maps/endpoints.h"
#include "maps/ipcache.h"
#include "maps/metrics.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Everything known about a packet by the time its verdict is taken. */
struct skn_flow {
	struct skn_pkt pkt;
	struct skn_ct_state ct;
	__u32 src_identity;
	__u32 src_cidr;
	__u32 dst_identity;
	__u32 dst_cidr;
	__u32 rule_id;
};

static __always_inline int skn_verdict(struct __sk_buff *skb, int action, enum skn_reason reason,
                                       enum skn_dir dir, __u32 ifindex, __u32 tunnel_ip_be, __u32 tunnel_id,
                                       __u32 rule_id, __u32 peer)
{
	skn_count(skb, reason, dir);
	/* A load-time constant: the verifier removes this block in production. */
	if (skn_settings.record_decisions) {
		struct skn_decision d = {};

		d.action = action;
		d.reason = reason;
		d.dir = dir;
		d.ifindex = ifindex;
		d.tunnel_ip_be = tunnel_ip_be;
		d.tunnel_id = tunnel_id;
		d.rule_id = rule_id;
		d.peer_identity = peer;
		skn_decision_record(&d);
	}
	return action;
}

static __always_inline int skn_drop(struct __sk_buff *skb, enum skn_reason reason, enum skn_dir dir)
{
	return skn_verdict(skb, TC_ACT_SHOT, reason, dir, 0, 0, 0, 0, 0);
}

/* Drops a packet and tells the monitor why, with both identities. */
static __always_inline int skn_drop_flow(struct __sk_buff *skb, enum skn_reason reason, enum skn_dir dir,
                                         const struct skn_flow *f)
{
	skn_emit(skb, SKN_EV_DROP, reason, dir, &f->pkt, f->src_identity, f->dst_identity, 0);
	return skn_verdict(skb, TC_ACT_SHOT, reason, dir, 0, 0, 0, 0,
	                   dir == SKN_DIR_EGRESS ? f->dst_identity : f->src_identity);
}

/* Drops a new flow that policy did not allow: a non-first fragment cannot be judged (no ports),
 * anything else was denied. */
static __always_inline int skn_drop_denied(struct __sk_buff *skb, enum skn_dir dir, const struct skn_flow *f)
{
	return skn_drop_flow(skb, f->pkt.frag ? SKN_R_DROP_FRAGMENT : SKN_R_DROP_POLICY, dir, f);
}

static __always_inline int skn_verdict_events(void)
{
	const struct skn_config *cfg = skn_config_get();

	return cfg && (cfg->flags & SKN_CFG_VERDICT_EVENTS);
}

/* Ingress policy of a local pod `dst_ip_be` for a new flow from the peer in `f`. */
static __always_inline int skn_ingress_allows(struct __sk_buff *skb, struct skn_flow *f,
                                              const struct skn_ipcache_entry *dst)
{
	__u32 rule = 0;

	if (!dst || !(dst->flags & SKN_IPC_ENFORCE_INGRESS))
		return 1;
	if (f->pkt.frag)
		return 0;
	if (!skn_policy_allows(f->pkt.daddr_be, SKN_DIR_INGRESS, f->src_identity, f->src_cidr, &f->pkt,
	                       &rule))
		return 0;
	f->rule_id = rule;
	skn_count_policy_allowed(SKN_DIR_INGRESS);
	if (skn_verdict_events())
		skn_emit(skb, SKN_EV_VERDICT, SKN_R_FWD_DELIVER, SKN_DIR_INGRESS, &f->pkt, f->src_identity,
		         f->dst_identity, rule);
	return 1;
}

static __always_inline int skn_egress_allows(struct __sk_buff *skb, struct skn_flow *f,
                                             const struct skn_ipcache_entry *src)
{
	__u32 rule = 0;

	if (!src || !(src->flags & SKN_IPC_ENFORCE_EGRESS))
		return 1;
	if (f->pkt.frag)
		return 0;
	if (!skn_policy_allows(f->pkt.saddr_be, SKN_DIR_EGRESS, f->dst_identity, f->dst_cidr, &f->pkt, &rule))
		return 0;
	f->rule_id = rule;
	skn_count_policy_allowed(SKN_DIR_EGRESS);
	if (skn_verdict_events())
		skn_emit(skb, SKN_EV_VERDICT, SKN_R_FWD_STACK, SKN_DIR_EGRESS, &f->pkt, f->src_identity,
		         f->dst_identity, rule);
	return 1;
}

static __always_inline __u16 skn_eth_proto(struct __sk_buff *skb, int *ok)
{
	__u16 proto = 0;

	*ok = bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) == 0;
	return proto;
}

static __always_inline int skn_handle_arp(struct __sk_buff *skb)
{
	struct skn_arp_eth_ipv4 *arp = skn_arp_parse(skb);
	const struct skn_endpoint *ep;

	if (!arp)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	if (!skn_arp_is_gateway_request(arp))
		return skn_drop(skb, SKN_R_DROP_ARP, SKN_DIR_EGRESS);
	ep = skn_endpoint_lookup(arp->spa);
	if (!ep || ep->ifindex != skb->ifindex)
		return skn_drop(skb, SKN_R_DROP_SPOOFED, SKN_DIR_EGRESS);
	skn_arp_make_reply(skb, arp, ep->host_mac);
	/* Back out of the same veth, into the pod. */
	return skn_verdict(skb, bpf_redirect(skb->ifindex, 0), SKN_R_ARP_REPLY, SKN_DIR_EGRESS, skb->ifindex,
	                   0, 0, 0, 0);
}

/* Into a pod on this node: its veth's MAC as the source, straight into its namespace. */
static __always_inline int skn_deliver_local(struct __sk_buff *skb, const struct skn_endpoint *ep,
                                             enum skn_dir dir, __u32 rule_id, __u32 peer)
{
	if (skn_eth_rewrite(skb, ep->host_mac, ep->mac) < 0)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, dir);
	return skn_verdict(skb, bpf_redirect_peer(ep->ifindex, 0), SKN_R_FWD_LOCAL, dir, ep->ifindex, 0, 0,
	                   rule_id, peer);
}

/* To another node without encapsulation (native routing): by the kernel's FIB, towards `node_ip_be`'s
 * pods; what the FIB cannot send directly goes to the stack. */
static __always_inline int skn_route_native(struct __sk_buff *skb, const struct skn_flow *f, __u32 node_ip_be,
                                            const struct skn_config *cfg)
{
	__u32 ifindex = 0;
	int action;

	/* skn_to_uplink must not take this packet for one the stack routed. */
	skb->mark = SKN_MARK_ENCAPPED;
	action = skn_native_route(skb, &f->pkt, cfg ? cfg->vxlan_ifindex : 0, &ifindex);
	if (action == SKN_NATIVE_TO_STACK) {
		skb->mark = 0;
		return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, node_ip_be, 0,
		                   f->rule_id, f->dst_identity);
	}
	return skn_verdict(skb, action, SKN_R_FWD_NATIVE, SKN_DIR_EGRESS, ifindex, node_ip_be, 0, f->rule_id,
	                   f->dst_identity);
}

/* To another node: tunnel key (the VNI carries the source identity), inner MACs, the VXLAN device.
 * With native routing, unencapsulated instead. */
static __always_inline int skn_encap(struct __sk_buff *skb, const struct skn_flow *f, __u32 tunnel_ip_be,
                                     __u32 identity)
{
	const struct skn_config *cfg = skn_config_get();

	/* A load-time constant: the verifier keeps one of the two paths. */
	if (skn_settings.routing_native)
		return skn_route_native(skb, f, tunnel_ip_be, cfg);

	if (!cfg || !cfg->vxlan_ifindex)
		return skn_drop_flow(skb, SKN_R_DROP_NO_TUNNEL, SKN_DIR_EGRESS, f);
	if (cfg->uplink_ifindex) {
		struct bpf_redir_neigh nh = {};
		int action;

		if (skn_vxlan_encap(skb, cfg->node_ip_be, tunnel_ip_be, skn_config_vxlan_port_be(cfg),
		                    identity, cfg->vxlan_mac) < 0)
			return skn_drop_flow(skb, SKN_R_DROP_TUNNEL_KEY, SKN_DIR_EGRESS, f);
		if (cfg->flags & SKN_CFG_TUNNEL_ONLINK) {
			/* The remote node is a neighbour: no route lookup, only the neighbour entry. */
			nh.nh_family = SKN_AF_INET;
			nh.ipv4_nh = tunnel_ip_be;
			action = bpf_redirect_neigh(cfg->uplink_ifindex, &nh, sizeof(nh), 0);
		} else {
			action = bpf_redirect_neigh(cfg->uplink_ifindex, NULL, 0, 0);
		}
		return skn_verdict(skb, action, SKN_R_FWD_OVERLAY, SKN_DIR_EGRESS, cfg->uplink_ifindex,
		                   tunnel_ip_be, identity, f->rule_id, f->dst_identity);
	}
	if (skn_tunnel_set(skb, tunnel_ip_be, identity) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_TUNNEL_KEY, SKN_DIR_EGRESS, f);
	if (skn_overlay_set_macs(skb, cfg->vxlan_mac, tunnel_ip_be) < 0)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	skb->mark = SKN_MARK_ENCAPPED;
	return skn_verdict(skb, bpf_redirect(cfg->vxlan_ifindex, 0), SKN_R_FWD_OVERLAY, SKN_DIR_EGRESS,
	                   cfg->vxlan_ifindex, tunnel_ip_be, identity, f->rule_id, f->dst_identity);
}

/* A Service frontend without endpoints: the packet becomes the ICMP port unreachable the client's
 * socket reports as ECONNREFUSED, sent straight back into the pod. */
static __always_inline int skn_lb_reject(struct __sk_buff *skb, const struct skn_flow *f,
                                         const struct skn_endpoint *ep)
{
	if (skn_lb_make_unreachable(skb, &f->pkt) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS, f);
	return skn_verdict(skb, bpf_redirect_peer(ep->ifindex, 0), SKN_R_LB_REJECT, SKN_DIR_EGRESS,
	                   ep->ifindex, 0, 0, 0, 0);
}

SEC("tc")
int skn_from_pod(struct __sk_buff *skb)
{
	const struct skn_endpoint *src_ep, *dst_ep;
	const struct skn_ipcache_entry *src, *dst;
	struct skn_lb_xlate lbx = {};
	enum skn_lb_result lb;
	struct skn_flow f = {};
	enum skn_ct_status ct;
	__u32 tunnel_ip_be = 0;
	int ok;
	__u16 proto = skn_eth_proto(skb, &ok);

	if (!ok)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	if (proto == bpf_htons(ETH_P_ARP))
		return skn_handle_arp(skb);
	if (proto != bpf_htons(ETH_P_IP))
		return skn_drop(skb, SKN_R_DROP_UNSUPPORTED, SKN_DIR_EGRESS);
	if (skn_parse_ipv4(skb, sizeof(struct ethhdr), &f.pkt) != SKN_PARSE_OK)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);

	src_ep = skn_endpoint_lookup(f.pkt.saddr_be);
	if (!src_ep || src_ep->ifindex != skb->ifindex) {
		src = skn_ipcache_lookup(f.pkt.saddr_be);
		f.src_identity = src ? src->identity : SKN_ID_UNMANAGED;
		return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_EGRESS, &f);
	}

	/* To a Service frontend: to a backend from here on (lib/lb.h). */
	lb = skn_lb_from_pod(skb, &f.pkt, &lbx);
	if (lb == SKN_LB_REJECT)
		return skn_lb_reject(skb, &f, src_ep);
	if (lb == SKN_LB_NO_BACKEND)
		return skn_drop_flow(skb, SKN_R_DROP_NO_BACKEND, SKN_DIR_EGRESS, &f);
	if (lb == SKN_LB_ERROR)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS, &f);

	ct = skn_ct_lookup(&f.pkt, &f.ct);
	/* Conntrack keys a hairpinned flow by its rewritten source; identity and policy are the client's. */
	if (lbx.hairpin)
		f.pkt.saddr_be = lbx.client_be;
	if (ct == SKN_CT_ESTABLISHED || ct == SKN_CT_REPLY) {
		/* A flow the stack translated (a Service): back through it, to reverse the translation. */
		if (skn_ct_via_stack(&f.ct))
			return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, 0, 0, 0, 0);
		/* A backend's reply to a flow translated here: from the frontend again. */
		if (skn_lb_is_reply(ct, &f.ct) &&
		    skn_lb_reply(skb, sizeof(struct ethhdr), &f.pkt, f.ct.entry) < 0)
			return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS, &f);
		/* Established: the conntrack entry knows where the other side lives. */
		tunnel_ip_be = skn_ct_dst_tunnel(&f.ct);
		if (tunnel_ip_be) {
			/* The VNI carries the pod's identity now, not the one it had when the flow began:
			 * a receiver that lost its conntrack entry decides again with current labels. */
			src = skn_ipcache_lookup(f.pkt.saddr_be);
			return skn_encap(skb, &f, tunnel_ip_be,
			                 src ? src->identity : skn_ct_src_identity(&f.ct));
		}
		dst_ep = skn_endpoint_lookup(f.pkt.daddr_be);
		if (dst_ep)
			return skn_deliver_local(skb, dst_ep, SKN_DIR_EGRESS, 0, 0);
		return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, 0, 0, 0, 0);
	}

	if (ct == SKN_CT_RELATED && skn_ct_related_via_stack(&f.pkt))
		return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, 0, 0, 0, 0);
	/* An error about a flow translated here: about the frontend, for the client's socket. */
	if (ct == SKN_CT_RELATED && skn_lb_related(skb, sizeof(struct ethhdr), &f.pkt) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS, &f);

	/* A new flow (or an ICMP error about one): identities, policy, then remember it. */
	src = skn_ipcache_lookup(f.pkt.saddr_be);
	f.src_identity = src ? src->identity : SKN_ID_UNMANAGED;
	f.src_cidr = src ? src->cidr_identity : 0;
	dst_ep = skn_endpoint_lookup(f.pkt.daddr_be);
	dst = skn_ipcache_lookup(f.pkt.daddr_be);
	f.dst_identity = dst ? dst->identity : SKN_ID_WORLD;
	f.dst_cidr = dst ? dst->cidr_identity : 0;
	if (!dst_ep && dst)
		tunnel_ip_be = dst->tunnel_ip_be;

	if (ct == SKN_CT_NEW) {
		/* To a Service, egress is judged on the backend once the stack translated the packet. */
		if (!skn_service_dst(f.pkt.daddr_be) && !skn_egress_allows(skb, &f, src))
			return skn_drop_denied(skb, SKN_DIR_EGRESS, &f);
		/* redirect_peer skips the destination's host veth, so its ingress is checked here. */
		if (dst_ep && !skn_ingress_allows(skb, &f, dst))
			return skn_drop_denied(skb, SKN_DIR_INGRESS, &f);
		if (!f.pkt.is_icmp_error)
			skn_ct_create_ex(
				&f.ct, f.src_identity, f.dst_identity, f.rule_id, tunnel_ip_be, 0,
				lb == SKN_LB_XLATED ? SKN_CT_LB | (lbx.hairpin ? SKN_CT_LB_HAIRPIN : 0) : 0,
				lb == SKN_LB_XLATED ? lbx.svc_id : 0);
	}

	if (dst_ep)
		return skn_deliver_local(skb, dst_ep, SKN_DIR_EGRESS, f.rule_id, f.dst_identity);
	if (tunnel_ip_be)
		return skn_encap(skb, &f, tunnel_ip_be, f.src_identity);
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, 0, 0, f.rule_id,
	                   f.dst_identity);
}

SEC("tc")
int skn_to_pod(struct __sk_buff *skb)
{
	const struct skn_ipcache_entry *src, *dst;
	struct skn_flow f = {};
	enum skn_ct_status ct;
	int ok;
	__u16 proto = skn_eth_proto(skb, &ok);

	if (!ok)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS);
	if (proto != bpf_htons(ETH_P_IP)) {
		/* ARP replies from the responder, IPv6 the kernel emits on the veth: not ours. */
		return skn_verdict(skb, TC_ACT_OK, SKN_R_PASS_NON_IP, SKN_DIR_INGRESS, 0, 0, 0, 0, 0);
	}
	if (skn_parse_ipv4(skb, sizeof(struct ethhdr), &f.pkt) != SKN_PARSE_OK)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS);

	ct = skn_ct_lookup(&f.pkt, &f.ct);
	/* A host backend's reply (a Service whose endpoint is this node's address, as `kubernetes` is on
	 * a control-plane node) to a flow from_pod translated: the frontend again, as in from_pod. */
	if (skn_lb_is_reply(ct, &f.ct) && skn_lb_reply(skb, sizeof(struct ethhdr), &f.pkt, f.ct.entry) < 0)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS);
	if (ct == SKN_CT_NEW) {
		src = skn_ipcache_lookup(f.pkt.saddr_be);
		f.src_identity = src ? src->identity : SKN_ID_WORLD;
		f.src_cidr = src ? src->cidr_identity : 0;
		dst = skn_ipcache_lookup(f.pkt.daddr_be);
		f.dst_identity = dst ? dst->identity : SKN_ID_UNMANAGED;
		f.dst_cidr = dst ? dst->cidr_identity : 0;
		/* A local pod's flow reaches this hook only translated by the stack (a Service): its
		 * egress policy is judged here, on the backend (lib/services.h). */
		if (!skn_egress_allows(skb, &f, src))
			return skn_drop_denied(skb, SKN_DIR_EGRESS, &f);
		/* The node's own traffic (kubelet probes) is always allowed. */
		if (f.src_identity != SKN_ID_HOST && !skn_ingress_allows(skb, &f, dst))
			return skn_drop_denied(skb, SKN_DIR_INGRESS, &f);
		if (!f.pkt.is_icmp_error) {
			skn_ct_create(&f.ct, f.src_identity, f.dst_identity, f.rule_id, 0, 0);
			skn_ct_set_via_stack(&f.ct);
		}
	}
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_DELIVER, SKN_DIR_INGRESS, 0, 0, 0, f.rule_id,
	                   f.src_identity);
}

/*
 * A packet from another node, for a pod here or for this node, whose inner IPv4 header starts at
 * `l3_off`: the source identity from the VNI, the source checked against the node that sent it,
 * ingress policy for new flows, then delivery. `decap`: the packet still carries its outer headers
 * (it came straight from the uplink); they are removed before delivery to a pod, and a packet for
 * the node itself is left untouched for the VXLAN device.
 */
static __always_inline int skn_from_overlay(struct __sk_buff *skb, __u32 l3_off, __u32 outer_src_be,
                                            __u32 vni, int decap)
{
	const struct skn_ipcache_entry *src, *dst;
	const struct skn_endpoint *dst_ep;
	struct skn_flow f = {};
	enum skn_ct_status ct;

	if (skn_parse_ipv4(skb, l3_off, &f.pkt) != SKN_PARSE_OK)
		return decap ? TC_ACT_OK : skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS);
	f.src_identity = vni & SKN_ID_MAX;
	if (f.src_identity == SKN_ID_ANY)
		f.src_identity = SKN_ID_UNMANAGED;

	dst_ep = skn_endpoint_lookup(f.pkt.daddr_be);
	if (!dst_ep && decap)
		return TC_ACT_OK;
	ct = skn_ct_lookup(&f.pkt, &f.ct);
	/* Established, and from the node the flow was set up with: straight in. Anything else takes the
	 * slow path, which checks the source against the ipcache. */
	if ((ct == SKN_CT_ESTABLISHED || ct == SKN_CT_REPLY) && skn_ct_src_tunnel(&f.ct) == outer_src_be) {
		if (!dst_ep)
			goto to_stack;
		/* The reply of a flow the stack translated here (a Service): through the stack, which
		 * reverses the translation; from the uplink, through the VXLAN device first. */
		if (skn_ct_via_stack(&f.ct)) {
			if (decap)
				return TC_ACT_OK;
			goto to_stack;
		}
		goto deliver;
	}

	/* Only another node of the cluster may send overlay packets: the VNI is trusted from nodes
	 * alone (the conntrack fast path above admits only a node a flow was set up with). */
	src = skn_ipcache_lookup(outer_src_be);
	if (!src || src->identity != SKN_ID_REMOTE_NODE)
		return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_INGRESS, &f);
	src = skn_ipcache_lookup(f.pkt.saddr_be);
	f.src_cidr = src ? src->cidr_identity : 0;
	/* The source address must live behind the node that sent the packet. */
	if (src && src->tunnel_ip_be && src->tunnel_ip_be != outer_src_be)
		return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_INGRESS, &f);
	if (!dst_ep)
		goto to_stack;
	dst = skn_ipcache_lookup(f.pkt.daddr_be);
	f.dst_identity = dst ? dst->identity : SKN_ID_UNMANAGED;

	if (ct == SKN_CT_NEW) {
		if (!skn_ingress_allows(skb, &f, dst))
			return skn_drop_denied(skb, SKN_DIR_INGRESS, &f);
		if (!f.pkt.is_icmp_error)
			skn_ct_create(&f.ct, f.src_identity, f.dst_identity, f.rule_id, outer_src_be, 1);
	} else if (ct == SKN_CT_RELATED && skn_ct_related_via_stack(&f.pkt)) {
		if (decap)
			return TC_ACT_OK;
		goto to_stack;
	}
deliver:
	if (decap && skn_vxlan_decap(skb) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	/* A remote backend's reply to a flow a pod here opened through a frontend. */
	if (skn_lb_is_reply(ct, &f.ct) && skn_lb_reply(skb, sizeof(struct ethhdr), &f.pkt, f.ct.entry) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	if (ct == SKN_CT_RELATED && skn_lb_related(skb, sizeof(struct ethhdr), &f.pkt) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	bpf_skb_change_type(skb, SKN_PACKET_HOST);
	return skn_deliver_local(skb, dst_ep, SKN_DIR_INGRESS, f.rule_id, f.src_identity);

to_stack:
	/* For the node itself (replies to its own traffic towards remote pods, and to the frontends it
	 * reached through the overlay: those get the frontend back as their source). */
	if (!decap && skn_lb_is_reply(ct, &f.ct) && skn_lb_reply(skb, l3_off, &f.pkt, f.ct.entry) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	bpf_skb_change_type(skb, SKN_PACKET_HOST);
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_INGRESS, 0, 0, 0, 0, f.src_identity);
}

SEC("tc")
int skn_from_vxlan(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	int ok;
	__u16 proto;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return skn_drop(skb, SKN_R_DROP_TUNNEL_KEY, SKN_DIR_INGRESS);
	proto = skn_eth_proto(skb, &ok);
	if (!ok)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS);
	if (proto != bpf_htons(ETH_P_IP))
		return skn_drop(skb, SKN_R_DROP_UNSUPPORTED, SKN_DIR_INGRESS);
	return skn_from_overlay(skb, sizeof(struct ethhdr), bpf_htonl(key.remote_ipv4), key.tunnel_id, 0);
}

/* world → NodePort/external frontend (lib/nodeport.h). Untouched and uncounted when it is not. */
static __always_inline int skn_nodeport_ingress(struct __sk_buff *skb)
{
	const struct skn_ipcache_entry *src, *dst;
	struct skn_flow f = {};
	__u32 svc_id = 0;
	int ok;
	__u16 proto = skn_eth_proto(skb, &ok);

	if (!ok || proto != bpf_htons(ETH_P_IP) ||
	    skn_parse_ipv4(skb, sizeof(struct ethhdr), &f.pkt) != SKN_PARSE_OK)
		return TC_ACT_OK;
	switch (skn_nodeport_xlate(skb, sizeof(struct ethhdr), &f.pkt, &f.ct, &svc_id)) {
	case SKN_NP_PASS:
		return TC_ACT_OK;
	case SKN_NP_NO_BACKEND:
		return skn_drop_flow(skb, SKN_R_DROP_NO_BACKEND, SKN_DIR_INGRESS, &f);
	case SKN_NP_REJECT:
		/* The frontend's ICMP port unreachable, back out of the uplink to the client. */
		if (skn_lb_make_unreachable(skb, &f.pkt) < 0)
			return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
		return skn_verdict(skb, bpf_redirect(skb->ifindex, 0), SKN_R_LB_REJECT, SKN_DIR_INGRESS,
		                   skb->ifindex, 0, 0, 0, 0);
	case SKN_NP_ERROR:
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	case SKN_NP_NEW_LOCAL:
		/* The client's own address reaches the backend: its ingress policy is judged here, against
		 * the client's identity (world, or its ipBlock's), before the entry exists. */
		src = skn_ipcache_lookup(f.pkt.saddr_be);
		f.src_identity = src ? src->identity : SKN_ID_WORLD;
		f.src_cidr = src ? src->cidr_identity : 0;
		dst = skn_ipcache_lookup(f.pkt.daddr_be);
		f.dst_identity = dst ? dst->identity : SKN_ID_UNMANAGED;
		if (!skn_ingress_allows(skb, &f, dst))
			return skn_drop_denied(skb, SKN_DIR_INGRESS, &f);
		skn_nodeport_record(&f.ct, f.src_identity, f.dst_identity, f.rule_id, 0, svc_id);
		break;
	case SKN_NP_TRANSLATED:
		/* Cluster: the backend sees the node after the masquerade, and judges that itself. */
		if (!f.ct.entry) {
			dst = skn_ipcache_lookup(f.pkt.daddr_be);
			skn_nodeport_record(&f.ct, SKN_ID_WORLD, dst ? dst->identity : SKN_ID_UNMANAGED, 0, 0,
			                    svc_id);
		}
		break;
	}
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_INGRESS, 0, 0, 0, f.rule_id,
	                   f.src_identity);
}

/*
 * Native routing, TC ingress of the uplink: an unencapsulated packet for the node itself. Only a
 * remote pod's reply to the node's own flow through a frontend (lib/lb-host.h) is Skein's: it gets the
 * frontend back as its source before the stack sees it (from_overlay does the same for VXLAN).
 * Returns -1 for everything else (the caller goes on).
 */
static __always_inline int skn_native_to_host(struct __sk_buff *skb, struct skn_flow *f)
{
	const struct skn_ipcache_entry *src = skn_ipcache_lookup(f->pkt.saddr_be);

	if (!src || !src->tunnel_ip_be || skn_ct_lookup(&f->pkt, &f->ct) != SKN_CT_REPLY ||
	    !skn_lb_is_reply(SKN_CT_REPLY, &f->ct))
		return -1;
	f->src_identity = src->identity;
	if (!skn_native_from_node(skb, src->tunnel_ip_be))
		return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_INGRESS, f);
	if (skn_lb_reply(skb, sizeof(struct ethhdr), &f->pkt, f->ct.entry) < 0)
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, f);
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_INGRESS, 0, 0, 0, 0, f->src_identity);
}

/*
 * Native routing, TC ingress of the uplink: an unencapsulated packet for a pod here. There is no VNI:
 * the source identity comes from the ipcache, by the source address, and the address must live
 * behind the node the frame came from (its previous hop, lib/native.h): a remote pod's address from
 * its own node, never this node's addresses or pods from outside. Then conntrack, ingress policy for
 * new flows, delivery. Packets of flows the stack translated here (Services) go on to the stack.
 * Returns -1 for a packet that is not for a local pod (the caller goes on).
 */
static __always_inline int skn_from_native(struct __sk_buff *skb)
{
	const struct skn_ipcache_entry *src, *dst;
	const struct skn_endpoint *dst_ep;
	struct skn_flow f = {};
	enum skn_ct_status ct;
	int ok;
	__u16 proto = skn_eth_proto(skb, &ok);

	if (!ok || proto != bpf_htons(ETH_P_IP) ||
	    skn_parse_ipv4(skb, sizeof(struct ethhdr), &f.pkt) != SKN_PARSE_OK)
		return -1;
	dst_ep = skn_endpoint_lookup(f.pkt.daddr_be);
	if (!dst_ep)
		return skn_native_to_host(skb, &f);
	src = skn_ipcache_lookup(f.pkt.saddr_be);
	f.src_identity = src ? src->identity : SKN_ID_WORLD;
	f.src_cidr = src ? src->cidr_identity : 0;
	if (src && src->tunnel_ip_be) {
		if (!skn_native_from_node(skb, src->tunnel_ip_be))
			return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_INGRESS, &f);
	} else if (src && src->identity != SKN_ID_WORLD) {
		/* This node, its pods or its pod CIDR, from outside. */
		return skn_drop_flow(skb, SKN_R_DROP_SPOOFED, SKN_DIR_INGRESS, &f);
	}

	ct = skn_ct_lookup(&f.pkt, &f.ct);
	if (ct == SKN_CT_ESTABLISHED || ct == SKN_CT_REPLY) {
		/* The reply of a flow the stack translated here (a Service): through the stack. */
		if (skn_ct_via_stack(&f.ct))
			return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_INGRESS, 0, 0, 0, 0,
			                   f.src_identity);
		/* A remote backend's reply to a flow a pod here opened through a frontend. */
		if (skn_lb_is_reply(ct, &f.ct) &&
		    skn_lb_reply(skb, sizeof(struct ethhdr), &f.pkt, f.ct.entry) < 0)
			return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
		return skn_deliver_local(skb, dst_ep, SKN_DIR_INGRESS, 0, f.src_identity);
	}
	if (ct == SKN_CT_RELATED && skn_ct_related_via_stack(&f.pkt))
		return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_INGRESS, 0, 0, 0, 0,
		                   f.src_identity);
	dst = skn_ipcache_lookup(f.pkt.daddr_be);
	f.dst_identity = dst ? dst->identity : SKN_ID_UNMANAGED;
	if (ct == SKN_CT_NEW) {
		if (!skn_ingress_allows(skb, &f, dst))
			return skn_drop_denied(skb, SKN_DIR_INGRESS, &f);
		if (!f.pkt.is_icmp_error)
			skn_ct_create(&f.ct, f.src_identity, f.dst_identity, f.rule_id,
			              src ? src->tunnel_ip_be : 0, 1);
	} else if (ct == SKN_CT_RELATED && skn_lb_related(skb, sizeof(struct ethhdr), &f.pkt) < 0) {
		return skn_drop_flow(skb, SKN_R_DROP_MALFORMED, SKN_DIR_INGRESS, &f);
	}
	return skn_deliver_local(skb, dst_ep, SKN_DIR_INGRESS, f.rule_id, f.src_identity);
}

/*
 * TC ingress of the uplink. When the datapath encapsulates itself, VXLAN for a pod on this node is
 * decapsulated here and handed to the pod, skipping the UDP socket and the VXLAN device. With native
 * routing, an unencapsulated packet for a local pod is delivered (skn_from_native). With Service load
 * balancing on (the agent attaches this program then too), a packet for a NodePort or external
 * frontend is translated (lib/nodeport.h). Everything else (other traffic, VXLAN for the node
 * itself) goes on to the stack untouched and uncounted.
 */
SEC("tc")
int skn_from_uplink(struct __sk_buff *skb)
{
	const struct skn_config *cfg = skn_config_get();
	struct skn_vxlan_rx rx;

	if (cfg && cfg->uplink_ifindex &&
	    skn_vxlan_rx_parse(skb, cfg->node_ip_be, skn_config_vxlan_port_be(cfg), &rx))
		return skn_from_overlay(skb, sizeof(struct ethhdr) + sizeof(struct skn_vxlan_encap),
		                        rx.outer_saddr_be, rx.vni, 1);
	/* A node routing natively still takes VXLAN from nodes that encapsulate (above). */
	if (skn_settings.routing_native) {
		int verdict = skn_from_native(skb);

		if (verdict >= 0)
			return verdict;
	}
	return skn_nodeport_ingress(skb);
	return TC_ACT_OK;
}

/*
 * A local pod's packet the host stack routed into the overlay, which happens only to a flow the
 * stack translated (a Service): conntrack remembers the flow so that its replies go back through
 * the stack, and a new flow is judged by the pod's egress policy on the translated destination.
 * Returns -1 to go on, or the verdict when policy denies the flow.
 */
static __always_inline int skn_stack_to_overlay(struct __sk_buff *skb, const struct skn_pkt *p,
                                                const struct skn_ipcache_entry *src,
                                                const struct skn_ipcache_entry *dst)
{
	struct skn_flow f = {};
	enum skn_ct_status ct;

	f.pkt = *p;
	ct = skn_ct_lookup(&f.pkt, &f.ct);
	if (ct == SKN_CT_ESTABLISHED || ct == SKN_CT_REPLY)
		skn_ct_set_via_stack(&f.ct);
	if (ct != SKN_CT_NEW)
		return -1;
	f.src_identity = src->identity;
	f.src_cidr = src->cidr_identity;
	f.dst_identity = dst->identity;
	f.dst_cidr = dst->cidr_identity;
	if (!skn_egress_allows(skb, &f, src))
		return skn_drop_denied(skb, SKN_DIR_EGRESS, &f);
	if (!f.pkt.is_icmp_error) {
		skn_ct_create(&f.ct, f.src_identity, f.dst_identity, f.rule_id, dst->tunnel_ip_be, 0);
		skn_ct_set_via_stack(&f.ct);
	}
	return -1;
}

SEC("tc")
int skn_to_vxlan(struct __sk_buff *skb)
{
	const struct skn_ipcache_entry *src, *dst = NULL;
	const struct skn_endpoint *ep = NULL;
	const struct skn_config *cfg;
	struct skn_pkt p = {};
	__u32 identity;
	int ok;
	__u16 proto;

	if (skb->mark == SKN_MARK_ENCAPPED) {
		/* from_pod already set the key and counted the packet. */
		skb->mark = 0;
		return TC_ACT_OK;
	}
	proto = skn_eth_proto(skb, &ok);
	if (!ok)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	if (proto != bpf_htons(ETH_P_IP))
		return skn_drop(skb, SKN_R_DROP_UNSUPPORTED, SKN_DIR_EGRESS);
	if (skn_parse_ipv4(skb, sizeof(struct ethhdr), &p) != SKN_PARSE_OK)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	/* The packet is only past netfilter's postrouting here: the NodePort masquerade mark is done. */
	if (skb->mark == SKN_MARK_NODEPORT_SNAT)
		skb->mark = 0;

	switch (skn_lb_host_xlate(skb, sizeof(struct ethhdr), &p, &ep, &dst)) {
	case SKN_LB_HOST_PASS:
		dst = skn_ipcache_lookup(p.daddr_be);
		break;
	case SKN_LB_HOST_LOCAL:
		/* The node's packet to a frontend with a backend here: into the backend's veth. */
		if (skn_eth_rewrite(skb, ep->host_mac, ep->mac) < 0)
			return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
		return skn_verdict(skb, bpf_redirect(ep->ifindex, 0), SKN_R_FWD_LOCAL, SKN_DIR_EGRESS,
		                   ep->ifindex, 0, 0, 0, dst ? dst->identity : 0);
	case SKN_LB_HOST_REMOTE:
		break;
	case SKN_LB_HOST_NO_BACKEND:
		return skn_drop(skb, SKN_R_DROP_NO_BACKEND, SKN_DIR_EGRESS);
	case SKN_LB_HOST_REJECT: {
		int action = skn_lb_host_reject(skb, &p);

		if (action < 0)
			return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
		return skn_verdict(skb, action, SKN_R_LB_REJECT, SKN_DIR_EGRESS, SKN_LOOPBACK_IFINDEX, 0, 0,
		                   0, 0);
	}
	case SKN_LB_HOST_UNROUTABLE:
		return skn_drop(skb, SKN_R_DROP_NO_TUNNEL, SKN_DIR_EGRESS);
	case SKN_LB_HOST_ERROR:
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	}
	cfg = skn_config_get();
	if (!dst || !dst->tunnel_ip_be || !cfg)
		return skn_drop(skb, SKN_R_DROP_NO_TUNNEL, SKN_DIR_EGRESS);
	src = skn_ipcache_lookup(p.saddr_be);
	/* To the receiver, this node is a remote node. */
	identity = src ? src->identity : SKN_ID_WORLD;
	if (identity == SKN_ID_HOST)
		identity = SKN_ID_REMOTE_NODE;
	/* A local pod's packet: a flow the stack translated (a Service). */
	if (src && skn_endpoint_lookup(p.saddr_be)) {
		int verdict = skn_stack_to_overlay(skb, &p, src, dst);

		if (verdict >= 0)
			return verdict;
	}
	if (skn_tunnel_set(skb, dst->tunnel_ip_be, identity) < 0)
		return skn_drop(skb, SKN_R_DROP_TUNNEL_KEY, SKN_DIR_EGRESS);
	if (skn_overlay_set_macs(skb, cfg->vxlan_mac, dst->tunnel_ip_be) < 0)
		return skn_drop(skb, SKN_R_DROP_MALFORMED, SKN_DIR_EGRESS);
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_OVERLAY, SKN_DIR_EGRESS, 0, dst->tunnel_ip_be, identity,
	                   0, dst->identity);
}

/*
 * Native routing, TC egress of the uplink: a local pod's packet the host stack routed out, which
 * happens only to a flow the stack translated (a Service) or one from_pod left to it. Conntrack
 * remembers the flow so that its replies go back through the stack, and a new flow is judged by the
 * pod's egress policy on the translated destination. Everything else passes uncounted.
 */
static __always_inline int skn_native_stack_egress(struct __sk_buff *skb)
{
	const struct skn_ipcache_entry *src, *dst;
	struct skn_pkt p = {};
	int ok, verdict;
	__u16 proto;

	proto = skn_eth_proto(skb, &ok);
	if (!ok || proto != bpf_htons(ETH_P_IP) ||
	    skn_parse_ipv4(skb, sizeof(struct ethhdr), &p) != SKN_PARSE_OK)
		return TC_ACT_OK;
	if (!skn_endpoint_lookup(p.saddr_be))
		return TC_ACT_OK;
	src = skn_ipcache_lookup(p.saddr_be);
	dst = skn_ipcache_lookup(p.daddr_be);
	if (!src || !dst)
		return TC_ACT_OK;
	verdict = skn_stack_to_overlay(skb, &p, src, dst);
	if (verdict >= 0)
		return verdict;
	return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_NATIVE, SKN_DIR_EGRESS, 0, dst->tunnel_ip_be, 0, 0,
	                   dst->identity);
}

/*
 * TC egress of the uplink (native routing, or Service load balancing on): replies of NodePort/external
 * flows leave with the frontend as their source; with native routing, a local pod's flow the stack
 * routed (a Service kube-proxy translated) is remembered like skn_to_vxlan does. Everything else is
 * untouched and uncounted.
 */
SEC("tc")
int skn_to_uplink(struct __sk_buff *skb)
{
	int ok;
	__u16 proto;

	if (skb->mark == SKN_MARK_ENCAPPED) {
		/* from_pod routed it natively and counted it. */
		skb->mark = 0;
		return TC_ACT_OK;
	}
	/* Past netfilter's postrouting: the NodePort masquerade mark is done. */
	if (skb->mark == SKN_MARK_NODEPORT_SNAT)
		skb->mark = 0;
	proto = skn_eth_proto(skb, &ok);
	if (!ok || proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (skn_nodeport_reply(skb, sizeof(struct ethhdr), skn_config_get()))
		return skn_verdict(skb, TC_ACT_OK, SKN_R_FWD_STACK, SKN_DIR_EGRESS, 0, 0, 0, 0, 0);
	if (skn_settings.routing_native)
		return skn_native_stack_egress(skb);
	return TC_ACT_OK;
}
