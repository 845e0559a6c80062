/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Settings fixed at load time. The loader rewrites them in .rodata before loading, so the
 * verifier sees constants and prunes what a setting turns off. */
#ifndef SKN_LIB_SETTINGS_H
#define SKN_LIB_SETTINGS_H

#include "common.h"

struct skn_settings {
	__u32 ct_tcp_established_s; /* idle lifetime of an answered TCP flow */
	__u32 ct_tcp_opening_s; /* ... of a TCP flow not answered yet */
	__u32 ct_tcp_closing_s; /* ... after FIN or RST */
	__u32 ct_other_s; /* ... of UDP, SCTP, ICMP and other flows */
	__u32 record_decisions; /* 1: write every verdict to skn_decision (tests, simulate) */
	/* The cluster's Service CIDR (network, prefix length; 0: none): new flows from pods to it are
	 * translated by the node (kube-proxy), so their egress policy is judged after translation. */
	__u32 service_net_be;
	__u32 service_prefix_len;
	/* 1: native routing. from_pod routes remote pods' packets unencapsulated by the kernel's FIB,
	 * from_uplink delivers them (lib/native.h); 0: VXLAN, and the native code is pruned. */
	__u32 routing_native;
};
SKN_STATIC_ASSERT(sizeof(struct skn_settings) == 32, "settings layout");

/* The only variable in .rodata, so it sits at offset 0 (checked against BTF in the tests). */
const volatile struct skn_settings skn_settings = {
	.ct_tcp_established_s = 21600,
	.ct_tcp_opening_s = 60,
	.ct_tcp_closing_s = 10,
	.ct_other_s = 60,
	.record_decisions = 0,
	.service_net_be = 0,
	.service_prefix_len = 0,
	.routing_native = 0,
};

#endif
