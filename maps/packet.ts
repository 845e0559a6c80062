/**
 * Crafted frames for BPF_PROG_TEST_RUN (tests, `skeinctl policy simulate`) and raw-socket probes:
 * Ethernet + IPv4 + TCP/UDP/SCTP/ICMP, and ARP, with correct lengths and checksums.
 */
import { parseIPv4 } from "./net.js";

export const EtherType = { IPv4: 0x0800, ARP: 0x0806, IPv6: 0x86dd } as const;
export const IpProto = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface Ipv4Spec {
  srcMac?: string;
  dstMac?: string;
  src: string;
  dst: string;
  protocol: number;
  ttl?: number;
  /** Fragment offset in 8-byte units; non-zero makes a non-first fragment. */
  fragmentOffset?: number;
  /** Bytes after the IPv4 header. */
  payload: Uint8Array;
}

function macBytes(mac: string | undefined): Buffer {
  return Buffer.from((mac ?? "02:00:00:00:00:01").replaceAll(":", ""), "hex");
}

/** RFC 1071 one's-complement checksum. */
export function inetChecksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudoHeaderSum(src: string, dst: string, protocol: number, length: number): number {
  const s = parseIPv4(src);
  const d = parseIPv4(dst);
  return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + protocol + length;
}

export function ethernet(
  dstMac: string | undefined,
  srcMac: string | undefined,
  etherType: number,
  payload: Uint8Array,
): Buffer {
  const b = Buffer.alloc(14 + payload.length);
  macBytes(dstMac).copy(b, 0);
  macBytes(srcMac).copy(b, 6);
  b.writeUInt16BE(etherType, 12);
  b.set(payload, 14);
  return b;
}

/** An IPv4 packet (no Ethernet header). */
export function ipv4Packet(spec: Omit<Ipv4Spec, "srcMac" | "dstMac">): Buffer {
  const b = Buffer.alloc(20 + spec.payload.length);
  b.writeUInt8(0x45, 0);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE(spec.fragmentOffset ?? 0, 6);
  b.writeUInt8(spec.ttl ?? 64, 8);
  b.writeUInt8(spec.protocol, 9);
  b.writeUInt32BE(parseIPv4(spec.src), 12);
  b.writeUInt32BE(parseIPv4(spec.dst), 16);
  b.writeUInt16BE(inetChecksum(b.subarray(0, 20)), 10);
  b.set(spec.payload, 20);
  return b;
}

export function ipv4Frame(spec: Ipv4Spec): Buffer {
  return ethernet(spec.dstMac, spec.srcMac, EtherType.IPv4, ipv4Packet(spec));
}

export interface L4Spec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload?: Uint8Array;
}

export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export function tcpSegment(l4: L4Spec & { flags?: number; seq?: number; ack?: number }): Buffer {
  const payload = l4.payload ?? new Uint8Array();
  const b = Buffer.alloc(20 + payload.length);
  b.writeUInt16BE(l4.sport, 0);
  b.writeUInt16BE(l4.dport, 2);
  b.writeUInt32BE(l4.seq ?? 1, 4);
  b.writeUInt32BE(l4.ack ?? 0, 8);
  b.writeUInt8(5 << 4, 12);
  b.writeUInt8(l4.flags ?? TcpFlags.SYN, 13);
  b.writeUInt16BE(65535, 14);
  b.set(payload, 20);
  b.writeUInt16BE(inetChecksum(b, pseudoHeaderSum(l4.src, l4.dst, IpProto.TCP, b.length)), 16);
  return b;
}

export function udpDatagram(l4: L4Spec): Buffer {
  const payload = l4.payload ?? new Uint8Array();
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(l4.sport, 0);
  b.writeUInt16BE(l4.dport, 2);
  b.writeUInt16BE(b.length, 4);
  b.set(payload, 8);
  b.writeUInt16BE(inetChecksum(b, pseudoHeaderSum(l4.src, l4.dst, IpProto.UDP, b.length)) || 0xffff, 6);
  return b;
}

/** CRC32c (Castagnoli), which SCTP uses for its checksum. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** An SCTP packet holding one INIT chunk (what opens an association). */
export function sctpInit(l4: L4Spec & { tag?: number }): Buffer {
  const chunk = Buffer.alloc(20);
  chunk.writeUInt8(1, 0); // INIT
  chunk.writeUInt16BE(20, 2);
  chunk.writeUInt32BE(l4.tag ?? 0x5e1c0001, 4); // initiate tag
  chunk.writeUInt32BE(65536, 8); // a_rwnd
  chunk.writeUInt16BE(1, 12); // outbound streams
  chunk.writeUInt16BE(1, 14); // inbound streams
  chunk.writeUInt32BE(1, 16); // initial TSN
  const b = Buffer.alloc(12 + chunk.length);
  b.writeUInt16BE(l4.sport, 0);
  b.writeUInt16BE(l4.dport, 2);
  b.writeUInt32BE(0, 4); // verification tag 0 for INIT
  chunk.copy(b, 12);
  b.writeUInt32LE(crc32c(b), 8);
  return b;
}

export const IcmpType = { echoReply: 0, destUnreachable: 3, echoRequest: 8, timeExceeded: 11 } as const;

export function icmpMessage(
  type: number,
  code: number,
  rest: number,
  body: Uint8Array = new Uint8Array(),
): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt8(type, 0);
  b.writeUInt8(code, 1);
  b.writeUInt32BE(rest >>> 0, 4);
  b.set(body, 8);
  b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

export function icmpEcho(id: number, seq: number, reply = false): Buffer {
  return icmpMessage(
    reply ? IcmpType.echoReply : IcmpType.echoRequest,
    0,
    ((id & 0xffff) << 16) | (seq & 0xffff),
  );
}

export interface ArpSpec {
  op: "request" | "reply";
  senderMac: string;
  senderIp: string;
  targetMac?: string;
  targetIp: string;
}

export function arpFrame(spec: ArpSpec, dstMac = "ff:ff:ff:ff:ff:ff"): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(EtherType.IPv4, 2);
  a.writeUInt8(6, 4);
  a.writeUInt8(4, 5);
  a.writeUInt16BE(spec.op === "request" ? 1 : 2, 6);
  macBytes(spec.senderMac).copy(a, 8);
  a.writeUInt32BE(parseIPv4(spec.senderIp), 14);
  macBytes(spec.targetMac ?? "00:00:00:00:00:00").copy(a, 18);
  a.writeUInt32BE(parseIPv4(spec.targetIp), 24);
  return ethernet(dstMac, spec.senderMac, EtherType.ARP, a);
}

/** A frame for a probe of `protocol` from src:sport to dst:dport that opens a flow. */
export function probeFrame(p: {
  protocol: "TCP" | "UDP" | "SCTP" | "ICMP";
  src: string;
  dst: string;
  sport: number;
  dport: number;
  srcMac?: string;
  dstMac?: string;
}): Buffer {
  const l4 = { src: p.src, dst: p.dst, sport: p.sport, dport: p.dport };
  const [protocol, payload] =
    p.protocol === "TCP"
      ? [IpProto.TCP, tcpSegment({ ...l4, flags: TcpFlags.SYN })]
      : p.protocol === "UDP"
        ? [IpProto.UDP, udpDatagram(l4)]
        : p.protocol === "SCTP"
          ? [IpProto.SCTP, sctpInit(l4)]
          : [IpProto.ICMP, icmpEcho(p.sport, 1)];
  return ipv4Frame({
    src: p.src,
    dst: p.dst,
    protocol,
    payload,
    ...(p.srcMac === undefined ? {} : { srcMac: p.srcMac }),
    ...(p.dstMac === undefined ? {} : { dstMac: p.dstMac }),
  });
}
