/** skn_events: drop and verdict records from the ring buffer (bpf/maps/events.h). */
import { checkLength, layout } from "./codec.js";
import { readIPv4 } from "./net.js";
import { reasonName } from "./metrics.js";

export const EVENTS_MAP = "skn_events";

export const eventLayout = layout("skn_event", 48, [
  { name: "ts_ns", offset: 0, size: 8 },
  { name: "type", offset: 8, size: 1 },
  { name: "reason", offset: 9, size: 1 },
  { name: "dir", offset: 10, size: 1 },
  { name: "proto", offset: 11, size: 1 },
  { name: "ifindex", offset: 12, size: 4 },
  { name: "saddr_be", offset: 16, size: 4 },
  { name: "daddr_be", offset: 20, size: 4 },
  { name: "sport_be", offset: 24, size: 2 },
  { name: "dport_be", offset: 26, size: 2 },
  { name: "src_identity", offset: 28, size: 4 },
  { name: "dst_identity", offset: 32, size: 4 },
  { name: "rule_id", offset: 36, size: 4 },
  { name: "_pad", offset: 40, size: 4 },
]);

export type EventType = "drop" | "verdict";

export interface DatapathEvent {
  tsNs: bigint;
  type: EventType | `type_${number}`;
  reason: string;
  direction: "ingress" | "egress";
  proto: number;
  ifindex: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  srcIdentity: number;
  dstIdentity: number;
  ruleId: number;
}

export function decodeEvent(bytes: Uint8Array): DatapathEvent {
  const b = checkLength("event", bytes, 48);
  const type = b.readUInt8(8);
  return {
    tsNs: b.readBigUInt64LE(0),
    type: type === 1 ? "drop" : type === 2 ? "verdict" : `type_${type}`,
    reason: reasonName(b.readUInt8(9)),
    direction: b.readUInt8(10) === 0 ? "ingress" : "egress",
    proto: b.readUInt8(11),
    ifindex: b.readUInt32LE(12),
    saddr: readIPv4(b, 16),
    daddr: readIPv4(b, 20),
    sport: b.readUInt16BE(24),
    dport: b.readUInt16BE(26),
    srcIdentity: b.readUInt32LE(28),
    dstIdentity: b.readUInt32LE(32),
    ruleId: b.readUInt32LE(36),
  };
}
