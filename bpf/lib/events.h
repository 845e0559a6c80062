/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Drop and verdict records into the ring buffer. */
#ifndef SKN_LIB_EVENTS_H
#define SKN_LIB_EVENTS_H

#include "common.h"
#include "ipv4.h"
#include "../maps/events.h"
#include "../maps/metrics.h"

/* Metrics slots outside the per-packet reasons (packets field only): events the ring buffer had no
 * room for, and new flows allowed by an enforced policy, per direction. */
#define SKN_METRICS_EVENTS_LOST (SKN_METRICS_ENTRIES - 1)
#define SKN_METRICS_POLICY_ALLOWED(dir) (SKN_METRICS_ENTRIES - 4 + (dir))

/* Not inlined: events are rare, and as a real function its prototype puts struct skn_event into
 * the object's BTF, where bpftool and the layout test find it. */
static __attribute__((noinline)) void skn_event_submit(struct skn_event *ev)
{
	if (bpf_ringbuf_output(&skn_events, ev, sizeof(*ev), 0) < 0) {
		__u32 key = SKN_METRICS_EVENTS_LOST;
		struct skn_metrics_value *v = bpf_map_lookup_elem(&skn_metrics, &key);

		if (v)
			v->packets += 1;
	}
}

static __always_inline void skn_count_policy_allowed(enum skn_dir dir)
{
	__u32 key = SKN_METRICS_POLICY_ALLOWED(dir);
	struct skn_metrics_value *v = bpf_map_lookup_elem(&skn_metrics, &key);

	if (v)
		v->packets += 1;
}

static __always_inline void skn_emit(struct __sk_buff *skb, enum skn_event_type type, enum skn_reason reason,
                                     enum skn_dir dir, const struct skn_pkt *p, __u32 src_identity,
                                     __u32 dst_identity, __u32 rule_id)
{
	struct skn_event ev = {};

	ev.ts_ns = bpf_ktime_get_ns();
	ev.type = type;
	ev.reason = reason;
	ev.dir = dir;
	ev.proto = p->proto;
	ev.ifindex = skb->ifindex;
	ev.saddr_be = p->saddr_be;
	ev.daddr_be = p->daddr_be;
	ev.sport_be = p->sport_be;
	ev.dport_be = p->dport_be;
	ev.src_identity = src_identity;
	ev.dst_identity = dst_identity;
	ev.rule_id = rule_id;
	skn_event_submit(&ev);
}

#endif
