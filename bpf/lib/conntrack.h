/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: one lookup per packet decides whether policy has to be consulted. */
#ifndef SKN_LIB_CONNTRACK_H
#define SKN_LIB_CONNTRACK_H

#include "common.h"
#include "ipv4.h"
#include "settings.h"
#include "../maps/conntrack.h"

enum skn_ct_status {
	SKN_CT_NEW = 0, /* no live entry: policy decides */
	SKN_CT_ESTABLISHED = 1, /* from the side that opened the flow */
	SKN_CT_REPLY = 2, /* from the other side */
	SKN_CT_RELATED = 3, /* an ICMP error about a tracked flow */
};

#define SKN_NS_PER_S 1000000000ull

/* Fills the normalised key; returns 1 when the packet's source is side b. */
static __always_inline int skn_ct_key_init(struct skn_ct_key *key, __u8 proto, __u32 saddr_be, __u16 sport_be,
                                           __u32 daddr_be, __u16 dport_be)
{
	__u32 s = bpf_ntohl(saddr_be), d = bpf_ntohl(daddr_be);
	int src_is_b = s > d || (s == d && bpf_ntohs(sport_be) > bpf_ntohs(dport_be));

	key->proto = proto;
	if (src_is_b) {
		key->addr_a_be = daddr_be;
		key->port_a_be = dport_be;
		key->addr_b_be = saddr_be;
		key->port_b_be = sport_be;
	} else {
		key->addr_a_be = saddr_be;
		key->port_a_be = sport_be;
		key->addr_b_be = daddr_be;
		key->port_b_be = dport_be;
	}
	return src_is_b;
}

static __always_inline __u64 skn_ct_lifetime_ns(__u8 proto, __u32 flags)
{
	__u32 s;

	if (proto == IPPROTO_TCP) {
		if (flags & SKN_CT_CLOSING)
			s = skn_settings.ct_tcp_closing_s;
		else if (flags & SKN_CT_SEEN_REPLY)
			s = skn_settings.ct_tcp_established_s;
		else
			s = skn_settings.ct_tcp_opening_s;
	} else {
		s = skn_settings.ct_other_s;
	}
	return (__u64)s * SKN_NS_PER_S;
}

struct skn_ct_state {
	struct skn_ct_key key;
	int src_is_b;
	struct skn_ct_entry *entry; /* set for every status but NEW */
};

/* The one conntrack lookup of a packet. Refreshes the entry it finds. */
static __always_inline enum skn_ct_status skn_ct_lookup(const struct skn_pkt *p, struct skn_ct_state *st)
{
	struct skn_ct_entry *e;
	__u64 now;
	int from_initiator;

	__builtin_memset(&st->key, 0, sizeof(st->key));
	st->entry = NULL;
	st->src_is_b =
		skn_ct_key_init(&st->key, p->proto, p->saddr_be, p->sport_be, p->daddr_be, p->dport_be);
	e = bpf_map_lookup_elem(&skn_conntrack2, &st->key);
	if (!e) {
		if (!p->is_icmp_error)
			return SKN_CT_NEW;
		/* An ICMP error about a flow we track: the quoted header is that flow. */
		struct skn_ct_key inner = {};

		skn_ct_key_init(&inner, p->inner_proto, p->inner_saddr_be, p->inner_sport_be,
		                p->inner_daddr_be, p->inner_dport_be);
		e = bpf_map_lookup_elem(&skn_conntrack2, &inner);
		if (!e)
			return SKN_CT_NEW;
		now = bpf_ktime_get_coarse_ns();
		if (now - e->last_seen_ns > skn_ct_lifetime_ns(inner.proto, e->flags))
			return SKN_CT_NEW;
		return SKN_CT_RELATED;
	}

	now = bpf_ktime_get_coarse_ns();
	if (now - e->last_seen_ns > skn_ct_lifetime_ns(p->proto, e->flags))
		return SKN_CT_NEW;
	if (p->proto == IPPROTO_TCP) {
		/* A fresh SYN on a closing flow is the port being reused: decide again. */
		if ((e->flags & SKN_CT_CLOSING) &&
		    (p->tcp_flags & (SKN_TCP_SYN | SKN_TCP_ACK)) == SKN_TCP_SYN)
			return SKN_CT_NEW;
		if ((p->tcp_flags & (SKN_TCP_FIN | SKN_TCP_RST)) && !(e->flags & SKN_CT_CLOSING))
			__sync_fetch_and_or(&e->flags, SKN_CT_CLOSING);
	}
	if (now - e->last_seen_ns > SKN_NS_PER_S)
		e->last_seen_ns = now;
	st->entry = e;
	from_initiator = st->src_is_b == !!(e->flags & SKN_CT_INITIATOR_B);
	if (from_initiator)
		return SKN_CT_ESTABLISHED;
	if (!(e->flags & SKN_CT_SEEN_REPLY))
		__sync_fetch_and_or(&e->flags, SKN_CT_SEEN_REPLY);
	return SKN_CT_REPLY;
}

/* Records a flow policy allowed. The packet's source is the initiator. `tunnel_ip_be` is the node
 * behind the remote side (0 for none) and `tunnel_is_src` says which side that is. `flags` and
 * `lb_svc_id`: a flow Skein translated to a Service backend (lib/lb.h), else 0. */
static __always_inline void skn_ct_create_ex(const struct skn_ct_state *st, __u32 src_identity,
                                             __u32 dst_identity, __u32 rule_id, __u32 tunnel_ip_be,
                                             int tunnel_is_src, __u32 flags, __u32 lb_svc_id)
{
	struct skn_ct_entry e = {};
	__u64 now = bpf_ktime_get_coarse_ns();
	/* Side b is the source when src_is_b; the tunnel side is b when it is that same side. */
	int tunnel_on_b = tunnel_is_src ? st->src_is_b : !st->src_is_b;

	e.created_ns = now;
	e.last_seen_ns = now;
	e.rule_id = rule_id;
	e.tunnel_ip_be = tunnel_ip_be;
	e.lb_svc_id = lb_svc_id;
	e.flags = flags;
	if (st->src_is_b) {
		e.flags |= SKN_CT_INITIATOR_B;
		e.identity_b = src_identity;
		e.identity_a = dst_identity;
	} else {
		e.identity_a = src_identity;
		e.identity_b = dst_identity;
	}
	if (tunnel_ip_be && tunnel_on_b)
		e.flags |= SKN_CT_TUNNEL_B;
	bpf_map_update_elem(&skn_conntrack2, &st->key, &e, BPF_ANY);
}

static __always_inline void skn_ct_create(const struct skn_ct_state *st, __u32 src_identity,
                                          __u32 dst_identity, __u32 rule_id, __u32 tunnel_ip_be,
                                          int tunnel_is_src)
{
	skn_ct_create_ex(st, src_identity, dst_identity, rule_id, tunnel_ip_be, tunnel_is_src, 0, 0);
}

/* The tunnel endpoint of the packet's destination side (0 when that side is not remote). */
static __always_inline __u32 skn_ct_dst_tunnel(const struct skn_ct_state *st)
{
	const struct skn_ct_entry *e = st->entry;
	int dst_is_b = !st->src_is_b;

	if (!e || !e->tunnel_ip_be || !!(e->flags & SKN_CT_TUNNEL_B) != dst_is_b)
		return 0;
	return e->tunnel_ip_be;
}

/* The tunnel endpoint of the packet's source side (0 when that side is not remote). */
static __always_inline __u32 skn_ct_src_tunnel(const struct skn_ct_state *st)
{
	const struct skn_ct_entry *e = st->entry;

	if (!e || !e->tunnel_ip_be || !!(e->flags & SKN_CT_TUNNEL_B) != st->src_is_b)
		return 0;
	return e->tunnel_ip_be;
}

/* The identity recorded for the packet's source side. */
static __always_inline __u32 skn_ct_src_identity(const struct skn_ct_state *st)
{
	const struct skn_ct_entry *e = st->entry;

	if (!e)
		return SKN_ID_UNMANAGED;
	return st->src_is_b ? e->identity_b : e->identity_a;
}

#endif
