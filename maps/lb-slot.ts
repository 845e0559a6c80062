/** skn_lb_slot: a frontend's backends as numbered slots, local ones first (bpf/maps/lb-slot.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { pinPath } from "./pins.js";

export const LB_SLOT_MAP = "skn_lb_slot";
export const LB_SLOT_MAX = 262144;

export interface LbSlotKey {
  svcId: number;
  slot: number;
}

export interface LbSlotEntry {
  backendId: number;
}

export const lbSlotCodec: MapCodec<LbSlotKey, LbSlotEntry> = {
  name: LB_SLOT_MAP,
  key: {
    layout: layout("skn_lb_slot_key", 8, [
      { name: "svc_id", offset: 0, size: 4 },
      { name: "slot", offset: 4, size: 4 },
    ]),
    encode(k) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(u32("svcId", k.svcId), 0);
      b.writeUInt32LE(u32("slot", k.slot), 4);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb slot key", bytes, 8);
      return { svcId: b.readUInt32LE(0), slot: b.readUInt32LE(4) };
    },
  },
  value: {
    layout: layout("skn_lb_slot", 8, [
      { name: "backend_id", offset: 0, size: 4 },
      { name: "_pad", offset: 4, size: 4 },
    ]),
    encode(e) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(u32("backendId", e.backendId), 0);
      return b;
    },
    decode(bytes) {
      return { backendId: checkLength("lb slot entry", bytes, 8).readUInt32LE(0) };
    },
  },
};

export function lbSlotKeyString(k: LbSlotKey): string {
  return `${k.svcId}#${k.slot}`;
}

/** The slots map. Owns the fd: close it. */
export class LbSlotMap extends TypedMap<LbSlotKey, LbSlotEntry> {
  static openPinned(root: string): LbSlotMap {
    return new LbSlotMap(RawMap.openPinned(pinPath(root, LB_SLOT_MAP)), lbSlotCodec);
  }
}
