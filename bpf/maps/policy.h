/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_policy: what each enforced endpoint allows, per direction and peer. Written by the agent.
 *
 * An LPM trie over (endpoint, peer, direction, protocol, port): a rule without ports stops the
 * prefix after the direction, a protocol-only rule after the protocol, a port range becomes a few
 * prefixes over the port's bits. A peer of 0 means any peer. */
#ifndef SKN_MAPS_POLICY_H
#define SKN_MAPS_POLICY_H

#include "../lib/common.h"

struct skn_policy_key {
	__u32 prefixlen; /* bits of the fields below that must match, in order */
	__u32 endpoint_ip_be; /* the protected pod */
	__u32 peer_identity; /* always matched whole; SKN_ID_ANY = any peer; an IPv4 for dir 3 */
	__u8 dir; /* enum skn_dir, or SKN_POLICY_DIR_EGRESS_BY_IP */
	__u8 proto; /* IPPROTO_* */
	__u16 dport_be; /* destination port, network order */
};
SKN_STATIC_ASSERT(sizeof(struct skn_policy_key) == 16, "policy key layout");

#define SKN_POLICY_PREFIX_ANY_PROTO (32 + 32 + 8)
#define SKN_POLICY_PREFIX_ANY_PORT (32 + 32 + 8 + 8)
#define SKN_POLICY_PREFIX_FULL (32 + 32 + 8 + 8 + 16)

struct skn_policy_entry {
	__u32 rule_id; /* which rule allowed it; the agent maps it to a policy name */
	__u32 flags; /* reserved, 0 */
};
SKN_STATIC_ASSERT(sizeof(struct skn_policy_entry) == 8, "policy value layout");

/* The default; the agent may resize before load (settings: policyMapEntries). */
#define SKN_POLICY_MAX 262144

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SKN_POLICY_MAX);
	__type(key, struct skn_policy_key);
	__type(value, struct skn_policy_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_policy SEC(".maps");

#endif
