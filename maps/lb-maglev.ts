/** skn_lb_maglev: a Maglev table per consistent frontend (bpf/maps/lb-maglev.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, u32KeyCodec, type MapCodec } from "./codec.js";
import { pinPath } from "./pins.js";

export const LB_MAGLEV_MAP = "skn_lb_maglev";
export const LB_MAGLEV_MAX = 16384;
/** Table size: a prime (see the header for why 251). */
export const MAGLEV_M = 251;

/** MAGLEV_M backend ids; slot = hash(5-tuple) % MAGLEV_M. */
export type LbMaglevEntry = readonly number[];

export const lbMaglevCodec: MapCodec<number, LbMaglevEntry> = {
  name: LB_MAGLEV_MAP,
  key: u32KeyCodec,
  value: {
    layout: layout("skn_lb_maglev", 4 * MAGLEV_M, [{ name: "backend_id", offset: 0, size: 4 * MAGLEV_M }]),
    encode(e) {
      if (e.length !== MAGLEV_M)
        throw new RangeError(`a Maglev table has ${MAGLEV_M} slots, got ${e.length}`);
      const b = Buffer.alloc(4 * MAGLEV_M);
      e.forEach((id, i) => b.writeUInt32LE(u32(`backend_id[${i}]`, id), 4 * i));
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb maglev entry", bytes, 4 * MAGLEV_M);
      return Array.from({ length: MAGLEV_M }, (_v, i) => b.readUInt32LE(4 * i));
    },
  },
};

export function lbMaglevKeyString(svcId: number): string {
  return String(svcId);
}

/** The Maglev tables. Owns the fd: close it. */
export class LbMaglevMap extends TypedMap<number, LbMaglevEntry> {
  static openPinned(root: string): LbMaglevMap {
    return new LbMaglevMap(RawMap.openPinned(pinPath(root, LB_MAGLEV_MAP)), lbMaglevCodec);
  }
}
