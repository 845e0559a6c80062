/**
 * The node agent: adopts or loads the pinned datapath, watches the cluster, and keeps the node's
 * maps, overlay device, routes and masquerade rule equal to what the cluster says, by diff. It is
 * not in the packet path: stopping it leaves forwarding, policy and established flows running.
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { ConfigFlag, ConfigMap, type NodeConfig } from "../maps/config.js";
import { ENDPOINTS_MAP, EndpointsMap } from "../maps/endpoints.js";
import { IPCACHE_MAP, IpcacheMap, ipcacheCodec, ipcacheKeyString } from "../maps/ipcache.js";
import { MetricsMap } from "../maps/metrics.js";
import { POLICY_MAP, PolicyMap, policyCodec, policyKeyString } from "../maps/policy.js";
import { CONNTRACK_MAP, ConntrackMap } from "../maps/conntrack.js";
import {
  attachPinned,
  detachPinned,
  moveAttachmentsToReplacements,
  UPLINK_PROGRAMS,
  VXLAN_PROGRAMS,
} from "../maps/datapath/attach.js";
import { loadPinnedDatapath } from "../maps/datapath/pinned.js";
import type { DatapathOptions } from "../maps/datapath/spec.js";
import { ENCAP_MODES, type AgentStatus, type EncapMode } from "../maps/agent-api.js";
import { writeConflist } from "./cni-config.js";
import { ClusterWatch, type ResourceKind, type WatchEventType } from "./k8s/watch.js";
import { nodeView, podView, type NodeView, type PodView } from "./k8s/views.js";
import type { Logger } from "./log.js";
import { AgentMetrics } from "./metrics.js";
import {
  ensureForwardingSysctls,
  ensureNftables,
  ensureOverlayDevice,
  localAddresses,
  syncOverlayRoutes,
  tunnelEndpointsOnLink,
  uplinkFor,
} from "./node/overlay.js";
import type { OverlayDevice } from "../maps/agent-api.js";
import type { PolicySource } from "../policy/source.js";
import { buildIpcache } from "../policy/ipcache-builder.js";
import { MapReconciler } from "../maps/reconciler.js";

export interface AgentOptions {
  nodeName: string;
  kubeconfig: KubeConfig;
  bpffsRoot: string;
  cniConfDir: string;
  cniDataDir?: string;
  vxlanDevice: string;
  vxlanPort: number;
  /**
   * "bpf": the datapath encapsulates pod traffic itself and sends it straight out of the uplink,
   * and decapsulates VXLAN for local pods on the uplink's TC ingress (skipping the VXLAN device
   * both ways). "device": pod traffic goes through the VXLAN device. Node traffic always does.
   */
  encap: EncapMode;
  /** Pod address space of the whole cluster; the union of nodes' pod CIDRs when empty. */
  clusterCidrs: string[];
  datapath: DatapathOptions;
  verdictEvents: boolean;
  resyncIntervalMs: number;
  debounceMs: number;
  policy: PolicySource;
  log: Logger;
  metrics?: AgentMetrics;
}

export { ENCAP_MODES, type AgentStatus, type EncapMode };

interface Maps {
  ipcache: IpcacheMap;
  policy: PolicyMap;
  config: ConfigMap;
  endpoints: EndpointsMap;
  metrics: MetricsMap;
  conntrack: ConntrackMap;
}

function key(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

export class Agent {
  readonly options: AgentOptions;
  readonly metrics: AgentMetrics;
  readonly #log: Logger;
  #maps: Maps | undefined;
  #ipcache:
    MapReconciler<import("../maps/net.js").Prefix, import("../maps/ipcache.js").IpcacheEntry> | undefined;
  #policyRec:
    MapReconciler<import("../maps/policy.js").PolicyKey, import("../maps/policy.js").PolicyEntry> | undefined;
  #watch: ClusterWatch | undefined;
  readonly #nodes = new Map<string, NodeView>();
  readonly #pods = new Map<string, PodView>();
  readonly #skipped = new Map<string, { kind: string; name: string; reason: string; detail: string }>();
  #timer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #ready = false;
  #notReadyReason = "starting";
  #overlay: OverlayDevice | null = null;
  #uplink: string | null = null;
  /** What the agent last wrote to skn_config. */
  #config: NodeConfig | null = null;
  #appliedNodeKey = "";
  #appliedRoutesKey = "";
  #appliedOnLinkKey = "";
  #appliedMasqKey = "";
  #appliedConfKey = "";
  #appliedPolicyVersion = -1;
  #lastReconcile: { at: string; durationMs: number } | null = null;
  #fullResync = true;
  #readyWaiters: (() => void)[] = [];

  constructor(options: AgentOptions) {
    this.options = options;
    this.#log = options.log;
    this.metrics = options.metrics ?? new AgentMetrics();
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Resolves once the node is programmed and the CNI configuration written. */
  whenReady(): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((r) => this.#readyWaiters.push(r));
  }

  /** Loads or adopts the datapath, opens its maps, starts watching. Throws when the datapath cannot load. */
  async start(): Promise<void> {
    const root = this.options.bpffsRoot;
    const report = loadPinnedDatapath(root, this.options.datapath);
    this.#log.info("datapath ready", {
      root,
      programs: report.programs.map((p) => `${p.name}:${p.action}`).join(","),
      maps: report.maps.map((m) => `${m.name}:${m.action}`).join(","),
    });
    const moved = await moveAttachmentsToReplacements(root, report);
    for (const m of moved)
      this.#log.info("program replaced in place", {
        ifname: m.ifname,
        direction: m.direction,
        from: m.from,
        to: m.to,
      });

    const maps: Maps = {
      ipcache: IpcacheMap.openPinned(root),
      policy: PolicyMap.openPinned(root),
      config: ConfigMap.openPinned(root),
      endpoints: EndpointsMap.openPinned(root),
      metrics: MetricsMap.openPinned(root),
      conntrack: ConntrackMap.openPinned(root),
    };
    this.#maps = maps;
    this.metrics.datapath = maps.metrics;
    this.#ipcache = new MapReconciler(maps.ipcache, ipcacheCodec, ipcacheKeyString);
    this.#policyRec = new MapReconciler(maps.policy, policyCodec, policyKeyString);
    // Adopt what the kernel holds: the first apply only writes differences.
    this.#log.info("adopted pinned maps", {
      ipcache: this.#ipcache.resync(),
      policy: this.#policyRec.resync(),
    });
    this.#fullResync = false;

    this.#watch = new ClusterWatch(
      this.options.kubeconfig,
      {
        onEvent: (kind, type, obj) => {
          this.#onEvent(kind, type, obj);
        },
        onError: (kind) => {
          this.metrics.watchErrors.inc({ resource: kind });
        },
        onRestart: (kind) => {
          this.metrics.watchRestarts.inc({ resource: kind });
        },
      },
      this.#log,
    );
    await this.#watch.start();
    this.#log.info("cluster state synced", { nodes: this.#nodes.size, pods: this.#pods.size });
    this.#schedule(0);
    this.#resyncTimer = setInterval(() => {
      this.#fullResync = true;
      this.#schedule(0);
    }, this.options.resyncIntervalMs);
    this.#resyncTimer.unref();
  }

  #onEvent(kind: ResourceKind, type: WatchEventType, obj: KubernetesObject): void {
    const policy = this.options.policy;
    const name = key(obj);
    try {
      switch (kind) {
        case "Node": {
          const nodeName = obj.metadata?.name ?? "";
          this.#nodes.delete(nodeName);
          this.#skipped.delete(`Node${name}`);
          if (type !== "delete") {
            const v = nodeView(obj);
            if (v.ok) this.#nodes.set(v.value.name, v.value);
            else this.#skip("Node", nodeName, v.reason, v.detail);
          }
          break;
        }
        case "Pod": {
          this.#pods.delete(name);
          this.#skipped.delete(`Pod${name}`);
          if (type === "delete") policy.deletePod(obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
          else {
            policy.upsertPod(obj);
            const v = podView(obj);
            if (v.ok) this.#pods.set(name, v.value);
            // A pod without an IP is normal while it starts; count it, log it at debug level.
            else
              this.#skip(
                "Pod",
                name,
                v.reason,
                v.detail,
                v.reason === "no-ip" ||
                  v.reason === "host-network" ||
                  v.reason === "terminated" ||
                  v.reason === "unscheduled",
              );
          }
          break;
        }
        case "Namespace":
          if (type === "delete") policy.deleteNamespace(obj.metadata?.name ?? "");
          else policy.upsertNamespace(obj);
          break;
        case "NetworkPolicy":
          if (type === "delete") policy.deletePolicy(obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
          else policy.upsertPolicy(obj);
          break;
      }
    } catch (err) {
      // A bad object must never take the agent down.
      this.#skip(kind, name, "error", err instanceof Error ? err.message : String(err));
    }
    this.#schedule();
  }

  #skip(kind: string, name: string, reason: string, detail: string, quiet = false): void {
    const k = `${kind}${kind === "Node" ? "/" : ""}${name}`;
    const prev = this.#skipped.get(k);
    this.#skipped.set(k, { kind, name, reason, detail });
    if (prev?.reason === reason) return;
    this.metrics.objectsSkipped.inc({ kind, reason });
    if (quiet) this.#log.debug("object skipped", { kind, name, reason, detail });
    else this.#log.warn("object skipped", { kind, name, reason, detail });
  }

  #schedule(delayMs = this.options.debounceMs): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#reconcile()
        .catch((err: unknown) => {
          this.#log.error("reconcile failed", { error: err instanceof Error ? err.message : String(err) });
          this.#again = true;
        })
        .finally(() => {
          this.#running = undefined;
          if (this.#again) {
            this.#again = false;
            this.#schedule(this.options.debounceMs);
          }
        });
    }, delayMs);
  }

  /** One pass: node plumbing when it changed, then maps by diff. */
  async #reconcile(): Promise<void> {
    const maps = this.#maps;
    const ipcacheRec = this.#ipcache;
    const policyRec = this.#policyRec;
    if (maps === undefined || ipcacheRec === undefined || policyRec === undefined) return;
    const started = performance.now();
    const full = this.#fullResync;
    this.#fullResync = false;
    if (full) {
      ipcacheRec.resync();
      policyRec.resync();
      // A full resync also re-reads the routes the on-link check rests on.
      this.#appliedNodeKey = this.#appliedRoutesKey = this.#appliedMasqKey = this.#appliedOnLinkKey = "";
    }

    const own = this.#nodes.get(this.options.nodeName);
    if (own === undefined) {
      const skipped = this.#skipped.get(`Node/${this.options.nodeName}`);
      this.#setNotReady(
        skipped === undefined ? `node ${this.options.nodeName} not found in the cluster` : skipped.detail,
      );
      return;
    }

    // Overlay device, programs on it, sysctls, config map.
    const nodeKey = `${own.internalIp}|${own.podCidr}`;
    if (nodeKey !== this.#appliedNodeKey) {
      const t = performance.now();
      const uplink = await uplinkFor(own.internalIp);
      const overlay = await ensureOverlayDevice({
        ifname: this.options.vxlanDevice,
        port: this.options.vxlanPort,
        nodeIp: own.internalIp,
        uplinkMtu: uplink.mtu,
      });
      attachPinned(this.options.bpffsRoot, overlay.ifname, VXLAN_PROGRAMS);
      ensureForwardingSysctls(overlay.ifname);
      const direct = this.options.encap === "bpf";
      // The uplink's program is in place before the config tells from_pod to use the uplink, and
      // (switching back to "device") removed only after the config stopped it.
      if (direct) attachPinned(this.options.bpffsRoot, uplink.ifname, UPLINK_PROGRAMS);
      // The on-link flag is decided below, once the remote nodes are known.
      this.#config = {
        vxlanIfindex: overlay.ifindex,
        nodeIp: own.internalIp,
        vxlanMac: overlay.mac,
        flags: this.options.verdictEvents ? ConfigFlag.verdictEvents : 0,
        vxlanPort: this.options.vxlanPort,
        uplinkIfindex: direct ? uplink.ifindex : 0,
      };
      maps.config.write(this.#config);
      this.#appliedOnLinkKey = "";
      if (!direct) detachPinned(uplink.ifname, UPLINK_PROGRAMS);
      // The node address moved to another interface: the old uplink's filter would linger.
      if (this.#uplink !== null && this.#uplink !== uplink.ifname)
        detachPinned(this.#uplink, UPLINK_PROGRAMS);
      this.#overlay = overlay;
      this.#uplink = direct ? uplink.ifname : null;
      this.#appliedNodeKey = nodeKey;
      this.metrics.reconcileDuration.observe({ target: "overlay" }, (performance.now() - t) / 1000);
      this.#log.info("overlay ready", {
        device: overlay.ifname,
        ifindex: overlay.ifindex,
        mtu: overlay.mtu,
        uplink: uplink.ifname,
        encap: this.options.encap,
      });
    }
    const overlay = this.#overlay;
    if (overlay === null) return;

    const nodes = [...this.#nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
    const remoteCidrs = nodes.filter((n) => n.name !== own.name).map((n) => n.podCidr);
    const routesKey = remoteCidrs.join(",");
    if (routesKey !== this.#appliedRoutesKey) {
      const t = performance.now();
      const r = await syncOverlayRoutes(overlay.ifname, own.internalIp, remoteCidrs);
      this.#appliedRoutesKey = routesKey;
      this.metrics.reconcileDuration.observe({ target: "routes" }, (performance.now() - t) / 1000);
      if (r.added.length + r.removed.length > 0)
        this.#log.info("overlay routes", { added: r.added.join(","), removed: r.removed.join(",") });
    }
    // Every remote node a neighbour on the uplink: the datapath hands bpf_redirect_neigh the node
    // as next hop and skips the route lookup. Otherwise (a routed underlay) the kernel routes.
    const uplinkName = this.#uplink;
    if (uplinkName !== null && this.#config !== null) {
      const remoteIps = nodes.filter((n) => n.name !== own.name).map((n) => n.internalIp);
      const onLinkKey = `${uplinkName}|${remoteIps.join(",")}`;
      if (onLinkKey !== this.#appliedOnLinkKey) {
        let onLink = false;
        try {
          onLink = await tunnelEndpointsOnLink(uplinkName, remoteIps);
        } catch (err) {
          // The shortcut is an optimisation: without the routes, the kernel keeps routing.
          this.#log.warn("tunnel next hop: cannot read the routes; the kernel routes every packet", {
            error: err instanceof Error ? err.message : String(err),
          });
        }
        const was = this.#config.flags;
        const flags = onLink ? was | ConfigFlag.tunnelOnLink : was & ~ConfigFlag.tunnelOnLink;
        if (flags !== was) {
          this.#config = { ...this.#config, flags };
          maps.config.write(this.#config);
          this.#log.info("tunnel next hop", { onLink, uplink: uplinkName, remoteNodes: remoteIps.length });
        }
        this.#appliedOnLinkKey = onLinkKey;
      }
    }
    const cluster =
      this.options.clusterCidrs.length > 0 ? this.options.clusterCidrs : nodes.map((n) => n.podCidr);
    const masqKey = `${own.podCidr}|${cluster.join(",")}`;
    if (masqKey !== this.#appliedMasqKey) {
      await ensureNftables(own.podCidr, cluster, overlay.ifname, this.options.vxlanPort);
      this.#appliedMasqKey = masqKey;
    }

    // ipcache: every address of the cluster.
    let t = performance.now();
    const policy = this.options.policy;
    const pods = [...this.#pods.values()].map((p) => ({
      ip: p.ip,
      nodeName: p.nodeName,
      identity: policy.podIdentity(p.namespace, p.name) ?? 4,
      flags: p.nodeName === own.name ? policy.localFlags(p.ip) : 0,
    }));
    const desiredIpcache = buildIpcache({
      localNodeName: own.name,
      localAddresses: await localAddresses(),
      nodes,
      pods,
      cidrs: policy.cidrPrefixes(),
    });
    const ipr = ipcacheRec.apply(desiredIpcache);
    this.#report(IPCACHE_MAP, ipr, maps.ipcache.maxEntries);
    this.metrics.reconcileDuration.observe({ target: "ipcache" }, (performance.now() - t) / 1000);

    // Policy: only when the compiler's output changed (or on resync).
    if (full || policy.version !== this.#appliedPolicyVersion) {
      t = performance.now();
      const version = policy.version;
      const pr = policyRec.apply(policy.desiredPolicy());
      this.#report(POLICY_MAP, pr, maps.policy.maxEntries);
      this.metrics.policyOverflow.set(pr.overflow);
      if (pr.overflow > 0)
        this.#log.error("policy map full: some allow entries are not programmed (those flows are denied)", {
          desired: policy.desiredPolicy().size,
          capacity: maps.policy.maxEntries,
          missing: pr.overflow,
          fix: "raise policyMapEntries (agent --policy-map-entries) and restart the agent on a drained node",
        });
      if (pr.failed === 0) this.#appliedPolicyVersion = version;
      this.metrics.reconcileDuration.observe({ target: "policy" }, (performance.now() - t) / 1000);
    }
    this.metrics.identities.set(policy.identities().size);

    // The node is programmed: let the runtime call the plugin.
    const confKey = `${own.podCidr}|${overlay.mtu}`;
    if (confKey !== this.#appliedConfKey) {
      const path = writeConflist(this.options.cniConfDir, {
        podCidr: own.podCidr,
        bpffsRoot: this.options.bpffsRoot,
        mtu: overlay.mtu,
        ...(this.options.cniDataDir === undefined ? {} : { dataDir: this.options.cniDataDir }),
      });
      this.#appliedConfKey = confKey;
      this.#log.info("CNI configuration written", { path, podCidr: own.podCidr, mtu: overlay.mtu });
    }
    const durationMs = performance.now() - started;
    this.#lastReconcile = { at: new Date().toISOString(), durationMs };
    this.metrics.reconcileDuration.observe({ target: "all" }, durationMs / 1000);
    this.#setReady();
  }

  #report(map: string, r: import("../maps/reconciler.js").ApplyResult, capacity: number): void {
    this.metrics.mapEntries.set({ map }, r.size);
    this.metrics.mapCapacity.set({ map }, capacity);
    if (r.failed > 0) {
      this.metrics.mapWriteFailures.inc({ map }, r.failed);
      this.#log.error("map writes failed", {
        map,
        failed: r.failed,
        error: r.firstError instanceof Error ? r.firstError.message : String(r.firstError),
      });
    }
    if (r.upserted + r.deleted > 0)
      this.#log.debug("map reconciled", { map, upserted: r.upserted, deleted: r.deleted, size: r.size });
  }

  #setReady(): void {
    if (!this.#ready) this.#log.info("node ready", { node: this.options.nodeName });
    this.#ready = true;
    this.#notReadyReason = "";
    this.metrics.ready.set(1);
    for (const w of this.#readyWaiters.splice(0)) w();
  }

  #setNotReady(reason: string): void {
    if (this.#notReadyReason !== reason) this.#log.warn("node not ready", { reason });
    this.#notReadyReason = reason;
    // Once programmed, the datapath keeps working; readiness only reflects the first programming.
    if (!this.#ready) this.metrics.ready.set(0);
  }

  /** Counts for metrics that are read from the kernel at scrape time. */
  refreshGauges(): void {
    const maps = this.#maps;
    if (maps === undefined) return;
    const endpoints = maps.endpoints.count();
    this.metrics.endpoints.set(endpoints);
    this.metrics.mapEntries.set({ map: ENDPOINTS_MAP }, endpoints);
    this.metrics.mapCapacity.set({ map: ENDPOINTS_MAP }, maps.endpoints.maxEntries);
    this.metrics.mapEntries.set({ map: CONNTRACK_MAP }, maps.conntrack.count());
    this.metrics.mapCapacity.set({ map: CONNTRACK_MAP }, maps.conntrack.maxEntries);
    this.metrics.mapCapacity.set({ map: IPCACHE_MAP }, maps.ipcache.maxEntries);
    this.metrics.mapCapacity.set({ map: POLICY_MAP }, maps.policy.maxEntries);
  }

  status(): AgentStatus {
    const own = this.#nodes.get(this.options.nodeName);
    const maps = this.#maps;
    return {
      node: this.options.nodeName,
      ready: this.#ready,
      reason: this.#notReadyReason,
      bpffsRoot: this.options.bpffsRoot,
      nodeIp: own?.internalIp ?? null,
      podCidr: own?.podCidr ?? null,
      overlay: this.#overlay,
      encap: { mode: this.options.encap, uplink: this.#uplink },
      nodes: [...this.#nodes.values()],
      skipped: [...this.#skipped.values()],
      maps:
        maps === undefined
          ? []
          : [
              { name: IPCACHE_MAP, entries: this.#ipcache?.size ?? 0, capacity: maps.ipcache.maxEntries },
              { name: POLICY_MAP, entries: this.#policyRec?.size ?? 0, capacity: maps.policy.maxEntries },
            ],
      lastReconcile: this.#lastReconcile,
      policyErrors: this.options.policy.errors(),
    };
  }

  /** Pods the agent knows, by IP (skeinctl monitor names addresses with it). */
  podsByIp(): Map<string, { namespace: string; name: string; node: string }> {
    return new Map(
      [...this.#pods.values()].map((p) => [p.ip, { namespace: p.namespace, name: p.name, node: p.nodeName }]),
    );
  }

  /** Stops watching and closes the maps. The datapath stays as it is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#resyncTimer);
    await this.#watch?.stop();
    await this.#running;
    const maps = this.#maps;
    this.#maps = undefined;
    this.metrics.datapath = undefined;
    if (maps !== undefined) for (const m of Object.values(maps) as Maps[keyof Maps][]) m.close();
  }
}
