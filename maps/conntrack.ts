/** skn_conntrack2: one entry per flow, both directions, normalised 5-tuple (bpf/maps/conntrack.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, type MapCodec } from "./codec.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const CONNTRACK_MAP = "skn_conntrack2";

/**
 * viaStack: the host stack delivered the flow's opening packet (a Service kube-proxy translated).
 * lb: Skein translated the flow to a backend (lbSvcId names the frontend replies are rewritten to);
 * lbHairpin: and the client was that backend (its source rewritten to the hairpin address).
 */
export const CtFlag = {
  initiatorB: 1,
  seenReply: 2,
  closing: 4,
  tunnelB: 8,
  viaStack: 16,
  lb: 32,
  lbHairpin: 64,
  /** Translated at the uplink (world → NodePort/external): replies rewritten in skn_to_uplink. */
  nodePort: 128,
} as const;

export interface CtKey {
  addrA: string;
  addrB: string;
  portA: number;
  portB: number;
  proto: number;
}

export interface CtEntry {
  createdNs: bigint;
  lastSeenNs: bigint;
  identityA: number;
  identityB: number;
  flags: number;
  ruleId: number;
  /** Node behind the remote side of a flow crossing the overlay (side b with CtFlag.tunnelB), or null. */
  tunnelIp: string | null;
  /** With CtFlag.lb: the frontend's svc_id (skn_lb_revnat key); 0 otherwise (the former _pad). */
  lbSvcId: number;
}

export const conntrackCodec: MapCodec<CtKey, CtEntry> = {
  name: CONNTRACK_MAP,
  key: {
    layout: layout("skn_ct_key", 16, [
      { name: "addr_a_be", offset: 0, size: 4 },
      { name: "addr_b_be", offset: 4, size: 4 },
      { name: "port_a_be", offset: 8, size: 2 },
      { name: "port_b_be", offset: 10, size: 2 },
      { name: "proto", offset: 12, size: 1 },
      { name: "_pad", offset: 13, size: 3 },
    ]),
    encode(k) {
      const b = Buffer.alloc(16);
      writeIPv4(b, 0, k.addrA);
      writeIPv4(b, 4, k.addrB);
      b.writeUInt16BE(k.portA, 8);
      b.writeUInt16BE(k.portB, 10);
      b.writeUInt8(k.proto, 12);
      return b;
    },
    decode(bytes) {
      const b = checkLength("conntrack key", bytes, 16);
      return {
        addrA: readIPv4(b, 0),
        addrB: readIPv4(b, 4),
        portA: b.readUInt16BE(8),
        portB: b.readUInt16BE(10),
        proto: b.readUInt8(12),
      };
    },
  },
  value: {
    layout: layout("skn_ct_entry", 40, [
      { name: "created_ns", offset: 0, size: 8 },
      { name: "last_seen_ns", offset: 8, size: 8 },
      { name: "identity_a", offset: 16, size: 4 },
      { name: "identity_b", offset: 20, size: 4 },
      { name: "flags", offset: 24, size: 4 },
      { name: "rule_id", offset: 28, size: 4 },
      { name: "tunnel_ip_be", offset: 32, size: 4 },
      { name: "lb_svc_id", offset: 36, size: 4 },
    ]),
    encode(e) {
      const b = Buffer.alloc(40);
      b.writeBigUInt64LE(e.createdNs, 0);
      b.writeBigUInt64LE(e.lastSeenNs, 8);
      b.writeUInt32LE(e.identityA, 16);
      b.writeUInt32LE(e.identityB, 20);
      b.writeUInt32LE(e.flags, 24);
      b.writeUInt32LE(e.ruleId, 28);
      writeIPv4(b, 32, e.tunnelIp ?? "0.0.0.0");
      b.writeUInt32LE(e.lbSvcId, 36);
      return b;
    },
    decode(bytes) {
      const b = checkLength("conntrack entry", bytes, 40);
      const tunnel = readIPv4(b, 32);
      return {
        createdNs: b.readBigUInt64LE(0),
        lastSeenNs: b.readBigUInt64LE(8),
        identityA: b.readUInt32LE(16),
        identityB: b.readUInt32LE(20),
        flags: b.readUInt32LE(24),
        ruleId: b.readUInt32LE(28),
        tunnelIp: tunnel === "0.0.0.0" ? null : tunnel,
        lbSvcId: b.readUInt32LE(36),
      };
    },
  },
};

/** The conntrack table. Owns the fd: close it. */
export class ConntrackMap extends TypedMap<CtKey, CtEntry> {
  static openPinned(root: string): ConntrackMap {
    return new ConntrackMap(RawMap.openPinned(pinPath(root, CONNTRACK_MAP)), conntrackCodec);
  }
}
