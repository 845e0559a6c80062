/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_ipcache: every address the cluster knows, longest prefix first. Written by the agent. */
#ifndef SKN_MAPS_IPCACHE_H
#define SKN_MAPS_IPCACHE_H

#include "../lib/common.h"

struct skn_ipcache_key {
	__u32 prefixlen; /* LPM trie: bits of ip_be that must match */
	__u32 ip_be;
};
SKN_STATIC_ASSERT(sizeof(struct skn_ipcache_key) == 8, "ipcache key layout");

enum skn_ipcache_flag {
	SKN_IPC_ENFORCE_INGRESS = 1 << 0, /* a local pod selected by an ingress policy */
	SKN_IPC_ENFORCE_EGRESS = 1 << 1, /* a local pod selected by an egress policy */
};

struct skn_ipcache_entry {
	__u32 identity; /* security identity of the address */
	__u32 tunnel_ip_be; /* node to encapsulate to; 0 = reach through the host stack */
	__u32 cidr_identity; /* identity of the longest ipBlock prefix holding it; 0 = none */
	__u32 flags; /* enum skn_ipcache_flag */
};
SKN_STATIC_ASSERT(sizeof(struct skn_ipcache_entry) == 16, "ipcache value layout");

#define SKN_IPCACHE_MAX 524288

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SKN_IPCACHE_MAX);
	__type(key, struct skn_ipcache_key);
	__type(value, struct skn_ipcache_entry);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_ipcache SEC(".maps");

static __always_inline const struct skn_ipcache_entry *skn_ipcache_lookup(__u32 ip_be)
{
	struct skn_ipcache_key key = {};

	key.prefixlen = 32;
	key.ip_be = ip_be;
	return bpf_map_lookup_elem(&skn_ipcache, &key);
}

#endif
