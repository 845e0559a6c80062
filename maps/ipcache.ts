/** skn_ipcache: every address the cluster knows, longest prefix first (bpf/maps/ipcache.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32, type MapCodec } from "./codec.js";
import { formatPrefix, parsePrefix, readIPv4, writeIPv4, type Prefix } from "./net.js";
import { pinPath } from "./pins.js";

export const IPCACHE_MAP = "skn_ipcache";
export const IPCACHE_MAX = 524288;

export const IpcacheFlag = {
  /** A local pod selected by an ingress policy: default deny in. */
  enforceIngress: 1,
  /** A local pod selected by an egress policy: default deny out. */
  enforceEgress: 2,
} as const;

export interface IpcacheEntry {
  identity: number;
  /** Node to encapsulate to; null: reached through the host stack. */
  tunnelIp: string | null;
  /** Identity of the longest ipBlock prefix holding the address; 0 = none. */
  cidrIdentity: number;
  flags: number;
}

export const ipcacheCodec: MapCodec<Prefix, IpcacheEntry> = {
  name: IPCACHE_MAP,
  key: {
    layout: layout("skn_ipcache_key", 8, [
      { name: "prefixlen", offset: 0, size: 4 },
      { name: "ip_be", offset: 4, size: 4 },
    ]),
    encode(p) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(p.length, 0);
      writeIPv4(b, 4, p.ip);
      return b;
    },
    decode(bytes) {
      const b = checkLength("ipcache key", bytes, 8);
      return parsePrefix(`${readIPv4(b, 4)}/${b.readUInt32LE(0)}`);
    },
  },
  value: {
    layout: layout("skn_ipcache_entry", 16, [
      { name: "identity", offset: 0, size: 4 },
      { name: "tunnel_ip_be", offset: 4, size: 4 },
      { name: "cidr_identity", offset: 8, size: 4 },
      { name: "flags", offset: 12, size: 4 },
    ]),
    encode(e) {
      const b = Buffer.alloc(16);
      b.writeUInt32LE(u32("identity", e.identity), 0);
      writeIPv4(b, 4, e.tunnelIp ?? "0.0.0.0");
      b.writeUInt32LE(u32("cidrIdentity", e.cidrIdentity), 8);
      b.writeUInt32LE(u32("flags", e.flags), 12);
      return b;
    },
    decode(bytes) {
      const b = checkLength("ipcache entry", bytes, 16);
      const tunnel = readIPv4(b, 4);
      return {
        identity: b.readUInt32LE(0),
        tunnelIp: tunnel === "0.0.0.0" ? null : tunnel,
        cidrIdentity: b.readUInt32LE(8),
        flags: b.readUInt32LE(12),
      };
    },
  },
};

export function ipcacheKeyString(p: Prefix): string {
  return formatPrefix(p);
}

/** The ipcache. Owns the fd: close it. */
export class IpcacheMap extends TypedMap<Prefix, IpcacheEntry> {
  static openPinned(root: string): IpcacheMap {
    return new IpcacheMap(RawMap.openPinned(pinPath(root, IPCACHE_MAP)), ipcacheCodec);
  }

  /**
   * The entry stored under exactly `prefix`, or undefined. `get()` is a longest-prefix match (a /32
   * inside a pod CIDR finds the CIDR's entry); this walks the keys instead, so it costs O(entries).
   */
  getExact(prefix: Prefix): IpcacheEntry | undefined {
    const want = ipcacheCodec.key.encode(prefix);
    for (const k of this.raw.keys()) if (k.equals(want)) return this.get(prefix);
    return undefined;
  }
}
