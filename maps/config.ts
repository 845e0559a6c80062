/** skn_config: facts about this node the agent learns at run time (bpf/maps/config.h). */
import { RawMap } from "../loader/index.js";
import { TypedMap, checkLength, layout, u32KeyCodec, type MapCodec } from "./codec.js";
import { parseIPv4, readIPv4, readMac, writeIPv4, writeMac } from "./net.js";
import { pinPath } from "./pins.js";

export const CONFIG_MAP = "skn_config";

export const ConfigFlag = {
  /** Emit an event for every policy verdict, not only drops. */
  verdictEvents: 1,
  /** Every tunnel endpoint is a direct neighbour on the uplink: the datapath names it as the next
   * hop and skips the kernel's route lookup (bpf/maps/config.h SKN_CFG_TUNNEL_ONLINK). */
  tunnelOnLink: 2,
} as const;

export interface NodeConfig {
  /** 0 until the overlay is set up. */
  vxlanIfindex: number;
  /** This node's underlay address; 0.0.0.0 until known. */
  nodeIp: string;
  /** This node's VXLAN device MAC. */
  vxlanMac: string;
  flags: number;
  /** The VXLAN UDP port (0 reads as 4789 in the datapath). */
  vxlanPort: number;
  /** Non-zero: the datapath encapsulates in BPF and sends straight out of this device. */
  uplinkIfindex: number;
}

/**
 * The MAC of a node's VXLAN device, derived from its underlay address (0e:5e:a:b:c:d, locally
 * administered). The datapath computes the same for the inner destination (bpf/lib/overlay.h).
 */
export function vxlanMacFor(nodeIp: string): string {
  const n = parseIPv4(nodeIp);
  return ["0e", "5e", n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
    .map((x) => (typeof x === "string" ? x : x.toString(16).padStart(2, "0")))
    .join(":");
}

export const EMPTY_CONFIG: NodeConfig = {
  vxlanIfindex: 0,
  nodeIp: "0.0.0.0",
  vxlanMac: "00:00:00:00:00:00",
  flags: 0,
  vxlanPort: 0,
  uplinkIfindex: 0,
};

export const configCodec: MapCodec<number, NodeConfig> = {
  name: CONFIG_MAP,
  key: u32KeyCodec,
  value: {
    layout: layout("skn_config", 24, [
      { name: "vxlan_ifindex", offset: 0, size: 4 },
      { name: "node_ip_be", offset: 4, size: 4 },
      { name: "vxlan_mac", offset: 8, size: 6 },
      { name: "vxlan_port_be", offset: 14, size: 2 },
      { name: "flags", offset: 16, size: 4 },
      { name: "uplink_ifindex", offset: 20, size: 4 },
    ]),
    encode(c) {
      const b = Buffer.alloc(24);
      b.writeUInt32LE(c.vxlanIfindex, 0);
      writeIPv4(b, 4, c.nodeIp);
      writeMac(b, 8, c.vxlanMac);
      b.writeUInt16BE(c.vxlanPort, 14);
      b.writeUInt32LE(c.flags, 16);
      b.writeUInt32LE(c.uplinkIfindex, 20);
      return b;
    },
    decode(bytes) {
      const b = checkLength("config", bytes, 24);
      return {
        vxlanIfindex: b.readUInt32LE(0),
        nodeIp: readIPv4(b, 4),
        vxlanMac: readMac(b, 8),
        flags: b.readUInt32LE(16),
        vxlanPort: b.readUInt16BE(14),
        uplinkIfindex: b.readUInt32LE(20),
      };
    },
  },
};

/** The single-entry config map. Owns the fd: close it. */
export class ConfigMap extends TypedMap<number, NodeConfig> {
  static openPinned(root: string): ConfigMap {
    return new ConfigMap(RawMap.openPinned(pinPath(root, CONFIG_MAP)), configCodec);
  }

  read(): NodeConfig {
    return this.get(0) ?? EMPTY_CONFIG;
  }

  write(config: NodeConfig): void {
    this.set(0, config);
  }
}
