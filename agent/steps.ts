/**
 * The agent's reconcile steps, in the order a pass runs them: the overlay device with its programs
 * and skn_config, routes to other nodes' pod CIDRs, the tunnel next-hop flag, masquerade, the
 * ipcache, the policy map, the Service maps, and last the CNI conflist (a runtime may call the plugin only once the
 * node is programmed). Each says what it depends on (StepRunner skips it while that is unchanged)
 * and acts only through the NodeDatapath.
 */
import type { EncapMode, NodeRoute, OverlayDevice, RoutingMode } from "../maps/agent-api.js";
import { ConfigFlag, type NodeConfig } from "../maps/config.js";
import { IPCACHE_MAP, type IpcacheEntry } from "../maps/ipcache.js";
import type { Prefix } from "../maps/net.js";
import { POLICY_MAP, type PolicyEntry, type PolicyKey } from "../maps/policy.js";
import type { ServiceLbMode } from "../maps/datapath/spec.js";
import type { ApplyResult, MapReconciler } from "../maps/reconciler.js";
import { IpcacheIndex, type IpcacheSlot, type PodInput } from "../policy/ipcache-builder.js";
import type { PolicySource } from "../policy/source.js";
import type { NodeView, PodView } from "./k8s/views.js";
import { errorFields, type Logger } from "./log.js";
import type { AgentMetrics } from "./metrics.js";
import type { DatapathMaps, NodeDatapath } from "./node-datapath.js";
import { classifyNodes } from "./node/native-routes.js";
import type { BgpRouting } from "./routing/bgp.js";
import type { ServiceLbState } from "./services.js";
import type { Step } from "./step-runner.js";

/** What one pass works from: the cluster's nodes as the watch last saw them. */
export interface Pass {
  own: NodeView;
  /** Every node, sorted by name. */
  nodes: readonly NodeView[];
  /** Every node but this one, sorted by name. */
  remote: readonly NodeView[];
}

/** What the steps learned about the node: later steps and the agent's status read it. */
export interface NodeState {
  overlay: OverlayDevice | null;
  /** The uplink with Skein's program on it (encap "bpf"), else null. */
  uplink: string | null;
  /** What the agent last wrote to skn_config. */
  config: NodeConfig | null;
  /** Counts the overlay step's writes of skn_config: the on-link flag is decided anew after each. */
  configWrites: number;
  /** The uplink's MTU: the pods' in native routing. */
  uplinkMtu: number | null;
  /** Native routing: the remote nodes not on the uplink's L2 segment, whose routes are BGP's. */
  routedNodes: readonly NodeView[];
  /** Native routing: the neighbour entries the routes step keeps managed (direct nodes). */
  nativeNeighbours: readonly string[];
  /** Every remote node's pod CIDR route, as the routes step last read it. */
  nodeRoutes: readonly NodeRoute[];
}

/** A NodeState before the first pass. */
export function initialNodeState(): NodeState {
  return {
    overlay: null,
    uplink: null,
    config: null,
    configWrites: 0,
    uplinkMtu: null,
    routedNodes: [],
    nativeNeighbours: [],
    nodeRoutes: [],
  };
}

export interface StepSettings {
  vxlanDevice: string;
  vxlanPort: number;
  encap: EncapMode;
  routing: RoutingMode;
  clusterCidrs: readonly string[];
  verdictEvents: boolean;
  bpffsRoot: string;
  cniDataDir?: string | undefined;
  policy: PolicySource;
}

/**
 * What events changed since the maps were last written: the ipcache and policy steps write only
 * these entries. `ipcacheAll`/`policyAll` ask for a whole diff instead (at start, on a full
 * resync, after a failed write, when the engine cannot say what changed).
 */
export class MapChanges {
  ipcacheAll = true;
  /** Pod addresses whose entry may have changed (added, removed, moved, re-identified). */
  readonly addresses = new Set<string>();
  policyAll = true;
  /** policyKeyStrings the engine added, removed or changed. */
  readonly policyKeys = new Set<string>();
  /** ipcache keyStrings (any prefix) to bring back to the desired entry: drift an audit found. */
  readonly ipcacheKeys = new Set<string>();
  /** The node's own addresses as a full resync read them; the whole ipcache is rebuilt only if they changed. */
  localAddresses: string[] | undefined;
  /** Counts drift handed to the policy step, which otherwise runs only when the engine changed. */
  policyRepairs = 0;

  all(): void {
    this.ipcacheAll = true;
    this.policyAll = true;
    this.addresses.clear();
    this.policyKeys.clear();
    this.ipcacheKeys.clear();
  }
}

export interface StepEnv {
  datapath: NodeDatapath;
  maps: DatapathMaps;
  ipcache: MapReconciler<Prefix, IpcacheEntry>;
  policyMap: MapReconciler<PolicyKey, PolicyEntry>;
  node: NodeState;
  settings: StepSettings;
  log: Logger;
  metrics: AgentMetrics;
  /** The pods the agent knows now (the watch keeps changing them while a pass awaits). */
  pods: () => Iterable<PodView>;
  /** The pod an address belongs to (of several, the smallest namespace/name). */
  podAt: (ip: string) => PodView | undefined;
  changes: MapChanges;
  /** Native routing's BGP (BIRD), when configured. */
  bgp?: BgpRouting | undefined;
  /** The Service maps' state; with mode "off" it is never fed, so the maps are kept empty. */
  services: ServiceLbState;
  serviceLb: ServiceLbMode;
}

/**
 * A step with the reconcile_duration_seconds target that times it, if any. `plumbing`: the node's
 * devices, routes and rules (child processes, netlink), which a full resync re-applies in a lane
 * of its own so that events' map writes never wait for them.
 */
export type NodeStep = Step<Pass> & { readonly target?: string; readonly plumbing?: boolean };

/** The steps, in order. */
export function nodeSteps(env: StepEnv): NodeStep[] {
  return [
    overlayStep(env),
    routesStep(env),
    bgpStep(env),
    onLinkStep(env),
    masqueradeStep(env),
    ipcacheStep(env),
    policyStep(env),
    servicesStep(env),
    conflistStep(env),
  ];
}

/** The overlay device exists by the time any later step runs (the overlay step threw otherwise). */
function overlayOf(node: NodeState): OverlayDevice {
  if (node.overlay === null) throw new Error("no overlay device yet");
  return node.overlay;
}

/** Overlay device, programs on it (and on the uplink), sysctls, skn_config. */
export function overlayStep({ datapath, maps, node, settings, log }: StepEnv): NodeStep {
  return {
    name: "overlay",
    plumbing: true,
    target: "overlay",
    key: ({ own }) => `${own.internalIp}|${own.podCidr}`,
    async apply({ own }) {
      const uplink = await datapath.uplinkFor(own.internalIp);
      const overlay = await datapath.ensureOverlayDevice({
        ifname: settings.vxlanDevice,
        port: settings.vxlanPort,
        nodeIp: own.internalIp,
        uplinkMtu: uplink.mtu,
      });
      datapath.attachOverlayPrograms(overlay.ifname);
      datapath.ensureForwardingSysctls(overlay.ifname);
      // Native routing keeps the VXLAN device: nodes still in vxlan mode send to it (a mixed cluster
      // while nodes switch), and from_uplink decapsulates their packets for local pods.
      const native = settings.routing === "native";
      const direct = settings.encap === "bpf" || native;
      // Service load balancing needs the uplink's hooks in either mode (world → NodePort).
      const hooked = direct || datapath.uplinkHooksAlways === true;
      // The uplink's program is in place before the config tells from_pod to use the uplink, and
      // (switching back to "device") removed only after the config stopped it.
      if (hooked) datapath.attachUplinkPrograms(uplink.ifname, native);
      node.uplinkMtu = uplink.mtu;
      // The on-link flag is decided by its own step, once the remote nodes are known.
      node.config = {
        vxlanIfindex: overlay.ifindex,
        nodeIp: own.internalIp,
        vxlanMac: overlay.mac,
        flags: settings.verdictEvents ? ConfigFlag.verdictEvents : 0,
        vxlanPort: settings.vxlanPort,
        uplinkIfindex: direct ? uplink.ifindex : 0,
      };
      maps.writeConfig(node.config);
      node.configWrites++;
      if (!hooked) datapath.detachUplinkPrograms(uplink.ifname);
      // The node address moved to another interface: the old uplink's filter would linger.
      if (node.uplink !== null && node.uplink !== uplink.ifname) datapath.detachUplinkPrograms(node.uplink);
      node.overlay = overlay;
      node.uplink = direct ? uplink.ifname : null;
      log.info("overlay ready", {
        device: overlay.ifname,
        ifindex: overlay.ifindex,
        mtu: overlay.mtu,
        uplink: uplink.ifname,
        encap: settings.encap,
        routing: settings.routing,
      });
      return true;
    },
  };
}

/**
 * Routes to the other nodes' pod CIDRs. vxlan: through the VXLAN device. native: `podCidr via
 * nodeIp dev uplink` (protocol 94) for the nodes on the uplink's L2 segment; the others are BGP's
 * (node.routedNodes). Either way the other mode's routes are removed, and the resulting route of
 * every node is read back for the status (node.nodeRoutes).
 */
export function routesStep({ datapath, node, settings, log }: StepEnv): NodeStep {
  return {
    name: "routes",
    plumbing: true,
    target: "routes",
    // The node's own address is the routes' `src`: a moved InternalIP rewrites them at once.
    key: ({ own, remote }) =>
      `${own.internalIp}|${node.uplink ?? ""}|${remote.map((n) => `${n.name},${n.internalIp},${n.podCidr}`).join(";")}`,
    async apply({ own, remote }) {
      const overlay = overlayOf(node).ifname;
      if (settings.routing === "native") {
        const uplink = node.uplink;
        if (uplink === null) throw new Error("native routing without an uplink");
        const classes = classifyNodes(await datapath.connectedPrefixes(uplink), remote);
        const r = await datapath.syncNativeRoutes(
          uplink,
          own.internalIp,
          classes.direct,
          node.nativeNeighbours,
        );
        node.nativeNeighbours = r.neighbours;
        node.routedNodes = classes.routed;
        const vx = await datapath.syncOverlayRoutes(overlay, own.internalIp, []);
        if (r.added.length + r.removed.length + vx.removed.length > 0)
          log.info("native routes", {
            added: r.added.join(","),
            removed: r.removed.join(","),
            vxlanRemoved: vx.removed.join(","),
          });
        if (classes.routed.length > 0)
          log.info("nodes off the uplink's segment: their routes come from BGP", {
            nodes: classes.routed.map((n) => `${n.name}=${n.internalIp}`).join(","),
          });
      } else {
        const r = await datapath.syncOverlayRoutes(
          overlay,
          own.internalIp,
          remote.map((n) => n.podCidr),
        );
        const native = await datapath.removeNativeRoutes();
        node.routedNodes = [];
        if (r.added.length + r.removed.length + native.length > 0)
          log.info("overlay routes", {
            added: r.added.join(","),
            removed: r.removed.join(","),
            nativeRemoved: native.join(","),
          });
      }
      try {
        node.nodeRoutes = await datapath.nodeRoutes(remote, overlay);
      } catch (err) {
        log.warn("cannot read the node routes back for the status", errorFields(err));
      }
      return true;
    },
  };
}

/**
 * Native routing's BGP: BIRD announces this node's pod CIDR and learns the other nodes' (only
 * theirs) from the configured peers or the node mesh; rewritten and reloaded in place when the
 * nodes change. Not applied (retried) while BIRD cannot be configured.
 */
export function bgpStep({ bgp, node, settings }: StepEnv): NodeStep {
  return {
    name: "bgp",
    plumbing: true,
    target: "bgp",
    key: ({ own, nodes }) =>
      bgp === undefined || settings.routing !== "native" || node.uplink === null
        ? null
        : `${own.name}|${own.internalIp}|${own.podCidr}|${node.uplink}|${nodes.map((n) => `${n.name},${n.internalIp},${n.podCidr}`).join(";")}`,
    async apply({ own, nodes }) {
      if (bgp === undefined || node.uplink === null) return true;
      return bgp.sync(own, nodes, node.uplink);
    },
  };
}

/**
 * Every remote node a neighbour on the uplink: the datapath hands bpf_redirect_neigh the node as
 * next hop and skips the route lookup (ConfigFlag.tunnelOnLink). Otherwise (a routed underlay)
 * the kernel routes. Only with encap "bpf".
 */
export function onLinkStep({ datapath, maps, node, log }: StepEnv): NodeStep {
  return {
    name: "on-link",
    plumbing: true,
    key: ({ remote }) =>
      node.uplink === null || node.config === null
        ? null
        : `${node.configWrites}|${node.uplink}|${remote.map((n) => n.internalIp).join(",")}`,
    async apply({ remote }) {
      const uplink = node.uplink;
      const config = node.config;
      if (uplink === null || config === null) return true;
      const remoteIps = remote.map((n) => n.internalIp);
      let onLink = false;
      try {
        onLink = await datapath.tunnelEndpointsOnLink(uplink, remoteIps);
      } catch (err) {
        // The shortcut is an optimisation: without the routes, the kernel keeps routing.
        log.warn("tunnel next hop: cannot read the routes; the kernel routes every packet", errorFields(err));
      }
      const was = config.flags;
      const flags = onLink ? was | ConfigFlag.tunnelOnLink : was & ~ConfigFlag.tunnelOnLink;
      if (flags !== was) {
        node.config = { ...config, flags };
        maps.writeConfig(node.config);
        log.info("tunnel next hop", { onLink, uplink, remoteNodes: remoteIps.length });
      }
      return true;
    },
  };
}

/** Masquerade for pod traffic leaving the cluster; notrack for the overlay's UDP. */
export function masqueradeStep({ datapath, node, settings }: StepEnv): NodeStep {
  const cluster = (nodes: readonly NodeView[]): readonly string[] =>
    settings.clusterCidrs.length > 0 ? settings.clusterCidrs : nodes.map((n) => n.podCidr);
  return {
    name: "masquerade",
    plumbing: true,
    key: ({ own, nodes }) => `${own.podCidr}|${cluster(nodes).join(",")}`,
    async apply({ own, nodes }) {
      await datapath.ensureMasquerade(
        own.podCidr,
        cluster(nodes),
        overlayOf(node).ifname,
        settings.vxlanPort,
      );
      return true;
    },
  };
}

/**
 * ipcache: every address of the cluster. Runs every pass. The whole map is diffed only when the
 * base changed (nodes, ipBlocks, the node's own addresses, read again on a full resync) or was
 * asked for; otherwise only the entries of the addresses events touched, and of the keys an audit
 * found drifted, are written.
 */
export function ipcacheStep(env: StepEnv): NodeStep {
  const { datapath, maps, settings, ipcache, changes } = env;
  let index: IpcacheIndex | undefined;
  let baseKey = "";
  /** The node's own addresses the index was built with. */
  let local = "";
  let desired = new Map<string, IpcacheSlot>();
  return {
    name: "ipcache",
    target: "ipcache",
    async apply({ own, nodes }) {
      const policy = settings.policy;
      const input = (p: PodView): PodInput => ({
        ip: p.ip,
        nodeName: p.nodeName,
        identity: policy.podIdentity(p.namespace, p.name) ?? 4,
        flags: p.nodeName === own.name ? policy.localFlags(p.ip) : 0,
      });
      const cidrs = policy.cidrPrefixes();
      const key = `${own.name}|${nodes.map((n) => `${n.name},${n.internalIp},${n.podCidr}`).join(";")}|${[...cidrs].join(";")}`;
      let r: ApplyResult;
      // A full resync read the node's own addresses again (in its lane): the pods' entries stand
      // unless they changed.
      let localAddresses = changes.localAddresses;
      changes.localAddresses = undefined;
      if (localAddresses !== undefined && localAddresses.join(",") !== local) changes.ipcacheAll = true;
      if (changes.ipcacheAll || index === undefined || key !== baseKey) {
        localAddresses ??= await datapath.localAddresses();
        // From here on synchronous: what events changed during the await is in what we read now.
        changes.ipcacheAll = false;
        changes.addresses.clear();
        changes.ipcacheKeys.clear();
        local = localAddresses.join(",");
        index = new IpcacheIndex({ localNodeName: own.name, localAddresses, nodes, cidrs });
        desired = index.baseEntries();
        for (const p of env.pods()) {
          const ks = `${p.ip}/32`;
          if (env.podAt(p.ip) !== p) continue;
          const e = index.podEntry(p.ip, input(p));
          if (e !== undefined) desired.set(ks, e);
        }
        baseKey = key;
        r = ipcache.apply(desired);
      } else {
        const keys: string[] = [];
        for (const ip of changes.addresses) {
          const ks = `${ip}/32`;
          const pod = env.podAt(ip);
          const e = index.podEntry(ip, pod === undefined ? undefined : input(pod));
          if (e === undefined) desired.delete(ks);
          else desired.set(ks, e);
          keys.push(ks);
        }
        changes.addresses.clear();
        // Drift repaired from the desired entries as they stand (base or pod, whichever it is).
        for (const ks of changes.ipcacheKeys) keys.push(ks);
        changes.ipcacheKeys.clear();
        r = ipcache.applyChanged(desired, keys);
      }
      if (r.failed > 0) changes.ipcacheAll = true;
      report(env, IPCACHE_MAP, r, maps.ipcache.maxEntries);
      return r.failed === 0;
    },
  };
}

/** Policy: only when the compiler's output changed or an audit found drift; again while writes fail. */
export function policyStep(env: StepEnv): NodeStep {
  const { maps, settings, policyMap, log, metrics } = env;
  return {
    name: "policy",
    target: "policy",
    key: () => `${settings.policy.version}|${env.changes.policyRepairs}`,
    apply() {
      const desired = settings.policy.desiredPolicy();
      const { changes } = env;
      let r: ApplyResult;
      if (changes.policyAll) {
        changes.policyAll = false;
        changes.policyKeys.clear();
        r = policyMap.apply(desired);
      } else {
        r = policyMap.applyChanged(desired, changes.policyKeys);
        changes.policyKeys.clear();
      }
      // A failed write is retried by a whole diff (which also makes room first when near full).
      if (r.failed > 0) changes.policyAll = true;
      report(env, POLICY_MAP, r, maps.policy.maxEntries);
      metrics.policyOverflow.set(r.overflow);
      if (r.overflow > 0)
        log.error("policy map full: some allow entries are not programmed (those flows are denied)", {
          desired: desired.size,
          capacity: maps.policy.maxEntries,
          missing: r.overflow,
          fix: "raise policyMapEntries (agent --policy-map-entries) and restart the agent on a drained node",
        });
      return r.failed === 0;
    },
  };
}

/**
 * The Service maps (skn_lb_*): with --service-lb bpf, the Services events changed are rebuilt and
 * their entries written (agent/services.ts); each pass's work is that of its events. With "off",
 * one whole pass per resync keeps the maps empty (what an earlier "bpf" agent left is removed, so
 * the datapath translates nothing and kube-proxy's translation is the only one).
 */
export function servicesStep(env: StepEnv): NodeStep {
  const { services, metrics, log } = env;
  return {
    name: "services",
    target: "services",
    // "bpf": every pass (the state knows what events changed); "off": once per resync.
    ...(env.serviceLb === "off" ? { key: () => "off" } : {}),
    apply() {
      const r = services.apply();
      for (const ms of r.latenciesMs) metrics.serviceProgrammingLatency.observe(ms / 1000);
      const c = services.counts();
      metrics.services.set(c.services);
      metrics.serviceFrontends.set(c.frontends);
      metrics.serviceBackends.set(c.backends);
      metrics.serviceProblems.set(c.problems);
      const capacity = {
        svc: env.maps.lb.svc.maxEntries,
        slot: env.maps.lb.slot.maxEntries,
        backend: env.maps.lb.backend.maxEntries,
        revnat: env.maps.lb.revnat.maxEntries,
        maglev: env.maps.lb.maglev.maxEntries,
      };
      for (const [name, res] of Object.entries(r.maps) as [keyof typeof capacity, ApplyResult][])
        report(env, `skn_lb_${name}`, res, capacity[name]);
      if (r.rebuilt > 0)
        log.debug("services programmed", {
          rebuilt: r.rebuilt,
          services: c.services,
          frontends: c.frontends,
          backends: c.backends,
          maxLatencyMs: Math.round(Math.max(0, ...r.latenciesMs) * 10) / 10,
        });
      return r.failed === 0;
    },
  };
}

/** The node is programmed: let the runtime call the plugin. Written again only when it changes. */
export function conflistStep({ datapath, node, settings, log }: StepEnv): NodeStep {
  return {
    name: "cni-config",
    keepOnResync: true,
    // Only once every map holds what the cluster says.
    afterAll: true,
    key: ({ own }) => `${own.podCidr}|${podMtu(node, settings)}`,
    apply({ own }) {
      const mtu = podMtu(node, settings);
      const path = datapath.writeConflist({
        podCidr: own.podCidr,
        bpffsRoot: settings.bpffsRoot,
        mtu,
        ...(settings.cniDataDir === undefined ? {} : { dataDir: settings.cniDataDir }),
      });
      log.info("CNI configuration written", { path, podCidr: own.podCidr, mtu });
      return true;
    },
  };
}

/** Pods' MTU: the uplink's with native routing (no encapsulation), the VXLAN device's otherwise. */
function podMtu(node: NodeState, settings: StepSettings): number {
  if (settings.routing === "native") {
    if (node.uplinkMtu === null) throw new Error("no uplink MTU yet");
    return node.uplinkMtu;
  }
  return overlayOf(node).mtu;
}

function report({ log, metrics }: StepEnv, map: string, r: ApplyResult, capacity: number): void {
  metrics.mapEntries.set({ map }, r.size);
  metrics.mapCapacity.set({ map }, capacity);
  if (r.failed > 0) {
    metrics.mapWriteFailures.inc({ map }, r.failed);
    log.error("map writes failed", { map, failed: r.failed, ...errorFields(r.firstError) });
  }
  if (r.upserted + r.deleted > 0)
    log.debug("map reconciled", { map, upserted: r.upserted, deleted: r.deleted, size: r.size });
}
