/** skn_lb_affinity: sessionAffinity ClientIP, written by the datapath (bpf/maps/lb-affinity.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const LB_AFFINITY_MAP = "skn_lb_affinity";
export const LB_AFFINITY_MAX = 65536;

export interface LbAffinityKey {
  client: string;
  svcId: number;
}

export interface LbAffinityEntry {
  backendId: number;
  /** CLOCK_MONOTONIC of the client's last new flow to the frontend. */
  lastUsedNs: bigint;
}

export const lbAffinityCodec: MapCodec<LbAffinityKey, LbAffinityEntry> = {
  name: LB_AFFINITY_MAP,
  key: {
    layout: layout("skn_lb_affinity_key", 8, [
      { name: "client_be", offset: 0, size: 4 },
      { name: "svc_id", offset: 4, size: 4 },
    ]),
    encode(k) {
      const b = Buffer.alloc(8);
      writeIPv4(b, 0, k.client);
      b.writeUInt32LE(u32("svcId", k.svcId), 4);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb affinity key", bytes, 8);
      return { client: readIPv4(b, 0), svcId: b.readUInt32LE(4) };
    },
  },
  value: {
    layout: layout("skn_lb_affinity", 16, [
      { name: "backend_id", offset: 0, size: 4 },
      { name: "_pad", offset: 4, size: 4 },
      { name: "last_used_ns", offset: 8, size: 8 },
    ]),
    encode(e) {
      const b = Buffer.alloc(16);
      b.writeUInt32LE(u32("backendId", e.backendId), 0);
      b.writeBigUInt64LE(e.lastUsedNs, 8);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb affinity entry", bytes, 16);
      return { backendId: b.readUInt32LE(0), lastUsedNs: b.readBigUInt64LE(8) };
    },
  },
};

/** The affinity map. Owns the fd: close it. */
export class LbAffinityMap extends TypedMap<LbAffinityKey, LbAffinityEntry> {
  static openPinned(root: string): LbAffinityMap {
    return new LbAffinityMap(RawMap.openPinned(pinPath(root, LB_AFFINITY_MAP)), lbAffinityCodec);
  }
}
