/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_conntrack2: one entry per flow, both directions, keyed by the normalised 5-tuple. */
#ifndef SKN_MAPS_CONNTRACK_H
#define SKN_MAPS_CONNTRACK_H

#include "../lib/common.h"

/* Normalised: (addr_a, port_a) is the numerically smaller endpoint, so a flow and its replies
 * share one key and one lookup. */
struct skn_ct_key {
	__u32 addr_a_be;
	__u32 addr_b_be;
	__u16 port_a_be;
	__u16 port_b_be;
	__u8 proto;
	__u8 _pad[3];
};
SKN_STATIC_ASSERT(sizeof(struct skn_ct_key) == 16, "conntrack key layout");

enum skn_ct_flag {
	SKN_CT_INITIATOR_B = 1 << 0, /* the flow was opened by side b (else by side a) */
	SKN_CT_SEEN_REPLY = 1 << 1, /* the other side has answered */
	SKN_CT_CLOSING = 1 << 2, /* TCP FIN or RST seen */
	SKN_CT_TUNNEL_B = 1 << 3, /* tunnel_ip_be is the node of side b (else of side a) */
	/* The host stack delivered the opening packet (translated by kube-proxy's DNAT, say): every
	 * packet of the flow goes back through the stack, whose conntrack reverses the translation. */
	SKN_CT_VIA_STACK = 1 << 4,
	/* Skein translated the flow (a Service frontend, lib/lb.h): side a/b that did not open it is
	 * the backend, and its packets get their source rewritten back to skn_lb_revnat[lb_svc_id]. */
	SKN_CT_LB = 1 << 5,
	/* ... and the client was the backend itself (hairpin): its source was rewritten to
	 * SKN_LB_HAIRPIN_IP, and replies get their destination rewritten back to the backend. */
	SKN_CT_LB_HAIRPIN = 1 << 6,
	/* Translated at the uplink (world → NodePort/external frontend, lib/nodeport.h): the backend's
	 * replies go through the stack (SKN_CT_VIA_STACK too) and get their source rewritten back to
	 * skn_lb_revnat[lb_svc_id] in skn_to_uplink. */
	SKN_CT_NODEPORT = 1 << 7,
};

struct skn_ct_entry {
	__u64 created_ns; /* bpf_ktime_get_coarse_ns() at creation (CLOCK_MONOTONIC) */
	__u64 last_seen_ns; /* refreshed at most once a second */
	__u32 identity_a; /* security identity of side a when the flow was allowed */
	__u32 identity_b;
	__u32 flags; /* enum skn_ct_flag */
	__u32 rule_id; /* rule that allowed the flow (0: not enforced) */
	/* Node behind the remote side of a flow that crosses the overlay, 0 if none: established
	 * packets encapsulate (and check the outer source) without an ipcache lookup. */
	__u32 tunnel_ip_be;
	/* With SKN_CT_LB: the frontend's svc_id (key of skn_lb_revnat); 0 otherwise. This was the
	 * entry's spare _pad, always written 0 before: the value keeps its 40 bytes, so the pinned
	 * skn_conntrack2 of an earlier build is reused as is and its entries read as untranslated. */
	__u32 lb_svc_id;
};
SKN_STATIC_ASSERT(sizeof(struct skn_ct_entry) == 40, "conntrack value layout");

#define SKN_CONNTRACK_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKN_CONNTRACK_MAX);
	__type(key, struct skn_ct_key);
	__type(value, struct skn_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_conntrack2 SEC(".maps");

#endif
