/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Verdict reasons; every packet a program sees is counted under exactly one. */
#ifndef SKN_LIB_DROP_H
#define SKN_LIB_DROP_H

#include "common.h"

/* The numeric values are ABI: maps/metrics.ts and the agent's metrics decode them. Append only. */
enum skn_reason {
	SKN_R_FWD_LOCAL = 0, /* redirected to a pod on this node */
	SKN_R_FWD_OVERLAY = 1, /* encapsulated towards another node */
	SKN_R_FWD_STACK = 2, /* handed to the host network stack */
	SKN_R_FWD_DELIVER = 3, /* delivered into a pod from the stack or the overlay */
	SKN_R_ARP_REPLY = 4, /* ARP request for the gateway answered */
	SKN_R_PASS_NON_IP = 5, /* ARP or other non-IPv4 frame passed on */
	SKN_R_DROP_MALFORMED = 6, /* truncated or inconsistent headers */
	SKN_R_DROP_SPOOFED = 7, /* source address is not the sending pod's */
	SKN_R_DROP_POLICY = 8, /* denied by NetworkPolicy */
	SKN_R_DROP_ARP = 9, /* ARP that is not a request for the gateway */
	SKN_R_DROP_UNSUPPORTED = 10, /* IPv6 and other protocols Skein does not route */
	SKN_R_DROP_NO_TUNNEL = 11, /* no tunnel endpoint known for a remote destination */
	SKN_R_DROP_FRAGMENT = 12, /* non-first fragment on an enforced endpoint */
	SKN_R_DROP_TUNNEL_KEY = 13, /* tunnel metadata missing or unusable */
	SKN_R_LB_REJECT = 14, /* no Service endpoints: ICMP port unreachable sent back */
	SKN_R_DROP_NO_BACKEND = 15, /* a Service frontend's slot or backend entry is missing */
	SKN_R_MAX = 16,
};

#endif
