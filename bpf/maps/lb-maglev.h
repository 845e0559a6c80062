/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_lb_maglev: a Maglev lookup table per consistent frontend (SKN_LB_CONSISTENT: NodePort,
 * externalIP, LoadBalancer), computed by the agent from the backends sorted by address, so every
 * node holds the same table and a flow hashed on its 5-tuple picks the same backend anywhere.
 *
 * M = 251: Maglev needs a prime table size (each backend's permutation, offset + j * skip mod M,
 * then visits every slot); 251 keeps the value at 1,004 bytes (a page holds four, and 10,000
 * NodePort frontends cost 10 MB), and with N backends each gets floor or ceil of M / N slots, an
 * imbalance under 1 / (M / N): ≤ 10 % up to 25 backends. A larger Service wants a larger M, which is
 * a new map name (pinned maps outlive upgrades). */
#ifndef SKN_MAPS_LB_MAGLEV_H
#define SKN_MAPS_LB_MAGLEV_H

#include "../lib/common.h"

#define SKN_LB_MAGLEV_M 251

struct skn_lb_maglev {
	__u32 backend_id[SKN_LB_MAGLEV_M]; /* keys of skn_lb_backend; slot = hash(5-tuple) % M */
};
SKN_STATIC_ASSERT(sizeof(struct skn_lb_maglev) == 4 * SKN_LB_MAGLEV_M, "lb maglev value layout");

#define SKN_LB_MAGLEV_MAX 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKN_LB_MAGLEV_MAX);
	__type(key, __u32); /* svc_id */
	__type(value, struct skn_lb_maglev);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_lb_maglev SEC(".maps");

#endif
