/**
 * The NodeDatapath of a real node: the pinned datapath under a bpffs root (maps/datapath/), the
 * overlay plumbing of this network namespace (overlay.ts), the conflist in the CNI config dir.
 */
import { ConfigMap, type NodeConfig } from "../../maps/config.js";
import { ConntrackMap } from "../../maps/conntrack.js";
import {
  attachPinned,
  detachPinned,
  moveAttachmentsToReplacements,
  UPLINK_LB_PROGRAMS,
  UPLINK_PROGRAMS,
  VXLAN_PROGRAMS,
} from "../../maps/datapath/attach.js";
import { loadPinnedDatapath, type PinnedLoadReport } from "../../maps/datapath/pinned.js";
import type { DatapathOptions } from "../../maps/datapath/spec.js";
import { EndpointsMap } from "../../maps/endpoints.js";
import { IpcacheMap } from "../../maps/ipcache.js";
import { PinnedLbMaps } from "../../maps/lb-apply.js";
import { MetricsMap } from "../../maps/metrics.js";
import { PolicyMap } from "../../maps/policy.js";
import type { ConflistInput } from "../../maps/cni-conflist.js";
import { writeConflist } from "../cni-config.js";
import type { DatapathMaps, MovedAttachment, NodeDatapath } from "../node-datapath.js";
import {
  ensureForwardingSysctls,
  ensureNftables,
  ensureOverlayDevice,
  localAddresses,
  syncOverlayRoutes,
  tunnelEndpointsOnLink,
  uplinkFor,
} from "./overlay.js";

export interface KernelDatapathOptions {
  bpffsRoot: string;
  datapath: DatapathOptions;
  cniConfDir: string;
}

export class KernelDatapath implements NodeDatapath {
  readonly #root: string;
  readonly #datapath: DatapathOptions;
  readonly #cniConfDir: string;

  constructor(options: KernelDatapathOptions) {
    this.#root = options.bpffsRoot;
    this.#datapath = options.datapath;
    this.#cniConfDir = options.cniConfDir;
  }

  load(): PinnedLoadReport {
    return loadPinnedDatapath(this.#root, this.#datapath);
  }

  moveAttachments(report: PinnedLoadReport): Promise<MovedAttachment[]> {
    return moveAttachmentsToReplacements(this.#root, report);
  }

  openMaps(): DatapathMaps {
    return KernelMaps.open(this.#root);
  }

  uplinkFor = uplinkFor;
  ensureOverlayDevice = ensureOverlayDevice;
  ensureForwardingSysctls = ensureForwardingSysctls;
  tunnelEndpointsOnLink = tunnelEndpointsOnLink;
  localAddresses = localAddresses;

  /** Service load balancing in BPF: the node-side hooks, route and rule below are wired too. */
  get #serviceLb(): boolean {
    return this.#datapath.serviceLb === "bpf";
  }

  /** The other nodes' pod CIDRs, and with Service load balancing the Service CIDR (node → ClusterIP
   * is translated by skn_to_vxlan, lib/lb-host.h). */
  syncOverlayRoutes(
    ifname: string,
    nodeIp: string,
    podCidrs: readonly string[],
  ): Promise<{ added: string[]; removed: string[] }> {
    const serviceCidr = this.#datapath.settings?.serviceCidr ?? "";
    const extra = this.#serviceLb && serviceCidr !== "" ? [serviceCidr] : [];
    return syncOverlayRoutes(ifname, nodeIp, [...podCidrs, ...extra]);
  }

  ensureMasquerade(
    localPodCidr: string,
    clusterCidrs: readonly string[],
    overlayIfname: string,
    vxlanPort: number,
  ): Promise<void> {
    return ensureNftables(localPodCidr, clusterCidrs, overlayIfname, vxlanPort, {
      nodePortSnat: this.#serviceLb,
    });
  }

  attachOverlayPrograms(ifname: string): void {
    attachPinned(this.#root, ifname, VXLAN_PROGRAMS);
  }

  /** from_uplink; with Service load balancing also to_uplink (NodePort replies). */
  attachUplinkPrograms(ifname: string): void {
    attachPinned(this.#root, ifname, this.#serviceLb ? UPLINK_LB_PROGRAMS : UPLINK_PROGRAMS);
  }

  /** Both uplink hooks: a program left from Service load balancing goes too. */
  detachUplinkPrograms(ifname: string): void {
    detachPinned(ifname, UPLINK_LB_PROGRAMS);
  }

  /** Whether the uplink carries Skein's programs even with encap "device". */
  get uplinkHooksAlways(): boolean {
    return this.#serviceLb;
  }

  writeConflist(input: ConflistInput): string {
    return writeConflist(this.#cniConfDir, input);
  }
}

/** The pinned maps, each owned here until close(). */
class KernelMaps implements DatapathMaps {
  readonly ipcache: IpcacheMap;
  readonly policy: PolicyMap;
  readonly config: ConfigMap;
  readonly endpoints: EndpointsMap;
  readonly metrics: MetricsMap;
  readonly conntrack: ConntrackMap;
  readonly lb: PinnedLbMaps;

  private constructor(m: {
    ipcache: IpcacheMap;
    policy: PolicyMap;
    config: ConfigMap;
    endpoints: EndpointsMap;
    metrics: MetricsMap;
    conntrack: ConntrackMap;
    lb: PinnedLbMaps;
  }) {
    this.ipcache = m.ipcache;
    this.policy = m.policy;
    this.config = m.config;
    this.endpoints = m.endpoints;
    this.metrics = m.metrics;
    this.conntrack = m.conntrack;
    this.lb = m.lb;
  }

  /** Opens every map or none: a failure closes those already open and throws. */
  static open(root: string): KernelMaps {
    const opened: { close(): void }[] = [];
    const take = <T extends { close(): void }>(m: T): T => {
      opened.push(m);
      return m;
    };
    try {
      return new KernelMaps({
        ipcache: take(IpcacheMap.openPinned(root)),
        policy: take(PolicyMap.openPinned(root)),
        config: take(ConfigMap.openPinned(root)),
        endpoints: take(EndpointsMap.openPinned(root)),
        metrics: take(MetricsMap.openPinned(root)),
        conntrack: take(ConntrackMap.openPinned(root)),
        lb: take(PinnedLbMaps.open(root)),
      });
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
  }

  writeConfig(config: NodeConfig): void {
    this.config.write(config);
  }

  occupancy(): {
    endpoints: { entries: number; capacity: number };
    conntrack: { entries: number; capacity: number };
  } {
    return {
      endpoints: { entries: this.endpoints.count(), capacity: this.endpoints.maxEntries },
      conntrack: { entries: this.conntrack.count(), capacity: this.conntrack.maxEntries },
    };
  }

  close(): void {
    for (const m of [
      this.ipcache,
      this.policy,
      this.config,
      this.endpoints,
      this.metrics,
      this.conntrack,
      this.lb,
    ])
      m.close();
  }
}
