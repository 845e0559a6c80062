/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ethernet header access and MAC rewriting. */
#ifndef SKN_LIB_ETH_H
#define SKN_LIB_ETH_H

#include "common.h"

static __always_inline void skn_mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

/* Rewrites both MACs in the packet; returns 0 or a negative errno. */
static __always_inline int skn_eth_rewrite(struct __sk_buff *skb, const __u8 *src, const __u8 *dst)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	skn_mac_copy(eth->h_source, src);
	skn_mac_copy(eth->h_dest, dst);
	return 0;
}

#endif
