/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared includes, reserved identities and small helpers for every Skein program. */
#ifndef SKN_LIB_COMMON_H
#define SKN_LIB_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SKN_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

/* Security identities. 0 never travels: in policy keys it means "any peer". */
enum skn_identity {
	SKN_ID_ANY = 0,
	SKN_ID_HOST = 1, /* this node */
	SKN_ID_WORLD = 2, /* outside the cluster, no CIDR identity */
	SKN_ID_REMOTE_NODE = 3, /* another node of the cluster */
	SKN_ID_UNMANAGED = 4, /* an address in a pod CIDR whose pod the agent does not know yet */
	SKN_ID_FIRST_POD = 256, /* pod identities: 256 .. 0x7fffff */
	SKN_ID_FIRST_CIDR = 0x800000, /* ipBlock identities: 0x800000 .. 0xffffff */
	SKN_ID_MAX = 0xffffff, /* identities travel in the 24-bit VNI */
};

/* Direction, always seen from the endpoint (pod) being protected. */
enum skn_dir {
	SKN_DIR_INGRESS = 0,
	SKN_DIR_EGRESS = 1,
	SKN_DIR_MAX = 2,
};

/* Policy keys only: an egress entry whose peer field holds the destination pod's IPv4 (host
 * order) instead of an identity. Named ports resolve per destination pod, and pods sharing an
 * identity may name different numbers, so such rules are keyed by address. */
#define SKN_POLICY_DIR_EGRESS_BY_IP 3

/* linux/if_packet.h: the skb is for this host. */
#define SKN_PACKET_HOST 0

/* AF_INET for helper arguments (bpf_redirect_neigh's next hop); sys/socket.h is not for BPF. */
#define SKN_AF_INET 2

/* The gateway every pod routes through; answered by from_pod's ARP responder. */
#define SKN_GATEWAY_IP_BE bpf_htonl(0xa9fe0101) /* 169.254.1.1 */

/* skb->mark bits Skein uses; one value, so other users of the mark are left alone. */
#define SKN_MARK_ENCAPPED 0x5e1c0001u
/* A NodePort/external flow with externalTrafficPolicy Cluster, translated at the uplink: netfilter's
 * one static rule in Skein's table masquerades it to the node (agent/node/overlay.ts). */
#define SKN_MARK_NODEPORT_SNAT 0x5e1c0002u

#endif
