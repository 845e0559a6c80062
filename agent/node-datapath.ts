/**
 * What the agent's reconcile loop needs of the node's kernel: the pinned datapath and its maps, the
 * overlay device, routes, masquerade, sysctls, the programs on the uplink and the VXLAN device, and
 * the CNI conflist. agent/node/kernel-datapath.ts implements it over this network namespace and
 * bpffs; the fake in test/agent/ records calls, so the loop is testable without privileges.
 */
import type { OverlayDevice } from "../maps/agent-api.js";
import type { ConflistInput } from "../maps/cni-conflist.js";
import type { NodeConfig } from "../maps/config.js";
import type { PinnedLoadReport } from "../maps/datapath/pinned.js";
import type { IpcacheEntry } from "../maps/ipcache.js";
import type { LbMapPorts } from "../maps/lb-apply.js";
import type { MetricsMap } from "../maps/metrics.js";
import type { Prefix } from "../maps/net.js";
import type { PolicyEntry, PolicyKey } from "../maps/policy.js";
import type { MapPort } from "../maps/reconciler.js";
import type { TcDirection } from "../loader/index.js";
import type { Uplink } from "./node/overlay.js";

export type { Uplink };

/** A hook moved from a replaced program to its successor after an upgrade. */
export interface MovedAttachment {
  ifname: string;
  direction: TcDirection;
  from: number;
  to: number;
}

/** Entries and capacity of a map the agent does not write but reports. */
export interface Occupancy {
  entries: number;
  capacity: number;
}

/** The datapath's maps as the agent uses them. One owner: the agent, which calls `close()`. */
export interface DatapathMaps {
  readonly ipcache: MapPort<Prefix, IpcacheEntry>;
  readonly policy: MapPort<PolicyKey, PolicyEntry>;
  /** The five Service maps the agent writes (skn_lb_svc, _slot, _backend, _revnat, _maglev). */
  readonly lb: LbMapPorts;
  /** Writes skn_config. Throws SysError. */
  writeConfig(config: NodeConfig): void;
  /** The per-CPU counters metrics read at scrape time; undefined when there are none. */
  readonly metrics: MetricsMap | undefined;
  /** Read from the kernel at scrape time. */
  occupancy(): { endpoints: Occupancy; conntrack: Occupancy };
  /** Idempotent. */
  close(): void;
}

export interface NodeDatapath {
  /** Mounts bpffs, loads or adopts the pinned programs and maps. Throws VerifierError, SysError. */
  load(): PinnedLoadReport;
  /** Points hooks still running a program `report` replaced at its successor. Throws SysError. */
  moveAttachments(report: PinnedLoadReport): Promise<MovedAttachment[]>;
  /** Opens the pinned maps; the caller closes them. Throws SysError or a size mismatch. */
  openMaps(): DatapathMaps;

  /** The interface holding `nodeIp`, and its MTU. Throws when none has it. */
  uplinkFor(nodeIp: string): Promise<Uplink>;
  /** Creates or fixes up the VXLAN device. Throws IpCommandError. */
  ensureOverlayDevice(opts: {
    ifname: string;
    port: number;
    nodeIp: string;
    uplinkMtu: number;
  }): Promise<OverlayDevice>;
  /** Forwarding on, reverse-path filtering off on the overlay device. Throws the fs error. */
  ensureForwardingSysctls(overlayIfname: string): void;
  /** from_vxlan/to_vxlan on the VXLAN device. Throws SysError. */
  attachOverlayPrograms(ifname: string): void;
  /** from_uplink on the uplink (encap "bpf", or Service load balancing: then to_uplink too). Throws SysError. */
  attachUplinkPrograms(ifname: string): void;
  /** True when the uplink carries Skein's programs whatever the encap mode (Service load balancing). */
  readonly uplinkHooksAlways?: boolean;
  /** Removes Skein's uplink program from `ifname`, if there. Throws SysError. */
  detachUplinkPrograms(ifname: string): void;
  /** Makes the routes through `ifname` exactly `podCidrs`. Throws IpCommandError. */
  syncOverlayRoutes(
    ifname: string,
    nodeIp: string,
    podCidrs: readonly string[],
  ): Promise<{ added: string[]; removed: string[] }>;
  /** Is every address in `ips` a direct neighbour on `uplink`? Throws when the routes cannot be read. */
  tunnelEndpointsOnLink(uplink: string, ips: readonly string[]): Promise<boolean>;
  /** Skein's nftables table (masquerade, notrack for the overlay's UDP). Throws when nft fails. */
  ensureMasquerade(
    localPodCidr: string,
    clusterCidrs: readonly string[],
    overlayIfname: string,
    vxlanPort: number,
  ): Promise<void>;
  /** Every IPv4 address this node owns. */
  localAddresses(): Promise<string[]>;
  /** Writes the CNI conflist atomically; returns its path. Throws the fs error. */
  writeConflist(input: ConflistInput): string;
}
