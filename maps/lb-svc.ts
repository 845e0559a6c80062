/** skn_lb_svc: every Service frontend this node translates (bpf/maps/lb-svc.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const LB_SVC_MAP = "skn_lb_svc";
export const LB_SVC_MAX = 65536;

/** IPPROTO_* numbers a frontend may carry. */
export const LbProto = { tcp: 6, udp: 17, sctp: 132 } as const;
export type LbProtoNumber = (typeof LbProto)[keyof typeof LbProto];

/** Checks that `n` is TCP, UDP or SCTP. Throws RangeError. */
export function lbProto(n: number): LbProtoNumber {
  if (n !== 6 && n !== 17 && n !== 132)
    throw new RangeError(`not a Service protocol (TCP 6, UDP 17, SCTP 132): ${n}`);
  return n;
}

export function u16(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff)
    throw new RangeError(`${name} is not a u16: ${value}`);
  return value;
}

export const LbSvcFlag = {
  /** sessionAffinity: ClientIP (skn_lb_affinity, affinityTimeoutS). */
  affinity: 1,
  /** externalTrafficPolicy: Local (NodePort and external frontends). */
  extLocal: 2,
  /** internalTrafficPolicy: Local (ClusterIP frontends). */
  intLocal: 4,
  /** Pick through skn_lb_maglev: the same backend on every node. */
  consistent: 8,
  /** A NodePort on one of this node's addresses. */
  nodePort: 16,
  /** An externalIP or a LoadBalancer ingress IP. */
  external: 32,
} as const;

/** A frontend: address, port, protocol. */
export interface LbSvcKey {
  addr: string;
  port: number;
  proto: LbProtoNumber;
}

export interface LbSvcEntry {
  /** One id per frontend, never 0. */
  svcId: number;
  /** Usable backends (slots 0..count-1); 0: the frontend rejects. */
  count: number;
  /** Backends on this node, stored first. */
  localCount: number;
  /** LbSvcFlag bits. */
  flags: number;
  affinityTimeoutS: number;
}

export const lbSvcCodec: MapCodec<LbSvcKey, LbSvcEntry> = {
  name: LB_SVC_MAP,
  key: {
    layout: layout("skn_lb_svc_key", 8, [
      { name: "addr_be", offset: 0, size: 4 },
      { name: "port_be", offset: 4, size: 2 },
      { name: "proto", offset: 6, size: 1 },
      { name: "_pad", offset: 7, size: 1 },
    ]),
    encode(k) {
      const b = Buffer.alloc(8);
      writeIPv4(b, 0, k.addr);
      b.writeUInt16BE(u16("port", k.port), 4);
      b.writeUInt8(lbProto(k.proto), 6);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb svc key", bytes, 8);
      return { addr: readIPv4(b, 0), port: b.readUInt16BE(4), proto: lbProto(b.readUInt8(6)) };
    },
  },
  value: {
    layout: layout("skn_lb_svc", 16, [
      { name: "svc_id", offset: 0, size: 4 },
      { name: "count", offset: 4, size: 2 },
      { name: "local_count", offset: 6, size: 2 },
      { name: "flags", offset: 8, size: 4 },
      { name: "affinity_timeout_s", offset: 12, size: 4 },
    ]),
    encode(e) {
      if (e.localCount > e.count) throw new RangeError(`localCount ${e.localCount} > count ${e.count}`);
      const b = Buffer.alloc(16);
      b.writeUInt32LE(u32("svcId", e.svcId), 0);
      b.writeUInt16LE(u16("count", e.count), 4);
      b.writeUInt16LE(u16("localCount", e.localCount), 6);
      b.writeUInt32LE(u32("flags", e.flags), 8);
      b.writeUInt32LE(u32("affinityTimeoutS", e.affinityTimeoutS), 12);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb svc entry", bytes, 16);
      return {
        svcId: b.readUInt32LE(0),
        count: b.readUInt16LE(4),
        localCount: b.readUInt16LE(6),
        flags: b.readUInt32LE(8),
        affinityTimeoutS: b.readUInt32LE(12),
      };
    },
  },
};

/** The reconciler's key string: `10.96.0.10:53/17`. */
export function lbSvcKeyString(k: LbSvcKey): string {
  return `${k.addr}:${k.port}/${k.proto}`;
}

/** The frontends map. Owns the fd: close it. */
export class LbSvcMap extends TypedMap<LbSvcKey, LbSvcEntry> {
  static openPinned(root: string): LbSvcMap {
    return new LbSvcMap(RawMap.openPinned(pinPath(root, LB_SVC_MAP)), lbSvcCodec);
  }
}
