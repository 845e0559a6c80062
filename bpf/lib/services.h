/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Services translated by the node (kube-proxy's iptables, nftables or IPVS rules): a pod's packet
 * to a ClusterIP goes up the stack, which rewrites the destination to a backend pod and remembers
 * it in netfilter conntrack. The datapath must then
 *  - send the flow's other packets through the stack too (the reply would otherwise be redirected
 *    straight into the client and keep the backend's address): the flow's conntrack entry, created
 *    where the stack hands the translated packet back (to_pod, to_vxlan), carries SKN_CT_VIA_STACK;
 *  - judge the client's egress policy on the backend, after translation: from_pod defers new flows
 *    into the Service CIDR, and to_pod / to_vxlan decide them on the translated packet.
 */
#ifndef SKN_LIB_SERVICES_H
#define SKN_LIB_SERVICES_H

#include "common.h"
#include "conntrack.h"
#include "settings.h"

/* Is the destination inside the Service CIDR (a load-time setting; none by default)? */
static __always_inline int skn_service_dst(__u32 daddr_be)
{
	__u32 len = skn_settings.service_prefix_len;
	__u32 mask;

	if (len == 0 || len > 32)
		return 0;
	mask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
	return (bpf_ntohl(daddr_be) & mask) == (bpf_ntohl(skn_settings.service_net_be) & mask);
}

/* Did the host stack deliver this flow's opening packet? */
static __always_inline int skn_ct_via_stack(const struct skn_ct_state *st)
{
	return st->entry && (st->entry->flags & SKN_CT_VIA_STACK);
}

/* An ICMP error (SKN_CT_RELATED) about a flow the stack delivered: a backend's port unreachable for
 * a Service's UDP port, say. It goes through the stack too, which rewrites the quoted header back to
 * the ClusterIP the client's socket knows. A second lookup, for ICMP errors only. */
static __always_inline int skn_ct_related_via_stack(const struct skn_pkt *p)
{
	struct skn_ct_key inner = {};
	const struct skn_ct_entry *e;

	skn_ct_key_init(&inner, p->inner_proto, p->inner_saddr_be, p->inner_sport_be, p->inner_daddr_be,
	                p->inner_dport_be);
	e = bpf_map_lookup_elem(&skn_conntrack2, &inner);
	return e && (e->flags & SKN_CT_VIA_STACK);
}

/* Records that the stack delivered the flow (after skn_ct_create, or on an entry that predates it). */
static __always_inline void skn_ct_set_via_stack(struct skn_ct_state *st)
{
	struct skn_ct_entry *e = st->entry;

	if (!e)
		e = bpf_map_lookup_elem(&skn_conntrack2, &st->key);
	if (e && !(e->flags & SKN_CT_VIA_STACK))
		__sync_fetch_and_or(&e->flags, SKN_CT_VIA_STACK);
}

#endif
