/**
 * skn_policy: what each enforced endpoint allows (bpf/maps/policy.h). An LPM trie over
 * (endpoint, peer, direction, protocol, port): a rule without ports matches any protocol, a
 * protocol-only rule any port, and a port range is a few prefixes over the port's 16 bits.
 */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { formatIPv4, parseIPv4, readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const POLICY_MAP = "skn_policy";
export const POLICY_MAX_DEFAULT = 262144;

export type Direction = "ingress" | "egress";
export const DIRECTION_CODE: Record<Direction, number> = { ingress: 0, egress: 1 };
/** Direction code of egress entries keyed by the destination's address (bpf/lib/common.h). */
const EGRESS_BY_IP = 3;

export const Protocol = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;

const PREFIX_ANY_PROTO = 32 + 32 + 8;
const PREFIX_ANY_PORT = PREFIX_ANY_PROTO + 8;

export interface PolicyKey {
  /** The protected pod. */
  endpointIp: string;
  direction: Direction;
  /** Peer identity; 0 (Identity.any) = any peer. Ignored when `peerIp` is set. */
  peerIdentity: number;
  /**
   * Egress only: the destination pod's address instead of an identity. Named ports resolve per
   * destination pod, and pods sharing an identity may name different numbers.
   */
  peerIp?: string;
  /** IP protocol; undefined = any protocol (and any port). */
  protocol?: number;
  /** Destination port; undefined = any port of `protocol`. */
  port?: number;
  /** How many leading bits of `port` must match (16 = exactly `port`). */
  portBits?: number;
}

export interface PolicyEntry {
  /** The rule that allows it; the agent maps it to a policy name. */
  ruleId: number;
  flags: number;
}

function prefixLength(k: PolicyKey): number {
  if (k.protocol === undefined) return PREFIX_ANY_PROTO;
  if (k.port === undefined) return PREFIX_ANY_PORT;
  const bits = k.portBits ?? 16;
  if (!Number.isInteger(bits) || bits < 0 || bits > 16)
    throw new RangeError(`portBits must be 0..16, not ${bits}`);
  return PREFIX_ANY_PORT + bits;
}

/**
 * Canonical text of a key, for diffing desired against kernel state:
 * `endpoint|direction|peer|proto|port/bits`, peer being an identity number or `ip:ADDRESS`.
 * Built from a head and a tail so that callers holding many keys of one endpoint and peer (the
 * policy engine) can build them piecewise without a second copy of the format.
 */
export function policyKeyString(k: PolicyKey): string {
  return (
    policyKeyHead(k.endpointIp, k.direction, k.peerIp === undefined ? k.peerIdentity : { ip: k.peerIp }) +
    policyKeyTail(k)
  );
}

/** The `endpoint|direction|peer|` part of a policyKeyString. */
export function policyKeyHead(
  endpointIp: string,
  direction: Direction,
  peer: number | { ip: string },
): string {
  return `${endpointIp}|${direction}|${typeof peer === "number" ? peer : `ip:${peer.ip}`}|`;
}

/** The `proto|port/bits` part of a policyKeyString. */
export function policyKeyTail(t: Pick<PolicyKey, "protocol" | "port" | "portBits">): string {
  return `${t.protocol ?? "*"}|${t.port ?? "*"}/${t.portBits ?? (t.port === undefined ? 0 : 16)}`;
}

/** The key a policyKeyString names. Throws when `ks` is not one (checked by the round trip). */
export function parsePolicyKeyString(ks: string): PolicyKey {
  const [endpointIp, direction, peer, proto, portPart] = ks.split("|");
  const [port, bits] = (portPart ?? "").split("/");
  const byIp = peer?.startsWith("ip:") === true;
  const key: PolicyKey = {
    endpointIp: endpointIp ?? "",
    direction: direction === "egress" ? "egress" : "ingress",
    peerIdentity: byIp ? 0 : Number(peer),
  };
  if (byIp) key.peerIp = peer.slice(3);
  if (proto !== "*") key.protocol = Number(proto);
  if (port !== "*") {
    key.port = Number(port);
    key.portBits = Number(bits);
  }
  if (policyKeyString(key) !== ks) throw new Error(`${JSON.stringify(ks)} is not a policy key text`);
  return key;
}

export const policyCodec: MapCodec<PolicyKey, PolicyEntry> = {
  name: POLICY_MAP,
  key: {
    layout: layout("skn_policy_key", 16, [
      { name: "prefixlen", offset: 0, size: 4 },
      { name: "endpoint_ip_be", offset: 4, size: 4 },
      { name: "peer_identity", offset: 8, size: 4 },
      { name: "dir", offset: 12, size: 1 },
      { name: "proto", offset: 13, size: 1 },
      { name: "dport_be", offset: 14, size: 2 },
    ]),
    encode(k) {
      const b = Buffer.alloc(16);
      const len = prefixLength(k);
      b.writeUInt32LE(len, 0);
      writeIPv4(b, 4, k.endpointIp);
      if (k.peerIp !== undefined) {
        if (k.direction !== "egress") throw new RangeError("policy keys by peer address are egress only");
        b.writeUInt32LE(parseIPv4(k.peerIp), 8);
        b.writeUInt8(EGRESS_BY_IP, 12);
      } else {
        b.writeUInt32LE(u32("peerIdentity", k.peerIdentity), 8);
        b.writeUInt8(DIRECTION_CODE[k.direction], 12);
      }
      if (k.protocol !== undefined) b.writeUInt8(k.protocol, 13);
      if (k.port !== undefined) {
        const bits = len - PREFIX_ANY_PORT;
        const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
        b.writeUInt16BE(k.port & mask, 14);
      }
      return b;
    },
    decode(bytes) {
      const b = checkLength("policy key", bytes, 16);
      const len = b.readUInt32LE(0);
      const dir = b.readUInt8(12);
      const key: PolicyKey = {
        endpointIp: readIPv4(b, 4),
        direction: dir === 0 ? "ingress" : "egress",
        peerIdentity: dir === EGRESS_BY_IP ? 0 : b.readUInt32LE(8),
      };
      if (dir === EGRESS_BY_IP) key.peerIp = formatIPv4(b.readUInt32LE(8));
      if (len >= PREFIX_ANY_PORT) key.protocol = b.readUInt8(13);
      if (len > PREFIX_ANY_PORT) {
        key.port = b.readUInt16BE(14);
        key.portBits = Math.min(16, len - PREFIX_ANY_PORT);
      }
      return key;
    },
  },
  value: {
    layout: layout("skn_policy_entry", 8, [
      { name: "rule_id", offset: 0, size: 4 },
      { name: "flags", offset: 4, size: 4 },
    ]),
    encode(e) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(u32("ruleId", e.ruleId), 0);
      b.writeUInt32LE(u32("flags", e.flags), 4);
      return b;
    },
    decode(bytes) {
      const b = checkLength("policy entry", bytes, 8);
      return { ruleId: b.readUInt32LE(0), flags: b.readUInt32LE(4) };
    },
  },
};

/**
 * Splits the inclusive port range [from, to] into the fewest (port, bits) prefixes covering it
 * exactly: how endPort becomes LPM entries.
 */
export function portRangePrefixes(from: number, to: number): { port: number; bits: number }[] {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > 65535 || from > to)
    throw new RangeError(`bad port range ${from}-${to}`);
  const out: { port: number; bits: number }[] = [];
  let start = from;
  while (start <= to) {
    let size = 1;
    let bits = 16;
    // Grow the block while it stays aligned and inside the range.
    while (bits > 0 && start % (size * 2) === 0 && start + size * 2 - 1 <= to) {
      size *= 2;
      bits -= 1;
    }
    out.push({ port: start, bits });
    start += size;
  }
  return out;
}

/** The policy map. Owns the fd: close it. */
export class PolicyMap extends TypedMap<PolicyKey, PolicyEntry> {
  static openPinned(root: string): PolicyMap {
    return new PolicyMap(RawMap.openPinned(pinPath(root, POLICY_MAP)), policyCodec);
  }
}
