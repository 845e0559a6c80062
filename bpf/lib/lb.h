/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing in BPF (kube-proxy replacement), for packets leaving pods.
 *
 *  - A packet to a frontend (skn_lb_svc: ClusterIP, NodePort, externalIP, LB IP) gets its
 *    destination rewritten to a backend before conntrack and policy see it: a flow already in
 *    skn_lb_flow keeps its backend while that backend exists in skn_lb_backend, a new one picks
 *    (sessionAffinity ClientIP from skn_lb_affinity, else at random; internalTrafficPolicy Local:
 *    local slots only). The conntrack entry of the translated flow carries SKN_CT_LB and the
 *    frontend's svc_id, so the backend's replies are rewritten back (skn_lb_reply), on this node
 *    in from_pod or, when the client is here and the backend on another node, in from_overlay.
 *  - Hairpin (the backend is the client): the source becomes SKN_LB_HAIRPIN_IP_BE, which the pod
 *    routes to its gateway, so the reply comes back through from_pod and is translated again.
 *  - A frontend without endpoints is answered with ICMP port unreachable, built here and sent
 *    straight back into the pod (ECONNREFUSED for TCP and connected UDP sockets, at once).
 *  - SCTP: its CRC32c covers the ports and BPF cannot recompute it, so only the address is
 *    rewritten (the builder keeps SCTP backends on the frontend's port only).
 */
#ifndef SKN_LIB_LB_H
#define SKN_LIB_LB_H

#include <linux/ip.h>
#include "common.h"
#include "ipv4.h"
#include "conntrack.h"
#include "../maps/lb-svc.h"
#include "../maps/lb-slot.h"
#include "../maps/lb-backend.h"
#include "../maps/lb-revnat.h"
#include "../maps/lb-affinity.h"
#include "../maps/lb-maglev.h"
#include "../maps/lb-flow.h"

/* The source of a hairpinned flow: link-local, next to the gateway (169.254.1.1), never a pod's. */
#define SKN_LB_HAIRPIN_IP_BE bpf_htonl(0xa9fe0102) /* 169.254.1.2 */

enum skn_lb_result {
	SKN_LB_PASS = 0, /* not for a frontend: nothing changed */
	SKN_LB_XLATED = 1, /* translated to a backend; the packet and skn_pkt say so */
	SKN_LB_REJECT = 2, /* a frontend without usable backends */
	SKN_LB_NO_BACKEND = 3, /* a slot or backend entry is missing (the agent is mid-update) */
	SKN_LB_ERROR = 4, /* the packet could not be rewritten */
};

/* What from_pod needs to remember of a translation. */
struct skn_lb_xlate {
	__u32 svc_id;
	__u32 client_be; /* the source before translation */
	__u32 hairpin; /* 1: the source was rewritten to SKN_LB_HAIRPIN_IP_BE */
};

static __always_inline int skn_lb_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* Rewrites one side of the packet (the destination when `dst`, else the source): its address and,
 * for TCP and UDP, its port, with the IPv4 and L4 checksums. l4_off 0: no transport header. */
static __always_inline int skn_lb_rewrite(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u8 proto,
                                          int dst, __u32 old_addr, __u32 new_addr, __u16 old_port,
                                          __u16 new_port)
{
	__u32 addr_off = l3_off + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	__u64 mangled = 0;
	__u32 csum_off = 0;

	if (l4_off && proto == IPPROTO_TCP) {
		csum_off = l4_off + 16;
	} else if (l4_off && proto == IPPROTO_UDP) {
		csum_off = l4_off + 6;
		mangled = BPF_F_MARK_MANGLED_0; /* a UDP checksum of 0 means none: leave it so */
	}
	if (old_addr != new_addr) {
		if (csum_off && bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
		                                    mangled | BPF_F_PSEUDO_HDR | sizeof(new_addr)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old_addr, new_addr,
		                        sizeof(new_addr)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
			return -1;
	}
	if (l4_off && old_port != new_port && (proto == IPPROTO_TCP || proto == IPPROTO_UDP)) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, l4_off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
			return -1;
	}
	return 0;
}

/* A backend for a new flow to `svc`: the client's affinity while fresh, else a random slot among
 * the usable ones (local ones only with internalTrafficPolicy Local). Returns its id, 0 if none. */
static __always_inline __u32 skn_lb_pick(const struct skn_lb_svc *svc, __u32 client_be,
                                         const struct skn_lb_backend **out)
{
	const struct skn_lb_backend *be;
	struct skn_lb_slot_key sk = {};
	const struct skn_lb_slot *slot;
	__u32 n = (svc->flags & SKN_LB_INT_LOCAL) ? svc->local_count : svc->count;
	__u64 now = 0;

	if (n == 0)
		return 0;
	if (svc->flags & SKN_LB_AFFINITY) {
		struct skn_lb_affinity_key ak = {};
		struct skn_lb_affinity *a;

		ak.client_be = client_be;
		ak.svc_id = svc->svc_id;
		now = bpf_ktime_get_coarse_ns();
		a = bpf_map_lookup_elem(&skn_lb_affinity, &ak);
		if (a && now - a->last_used_ns <= (__u64)svc->affinity_timeout_s * SKN_NS_PER_S) {
			be = bpf_map_lookup_elem(&skn_lb_backend, &a->backend_id);
			if (be) {
				a->last_used_ns = now;
				*out = be;
				return a->backend_id;
			}
		}
	}
	sk.svc_id = svc->svc_id;
	sk.slot = bpf_get_prandom_u32() % n;
	slot = bpf_map_lookup_elem(&skn_lb_slot, &sk);
	if (!slot)
		return 0;
	be = bpf_map_lookup_elem(&skn_lb_backend, &slot->backend_id);
	if (!be)
		return 0;
	if (svc->flags & SKN_LB_AFFINITY) {
		struct skn_lb_affinity_key ak = {};
		struct skn_lb_affinity a = {};

		ak.client_be = client_be;
		ak.svc_id = svc->svc_id;
		a.backend_id = slot->backend_id;
		a.last_used_ns = now;
		bpf_map_update_elem(&skn_lb_affinity, &ak, &a, BPF_ANY);
	}
	*out = be;
	return slot->backend_id;
}

/*
 * A pod's packet: when its destination is a frontend, translates it (the packet and `p`) and
 * fills `x`. Non-first fragments and ICMP errors are left alone (no ports to match).
 */
static __always_inline enum skn_lb_result skn_lb_from_pod(struct __sk_buff *skb, struct skn_pkt *p,
                                                          struct skn_lb_xlate *x)
{
	const struct skn_lb_backend *be = NULL;
	struct skn_lb_flow_key fk = {};
	const struct skn_lb_svc *svc;
	struct skn_lb_flow *fl;
	__u32 backend_id = 0, addr_be;
	__u16 port_be;

	if (p->frag || p->is_icmp_error || !skn_lb_has_ports(p->proto))
		return SKN_LB_PASS;
	svc = skn_lb_svc_lookup(p->daddr_be, p->dport_be, p->proto);
	if (!svc)
		return SKN_LB_PASS;
	x->svc_id = svc->svc_id;
	x->client_be = p->saddr_be;
	if (svc->count == 0 || ((svc->flags & SKN_LB_INT_LOCAL) && svc->local_count == 0))
		return SKN_LB_REJECT;

	fk.client_be = p->saddr_be;
	fk.frontend_be = p->daddr_be;
	fk.client_port_be = p->sport_be;
	fk.frontend_port_be = p->dport_be;
	fk.proto = p->proto;
	fl = bpf_map_lookup_elem(&skn_lb_flow, &fk);
	if (fl && fl->svc_id == svc->svc_id) {
		backend_id = fl->backend_id;
		be = bpf_map_lookup_elem(&skn_lb_backend, &backend_id);
		/* A terminating backend keeps its TCP connections (they drain); a UDP or SCTP flow, a
		 * resolver's socket say, moves on (with only terminating backends left, it keeps moving). */
		if (be && (be->flags & SKN_LB_BE_TERMINATING) && p->proto != IPPROTO_TCP)
			be = NULL;
	}
	/* A new flow, or one whose backend is gone (a deleted pod): pick, and remember. */
	if (!be) {
		struct skn_lb_flow v = {};

		backend_id = skn_lb_pick(svc, p->saddr_be, &be);
		if (!backend_id || !be)
			return SKN_LB_NO_BACKEND;
		v.backend_id = backend_id;
		v.svc_id = svc->svc_id;
		bpf_map_update_elem(&skn_lb_flow, &fk, &v, BPF_ANY);
	}
	addr_be = be->addr_be;
	port_be = p->proto == IPPROTO_SCTP ? p->dport_be : be->port_be;

	if (skn_lb_rewrite(skb, sizeof(struct ethhdr), p->l4_off, p->proto, 1, p->daddr_be, addr_be,
	                   p->dport_be, port_be) < 0)
		return SKN_LB_ERROR;
	p->daddr_be = addr_be;
	p->dport_be = port_be;
	if (addr_be == p->saddr_be) {
		/* Hairpin: from the pod's own address to itself the pod would take it for a martian. */
		if (skn_lb_rewrite(skb, sizeof(struct ethhdr), p->l4_off, p->proto, 0, p->saddr_be,
		                   SKN_LB_HAIRPIN_IP_BE, p->sport_be, p->sport_be) < 0)
			return SKN_LB_ERROR;
		p->saddr_be = SKN_LB_HAIRPIN_IP_BE;
		x->hairpin = 1;
	}
	return SKN_LB_XLATED;
}

/* Does this conntrack state say the packet is a backend's reply to a flow Skein translated? */
static __always_inline int skn_lb_is_reply(enum skn_ct_status ct, const struct skn_ct_state *st)
{
	return ct == SKN_CT_REPLY && st->entry && (st->entry->flags & SKN_CT_LB) && st->entry->lb_svc_id;
}

/*
 * A backend's reply, IPv4 header at `l3_off`: the source back to the frontend the client spoke
 * to, and for a hairpinned flow the destination back to the client (the backend itself). A frontend
 * deleted meanwhile leaves the packet as it is (the client's socket ignores it, as with kube-proxy).
 */
static __always_inline int skn_lb_reply(struct __sk_buff *skb, __u32 l3_off, struct skn_pkt *p,
                                        const struct skn_ct_entry *e)
{
	__u32 svc_id = e->lb_svc_id;
	const struct skn_lb_revnat *rv = bpf_map_lookup_elem(&skn_lb_revnat, &svc_id);
	__u32 backend_be = p->saddr_be, l4_off = 0;
	__u16 port_be;
	__u8 vihl;

	if (!rv)
		return 0;
	if (!p->frag) {
		if (bpf_skb_load_bytes(skb, l3_off, &vihl, 1) < 0)
			return -1;
		l4_off = l3_off + (vihl & 0xf) * 4;
	}
	port_be = p->proto == IPPROTO_SCTP ? p->sport_be : rv->port_be;
	if (skn_lb_rewrite(skb, l3_off, l4_off, p->proto, 0, p->saddr_be, rv->addr_be, p->sport_be, port_be) <
	    0)
		return -1;
	p->saddr_be = rv->addr_be;
	p->sport_be = port_be;
	if ((e->flags & SKN_CT_LB_HAIRPIN) && p->daddr_be == SKN_LB_HAIRPIN_IP_BE) {
		if (skn_lb_rewrite(skb, l3_off, l4_off, p->proto, 1, p->daddr_be, backend_be, p->dport_be,
		                   p->dport_be) < 0)
			return -1;
		p->daddr_be = backend_be;
	}
	return 0;
}

/*
 * An ICMP error (SKN_CT_RELATED) about a flow Skein translated, IPv4 header at `l3_off`: a backend's
 * port unreachable for a Service's UDP port, say. The client's socket knows the frontend, so the
 * quoted header's destination becomes the frontend again (with the quoted IPv4 checksum and the ICMP
 * checksum), and so does the outer source when the backend itself sent the error. The quoted L4
 * checksum is left alone (nobody verifies 8 quoted bytes); a hairpinned flow's errors are left
 * alone. Returns 0, also when the error is not about such a flow, or -1 on a rewrite failure.
 */
static __always_inline int skn_lb_related(struct __sk_buff *skb, __u32 l3_off, struct skn_pkt *p)
{
	struct skn_ct_key inner = {};
	const struct skn_ct_entry *e;
	const struct skn_lb_revnat *rv;
	__u32 svc_id, icmp_off, in_ip, in_l4, backend_be = p->inner_daddr_be, addr_be;
	__u16 old_check, new_check, port_be;
	__u8 vihl;

	if (!p->is_icmp_error)
		return 0;
	skn_ct_key_init(&inner, p->inner_proto, p->inner_saddr_be, p->inner_sport_be, p->inner_daddr_be,
	                p->inner_dport_be);
	e = bpf_map_lookup_elem(&skn_conntrack2, &inner);
	if (!e || !(e->flags & SKN_CT_LB) || (e->flags & SKN_CT_LB_HAIRPIN) || !e->lb_svc_id)
		return 0;
	svc_id = e->lb_svc_id;
	rv = bpf_map_lookup_elem(&skn_lb_revnat, &svc_id);
	if (!rv)
		return 0;
	addr_be = rv->addr_be;
	port_be = rv->port_be;

	if (bpf_skb_load_bytes(skb, l3_off, &vihl, 1) < 0)
		return -1;
	icmp_off = l3_off + (vihl & 0xf) * 4;
	in_ip = icmp_off + sizeof(struct skn_icmphdr);
	if (bpf_skb_load_bytes(skb, in_ip, &vihl, 1) < 0)
		return -1;
	in_l4 = in_ip + (vihl & 0xf) * 4;

	/* The quoted destination, its IPv4 checksum, and both in the ICMP checksum. */
	if (bpf_skb_load_bytes(skb, in_ip + offsetof(struct iphdr, check), &old_check, 2) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, in_ip + offsetof(struct iphdr, check), backend_be, addr_be, 4) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, in_ip + offsetof(struct iphdr, check), &new_check, 2) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, in_ip + offsetof(struct iphdr, daddr), &addr_be, 4, 0) < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, icmp_off + 2, backend_be, addr_be, 4) < 0 ||
	    bpf_l4_csum_replace(skb, icmp_off + 2, old_check, new_check, 2) < 0)
		return -1;
	if ((p->inner_proto == IPPROTO_TCP || p->inner_proto == IPPROTO_UDP) &&
	    p->inner_dport_be != port_be) {
		if (bpf_skb_store_bytes(skb, in_l4 + 2, &port_be, 2, 0) < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, icmp_off + 2, p->inner_dport_be, port_be, 2) < 0)
			return -1;
	}
	p->inner_daddr_be = addr_be;
	p->inner_dport_be = port_be;

	/* From the backend itself: from the frontend. (ICMP's checksum has no pseudo-header.) */
	if (p->saddr_be == backend_be) {
		if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), backend_be, addr_be, 4) <
		    0)
			return -1;
		if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, saddr), &addr_be, 4, 0) < 0)
			return -1;
		p->saddr_be = addr_be;
	}
	return 0;
}

static __always_inline __u16 skn_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* An ICMP port unreachable as built in place of the packet: IPv4 + ICMP + the quoted header. */
struct skn_lb_unreach {
	struct iphdr ip;
	struct skn_icmphdr icmp;
	__u8 quoted[28]; /* the offending packet's IPv4 header (no options) and 8 bytes of L4 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_unreach) == 56, "unreachable layout");

/*
 * Turns the packet (from a pod, to a frontend without endpoints) into the ICMP port unreachable
 * the frontend answers with, addressed to the pod, Ethernet addresses swapped. The caller sends it
 * back into the pod. Returns 0, or -1 when the packet cannot be turned (IP options, too short).
 */
static __always_inline int skn_lb_make_unreachable(struct __sk_buff *skb, const struct skn_pkt *p)
{
	struct skn_lb_unreach u = {};
	__u8 macs[12], swapped[12];
	__s64 sum;

	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), u.quoted, sizeof(u.quoted)) < 0)
		return -1;
	if (u.quoted[0] != 0x45)
		return -1;
	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
		return -1;
	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);

	u.ip.version = 4;
	u.ip.ihl = 5;
	u.ip.tos = 0xc0; /* internetwork control, as the kernel sends its ICMP errors */
	u.ip.tot_len = bpf_htons(sizeof(u));
	u.ip.ttl = 64;
	u.ip.protocol = IPPROTO_ICMP;
	u.ip.saddr = p->daddr_be; /* the frontend */
	u.ip.daddr = p->saddr_be;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&u.ip, sizeof(u.ip), 0);
	if (sum < 0)
		return -1;
	u.ip.check = skn_csum_fold(sum);
	u.icmp.type = SKN_ICMP_DEST_UNREACH;
	u.icmp.code = 3; /* port unreachable */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&u.icmp, sizeof(u.icmp) + sizeof(u.quoted), 0);
	if (sum < 0)
		return -1;
	u.icmp.checksum = skn_csum_fold(sum);

	if (bpf_skb_change_tail(skb, sizeof(struct ethhdr) + sizeof(u), 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &u, sizeof(u), 0) < 0)
		return -1;
	return 0;
}

#endif
