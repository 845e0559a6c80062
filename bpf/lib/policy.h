/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Policy verdict for a new flow: at most three LPM lookups, whatever the number of policies. */
#ifndef SKN_LIB_POLICY_H
#define SKN_LIB_POLICY_H

#include "common.h"
#include "ipv4.h"
#include "../maps/policy.h"

static __always_inline const struct skn_policy_entry *skn_policy_match(__u32 endpoint_ip_be, __u8 dir,
                                                                       __u32 peer, const struct skn_pkt *p)
{
	struct skn_policy_key key = {};

	key.prefixlen = SKN_POLICY_PREFIX_FULL;
	key.endpoint_ip_be = endpoint_ip_be;
	key.peer_identity = peer;
	key.dir = dir;
	key.proto = p->proto;
	key.dport_be = p->dport_be;
	return bpf_map_lookup_elem(&skn_policy, &key);
}

/* Does the endpoint's policy in `dir` allow this peer? The peer is tried by its own identity,
 * by the identity of the ipBlock prefix holding its address, as "any peer", and for egress by
 * its address (named ports). Returns 1 and the allowing rule, or 0. */
static __always_inline int skn_policy_allows(__u32 endpoint_ip_be, __u8 dir, __u32 peer_identity,
                                             __u32 peer_cidr_identity, const struct skn_pkt *p,
                                             __u32 *rule_id)
{
	const struct skn_policy_entry *e = NULL;

	if (peer_identity != SKN_ID_ANY)
		e = skn_policy_match(endpoint_ip_be, dir, peer_identity, p);
	if (!e && peer_cidr_identity != SKN_ID_ANY)
		e = skn_policy_match(endpoint_ip_be, dir, peer_cidr_identity, p);
	if (!e)
		e = skn_policy_match(endpoint_ip_be, dir, SKN_ID_ANY, p);
	if (!e && dir == SKN_DIR_EGRESS)
		e = skn_policy_match(endpoint_ip_be, SKN_POLICY_DIR_EGRESS_BY_IP, bpf_ntohl(p->daddr_be), p);
	if (!e)
		return 0;
	*rule_id = e->rule_id;
	return 1;
}

#endif
