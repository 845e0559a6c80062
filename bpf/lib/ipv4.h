/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 and transport header parsing into a flat summary every later step uses. */
#ifndef SKN_LIB_IPV4_H
#define SKN_LIB_IPV4_H

#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* linux/icmp.h drags in libc headers; the few definitions we need. */
#define SKN_ICMP_ECHOREPLY 0
#define SKN_ICMP_DEST_UNREACH 3
#define SKN_ICMP_ECHO 8
#define SKN_ICMP_TIME_EXCEEDED 11
#define SKN_ICMP_PARAMETERPROB 12

struct skn_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 echo_id;
	__be16 echo_sequence;
};

struct skn_sctphdr {
	__be16 source;
	__be16 dest;
	__be32 vtag;
	__le32 checksum;
};

struct skn_pkt {
	__u32 saddr_be;
	__u32 daddr_be;
	__u16 sport_be; /* 0 when the protocol has no ports; ICMP echo: the identifier */
	__u16 dport_be;
	__u8 proto;
	__u8 tcp_flags; /* FIN=0x01 SYN=0x02 RST=0x04 ACK=0x10 */
	__u8 icmp_type;
	__u8 frag; /* 1: a non-first fragment, ports unknown */
	/* ICMP errors carry the header of the flow they are about; that flow, as seen from us. */
	__u32 inner_saddr_be;
	__u32 inner_daddr_be;
	__u16 inner_sport_be;
	__u16 inner_dport_be;
	__u8 inner_proto;
	__u8 is_icmp_error;
	__u16 l4_off; /* offset of the transport header in the skb (0 for a non-first fragment) */
};

enum skn_parse_result {
	SKN_PARSE_OK = 0,
	SKN_PARSE_MALFORMED = -1,
};

#define SKN_TCP_FIN 0x01
#define SKN_TCP_SYN 0x02
#define SKN_TCP_RST 0x04
#define SKN_TCP_ACK 0x10

static __always_inline int skn_icmp_is_error(__u8 type)
{
	return type == SKN_ICMP_DEST_UNREACH || type == SKN_ICMP_TIME_EXCEEDED ||
	       type == SKN_ICMP_PARAMETERPROB;
}

/* Parses the quoted header inside an ICMP error at `off`; leaves is_icmp_error 0 if absent. */
static __always_inline void skn_parse_icmp_inner(struct __sk_buff *skb, __u32 off, struct skn_pkt *p)
{
	struct iphdr inner;
	__u16 ports[2];

	if (bpf_skb_load_bytes(skb, off, &inner, sizeof(inner)) < 0)
		return;
	if (inner.version != 4 || inner.ihl < 5)
		return;
	p->inner_proto = inner.protocol;
	p->inner_saddr_be = inner.saddr;
	p->inner_daddr_be = inner.daddr;
	p->inner_sport_be = 0;
	p->inner_dport_be = 0;
	if (inner.protocol == IPPROTO_TCP || inner.protocol == IPPROTO_UDP ||
	    inner.protocol == IPPROTO_SCTP) {
		if (bpf_skb_load_bytes(skb, off + inner.ihl * 4, ports, sizeof(ports)) < 0)
			return;
		p->inner_sport_be = ports[0];
		p->inner_dport_be = ports[1];
	} else if (inner.protocol == IPPROTO_ICMP) {
		struct skn_icmphdr ih;

		if (bpf_skb_load_bytes(skb, off + inner.ihl * 4, &ih, sizeof(ih)) < 0)
			return;
		if (ih.type != SKN_ICMP_ECHO && ih.type != SKN_ICMP_ECHOREPLY)
			return;
		p->inner_sport_be = ih.echo_id;
		p->inner_dport_be = ih.echo_id;
	}
	p->is_icmp_error = 1;
}

/* Parses the IPv4 packet that follows the Ethernet header at `l3_off`. Bytes are read with
 * bpf_skb_load_bytes so that non-linear skbs (GRO, veth) parse the same as linear ones. */
static __always_inline int skn_parse_ipv4(struct __sk_buff *skb, __u32 l3_off, struct skn_pkt *p)
{
	struct iphdr ip;
	__u32 l4_off;
	__u16 frag_off;

	if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
		return SKN_PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return SKN_PARSE_MALFORMED;
	if (bpf_ntohs(ip.tot_len) < ip.ihl * 4 || l3_off + bpf_ntohs(ip.tot_len) > skb->len)
		return SKN_PARSE_MALFORMED;

	p->saddr_be = ip.saddr;
	p->daddr_be = ip.daddr;
	p->proto = ip.protocol;
	p->sport_be = 0;
	p->dport_be = 0;
	p->tcp_flags = 0;
	p->icmp_type = 0;
	p->is_icmp_error = 0;
	p->l4_off = 0;
	frag_off = bpf_ntohs(ip.frag_off);
	p->frag = (frag_off & 0x1fff) != 0;
	if (p->frag)
		return SKN_PARSE_OK;

	l4_off = l3_off + ip.ihl * 4;
	p->l4_off = l4_off;
	switch (ip.protocol) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (bpf_skb_load_bytes(skb, l4_off, &th, sizeof(th)) < 0)
			return SKN_PARSE_MALFORMED;
		p->sport_be = th.source;
		p->dport_be = th.dest;
		p->tcp_flags = ((__u8 *)&th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr uh;

		if (bpf_skb_load_bytes(skb, l4_off, &uh, sizeof(uh)) < 0)
			return SKN_PARSE_MALFORMED;
		p->sport_be = uh.source;
		p->dport_be = uh.dest;
		break;
	}
	case IPPROTO_SCTP: {
		struct skn_sctphdr sh;

		if (bpf_skb_load_bytes(skb, l4_off, &sh, sizeof(sh)) < 0)
			return SKN_PARSE_MALFORMED;
		p->sport_be = sh.source;
		p->dport_be = sh.dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct skn_icmphdr ih;

		if (bpf_skb_load_bytes(skb, l4_off, &ih, sizeof(ih)) < 0)
			return SKN_PARSE_MALFORMED;
		p->icmp_type = ih.type;
		if (ih.type == SKN_ICMP_ECHO || ih.type == SKN_ICMP_ECHOREPLY) {
			p->sport_be = ih.echo_id;
			p->dport_be = ih.echo_id;
		} else if (skn_icmp_is_error(ih.type)) {
			skn_parse_icmp_inner(skb, l4_off + sizeof(ih), p);
		}
		break;
	}
	default:
		break;
	}
	return SKN_PARSE_OK;
}

#endif
