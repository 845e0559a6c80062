/** skn_lb_revnat: what a translated flow's replies are rewritten back to (bpf/maps/lb-revnat.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32KeyCodec, type MapCodec } from "./codec.js";
import { lbProto, u16, type LbProtoNumber } from "./lb-svc.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const LB_REVNAT_MAP = "skn_lb_revnat";
export const LB_REVNAT_MAX = 65536;

/** The frontend a svc_id stands for. */
export interface LbRevnatEntry {
  addr: string;
  port: number;
  proto: LbProtoNumber;
}

export const lbRevnatCodec: MapCodec<number, LbRevnatEntry> = {
  name: LB_REVNAT_MAP,
  key: u32KeyCodec,
  value: {
    layout: layout("skn_lb_revnat", 8, [
      { name: "addr_be", offset: 0, size: 4 },
      { name: "port_be", offset: 4, size: 2 },
      { name: "proto", offset: 6, size: 1 },
      { name: "_pad", offset: 7, size: 1 },
    ]),
    encode(e) {
      const b = Buffer.alloc(8);
      writeIPv4(b, 0, e.addr);
      b.writeUInt16BE(u16("port", e.port), 4);
      b.writeUInt8(lbProto(e.proto), 6);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb revnat entry", bytes, 8);
      return { addr: readIPv4(b, 0), port: b.readUInt16BE(4), proto: lbProto(b.readUInt8(6)) };
    },
  },
};

export function lbRevnatKeyString(svcId: number): string {
  return String(svcId);
}

/** The reverse-translation map. Owns the fd: close it. */
export class LbRevnatMap extends TypedMap<number, LbRevnatEntry> {
  static openPinned(root: string): LbRevnatMap {
    return new LbRevnatMap(RawMap.openPinned(pinPath(root, LB_REVNAT_MAP)), lbRevnatCodec);
  }
}
