/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* skn_metrics: packets and bytes per (reason, direction), per CPU. */
#ifndef SKN_MAPS_METRICS_H
#define SKN_MAPS_METRICS_H

#include "../lib/common.h"
#include "../lib/drop.h"

struct skn_metrics_value {
	__u64 packets;
	__u64 bytes;
};
SKN_STATIC_ASSERT(sizeof(struct skn_metrics_value) == 16, "metrics value layout");

#define SKN_METRICS_ENTRIES 64 /* key = reason * SKN_DIR_MAX + dir; room to grow reasons */
/* The last four slots hold non-packet counters (lib/events.h). */
SKN_STATIC_ASSERT((SKN_R_MAX * SKN_DIR_MAX) <= SKN_METRICS_ENTRIES - 4, "metrics map too small");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKN_METRICS_ENTRIES);
	__type(key, __u32);
	__type(value, struct skn_metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skn_metrics SEC(".maps");

static __always_inline void skn_count(struct __sk_buff *skb, enum skn_reason reason, enum skn_dir dir)
{
	__u32 key = (__u32)reason * SKN_DIR_MAX + (__u32)dir;
	struct skn_metrics_value *v = bpf_map_lookup_elem(&skn_metrics, &key);

	if (v) {
		v->packets += 1;
		v->bytes += skb->len;
	}
}

#endif
