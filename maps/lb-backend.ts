/** skn_lb_backend: every backend by its id (bpf/maps/lb-backend.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32KeyCodec, type MapCodec } from "./codec.js";
import { lbProto, u16, type LbProtoNumber } from "./lb-svc.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const LB_BACKEND_MAP = "skn_lb_backend";
export const LB_BACKEND_MAX = 262144;

export const LbBackendFlag = {
  /**
   * Not ready (terminating): in slots only while no backend of the frontend is ready, else in no
   * slot, kept so that its TCP connections drain while UDP flows move on.
   */
  terminating: 1,
  /** A pod on this node. */
  local: 2,
} as const;

export interface LbBackendEntry {
  addr: string;
  /** Target port, resolved from the EndpointSlice. */
  port: number;
  proto: LbProtoNumber;
  /** LbBackendFlag bits. */
  flags: number;
}

export const lbBackendCodec: MapCodec<number, LbBackendEntry> = {
  name: LB_BACKEND_MAP,
  key: u32KeyCodec,
  value: {
    layout: layout("skn_lb_backend", 8, [
      { name: "addr_be", offset: 0, size: 4 },
      { name: "port_be", offset: 4, size: 2 },
      { name: "proto", offset: 6, size: 1 },
      { name: "flags", offset: 7, size: 1 },
    ]),
    encode(e) {
      const b = Buffer.alloc(8);
      writeIPv4(b, 0, e.addr);
      b.writeUInt16BE(u16("port", e.port), 4);
      b.writeUInt8(lbProto(e.proto), 6);
      if (!Number.isInteger(e.flags) || e.flags < 0 || e.flags > 255)
        throw new RangeError(`flags is not a u8: ${e.flags}`);
      b.writeUInt8(e.flags, 7);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb backend entry", bytes, 8);
      return {
        addr: readIPv4(b, 0),
        port: b.readUInt16BE(4),
        proto: lbProto(b.readUInt8(6)),
        flags: b.readUInt8(7),
      };
    },
  },
};

export function lbBackendKeyString(id: number): string {
  return String(id);
}

/** The backends map. Owns the fd: close it. */
export class LbBackendMap extends TypedMap<number, LbBackendEntry> {
  static openPinned(root: string): LbBackendMap {
    return new LbBackendMap(RawMap.openPinned(pinPath(root, LB_BACKEND_MAP)), lbBackendCodec);
  }
}
