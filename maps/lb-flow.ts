/** skn_lb_flow: the backend each translated flow was given, written by the datapath (bpf/maps/lb-flow.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { lbProto, u16, type LbProtoNumber } from "./lb-svc.js";
import { readIPv4, writeIPv4 } from "./net.js";
import { pinPath } from "./pins.js";

export const LB_FLOW_MAP = "skn_lb_flow";
export const LB_FLOW_MAX = 262144;

/** The flow as the client sent it: client → frontend. */
export interface LbFlowKey {
  client: string;
  frontend: string;
  clientPort: number;
  frontendPort: number;
  proto: LbProtoNumber;
}

export interface LbFlowEntry {
  backendId: number;
  svcId: number;
}

export const lbFlowCodec: MapCodec<LbFlowKey, LbFlowEntry> = {
  name: LB_FLOW_MAP,
  key: {
    layout: layout("skn_lb_flow_key", 16, [
      { name: "client_be", offset: 0, size: 4 },
      { name: "frontend_be", offset: 4, size: 4 },
      { name: "client_port_be", offset: 8, size: 2 },
      { name: "frontend_port_be", offset: 10, size: 2 },
      { name: "proto", offset: 12, size: 1 },
      { name: "_pad", offset: 13, size: 3 },
    ]),
    encode(k) {
      const b = Buffer.alloc(16);
      writeIPv4(b, 0, k.client);
      writeIPv4(b, 4, k.frontend);
      b.writeUInt16BE(u16("clientPort", k.clientPort), 8);
      b.writeUInt16BE(u16("frontendPort", k.frontendPort), 10);
      b.writeUInt8(lbProto(k.proto), 12);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb flow key", bytes, 16);
      return {
        client: readIPv4(b, 0),
        frontend: readIPv4(b, 4),
        clientPort: b.readUInt16BE(8),
        frontendPort: b.readUInt16BE(10),
        proto: lbProto(b.readUInt8(12)),
      };
    },
  },
  value: {
    layout: layout("skn_lb_flow", 8, [
      { name: "backend_id", offset: 0, size: 4 },
      { name: "svc_id", offset: 4, size: 4 },
    ]),
    encode(e) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(u32("backendId", e.backendId), 0);
      b.writeUInt32LE(u32("svcId", e.svcId), 4);
      return b;
    },
    decode(bytes) {
      const b = checkLength("lb flow entry", bytes, 8);
      return { backendId: b.readUInt32LE(0), svcId: b.readUInt32LE(4) };
    },
  },
};

/** The translated flows. Owns the fd: close it. */
export class LbFlowMap extends TypedMap<LbFlowKey, LbFlowEntry> {
  static openPinned(root: string): LbFlowMap {
    return new LbFlowMap(RawMap.openPinned(pinPath(root, LB_FLOW_MAP)), lbFlowCodec);
  }
}
