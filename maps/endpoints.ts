/** skn_endpoints: pods wired on this node, keyed by pod IPv4. Written by skein-cni (bpf/maps/endpoints.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, type MapCodec } from "./codec.js";
import { readIPv4, readMac, writeIPv4, writeMac } from "./net.js";
import { pinPath } from "./pins.js";

export const ENDPOINTS_MAP = "skn_endpoints";
export const ENDPOINTS_MAX = 65536;

export interface Endpoint {
  /** Host-side veth. */
  ifindex: number;
  /** Reserved, 0. */
  flags: number;
  /** Pod eth0 MAC. */
  mac: string;
  /** Host-side veth MAC: the gateway's MAC as the pod sees it. */
  hostMac: string;
}

const keyLayout = layout("skn_endpoint_key", 4, [{ name: "ip_be", offset: 0, size: 4 }]);
const valueLayout = layout("skn_endpoint", 20, [
  { name: "ifindex", offset: 0, size: 4 },
  { name: "flags", offset: 4, size: 4 },
  { name: "mac", offset: 8, size: 6 },
  { name: "host_mac", offset: 14, size: 6 },
]);

export const endpointsCodec: MapCodec<string, Endpoint> = {
  name: ENDPOINTS_MAP,
  key: {
    layout: keyLayout,
    encode(ip) {
      const b = Buffer.alloc(4);
      writeIPv4(b, 0, ip);
      return b;
    },
    decode(bytes) {
      return readIPv4(checkLength("endpoint key", bytes, 4), 0);
    },
  },
  value: {
    layout: valueLayout,
    encode(e) {
      const b = Buffer.alloc(20);
      b.writeUInt32LE(e.ifindex, 0);
      b.writeUInt32LE(e.flags, 4);
      writeMac(b, 8, e.mac);
      writeMac(b, 14, e.hostMac);
      return b;
    },
    decode(bytes) {
      const b = checkLength("endpoint", bytes, 20);
      return {
        ifindex: b.readUInt32LE(0),
        flags: b.readUInt32LE(4),
        mac: readMac(b, 8),
        hostMac: readMac(b, 14),
      };
    },
  },
};

/** The endpoints map, keyed by pod IP text. Owns the fd: close it. */
export class EndpointsMap extends TypedMap<string, Endpoint> {
  /** Opens the map pinned under `root`. Throws SysError (ENOENT: datapath not loaded) or on size mismatch. */
  static openPinned(root: string): EndpointsMap {
    return new EndpointsMap(RawMap.openPinned(pinPath(root, ENDPOINTS_MAP)), endpointsCodec);
  }
}
