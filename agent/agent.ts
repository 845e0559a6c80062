/**
 * The node agent: adopts or loads the pinned datapath, watches the cluster, and keeps the node's
 * maps, overlay device, routes and masquerade rule equal to what the cluster says, by diff. It is
 * not in the packet path: stopping it leaves forwarding, policy and established flows running.
 *
 * A reconcile pass runs the steps of steps.ts through a StepRunner; they reach the kernel only
 * through a NodeDatapath (KernelDatapath on a node, a fake in tests).
 */
import type { KubeConfig, KubernetesObject, V1EndpointSlice } from "@kubernetes/client-node";
import { ENDPOINTS_MAP } from "../maps/endpoints.js";
import { IPCACHE_MAP, ipcacheCodec, ipcacheKeyString, type IpcacheEntry } from "../maps/ipcache.js";
import type { Prefix } from "../maps/net.js";
import {
  POLICY_MAP,
  policyCodec,
  policyKeyString,
  type PolicyEntry,
  type PolicyKey,
} from "../maps/policy.js";
import { CONNTRACK_MAP } from "../maps/conntrack.js";
import { serviceLbMode, type DatapathOptions } from "../maps/datapath/spec.js";
import { ENCAP_MODES, type AgentStatus, type EncapMode, type RoutingMode } from "../maps/agent-api.js";
import { MapReconciler } from "../maps/reconciler.js";
import type { PolicySource } from "../policy/source.js";
import {
  BASE_KINDS,
  ClusterWatch,
  SERVICE_KINDS,
  type ResourceKind,
  type WatchEventType,
} from "./k8s/watch.js";
import {
  endpointSliceView,
  nodeServiceAddresses,
  nodeView,
  podView,
  serviceView,
  trimObject,
  type NodeView,
  type PodView,
} from "./k8s/views.js";
import { errorFields, type Logger } from "./log.js";
import { AgentMetrics } from "./metrics.js";
import type { DatapathMaps, NodeDatapath } from "./node-datapath.js";
import { KernelDatapath } from "./node/kernel-datapath.js";
import type { BgpRouting } from "./routing/bgp.js";
import { ServiceLbState } from "./services.js";
import { StepError, StepRunner } from "./step-runner.js";
import {
  MapChanges,
  initialNodeState,
  nodeSteps,
  type NodeState,
  type NodeStep,
  type Pass,
} from "./steps.js";

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
  /**
   * "vxlan": pod traffic to other nodes is encapsulated (by `encap`). "native": it is routed
   * unencapsulated by the kernel's routes; the datapath's load-time setting `routingNative` must
   * agree (agent/main.ts sets both).
   */
  routing: RoutingMode;
  /**
   * Native routing's BGP (BIRD under the agent); absent: no BGP (direct routes only, or vxlan).
   * The agent starts it with the first pass and stops it in stop().
   */
  bgp?: BgpRouting;
  /** Pod address space of the whole cluster; the union of nodes' pod CIDRs when empty. */
  clusterCidrs: string[];
  datapath: DatapathOptions;
  verdictEvents: boolean;
  resyncIntervalMs: number;
  debounceMs: number;
  policy: PolicySource;
  log: Logger;
  metrics?: AgentMetrics;
  /**
   * The node's kernel side. Default: a KernelDatapath over `bpffsRoot`, `datapath` and
   * `cniConfDir`; tests give a fake.
   */
  nodeDatapath?: NodeDatapath;
}

export { ENCAP_MODES, type AgentStatus, type EncapMode };

/** What start() opened; reconcile passes run only once it exists. */
interface Opened {
  maps: DatapathMaps;
  ipcache: MapReconciler<Prefix, IpcacheEntry>;
  policy: MapReconciler<PolicyKey, PolicyEntry>;
  steps: StepRunner<Pass, NodeStep>;
  services: ServiceLbState;
}

function key(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

export class Agent {
  readonly options: AgentOptions;
  readonly metrics: AgentMetrics;
  readonly #log: Logger;
  readonly #datapath: NodeDatapath;
  #opened: Opened | undefined;
  #watch: ClusterWatch | undefined;
  readonly #nodes = new Map<string, NodeView>();
  readonly #pods = new Map<string, PodView>();
  /**
   * Pods by address: the namespace/name of the only pod there (the common case, no allocation), or
   * each pod there by namespace/name (stale objects may share an address).
   */
  readonly #podsByIp = new Map<string, string | Map<string, PodView>>();
  readonly #changes = new MapChanges();
  /** The Service maps' state; exists once start() opened the maps. */
  #services: ServiceLbState | undefined;
  /** Every informer has listed once: passes before that would program a partial cluster. */
  #synced = false;
  readonly #skipped = new Map<string, { kind: string; name: string; reason: string; detail: string }>();
  #timer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  /** The last pass left a step unapplied: try again after a pause even without events. */
  #retry = false;
  #lastPassAt = -Infinity;
  #stopped = false;
  #ready = false;
  #notReadyReason = "starting";
  readonly #node: NodeState = initialNodeState();
  #lastReconcile: { at: string; durationMs: number } | null = null;
  #fullResync = true;
  #readyWaiters: (() => void)[] = [];
  #refreshing: Promise<void> | undefined;
  /** The full resync's map audit while it runs. */
  #audit: Promise<void> | undefined;
  /** The full resync's plumbing lane while it runs. */
  #plumbing: Promise<void> | undefined;

  constructor(options: AgentOptions) {
    this.options = options;
    this.#log = options.log;
    this.metrics = options.metrics ?? new AgentMetrics();
    this.#datapath =
      options.nodeDatapath ??
      new KernelDatapath({
        bpffsRoot: options.bpffsRoot,
        datapath: options.datapath,
        cniConfDir: options.cniConfDir,
      });
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
    const report = this.#datapath.load();
    this.#log.info("datapath ready", {
      root,
      programs: report.programs.map((p) => `${p.name}:${p.action}`).join(","),
      maps: report.maps.map((m) => `${m.name}:${m.action}`).join(","),
    });
    const moved = await this.#datapath.moveAttachments(report);
    for (const m of moved)
      this.#log.info("program replaced in place", {
        ifname: m.ifname,
        direction: m.direction,
        from: m.from,
        to: m.to,
      });

    const maps = this.#datapath.openMaps();
    const ipcache = new MapReconciler(maps.ipcache, ipcacheCodec, ipcacheKeyString);
    const policy = new MapReconciler(maps.policy, policyCodec, policyKeyString);
    const serviceLb = serviceLbMode(this.options.datapath);
    const services = new ServiceLbState(this.options.nodeName, maps.lb);
    // Events may arrive before the state exists only if start() is re-entered: it is not.
    this.#services = services;
    const steps = new StepRunner<Pass, NodeStep>(
      nodeSteps({
        datapath: this.#datapath,
        maps,
        ipcache,
        policyMap: policy,
        node: this.#node,
        settings: this.options,
        log: this.#log,
        metrics: this.metrics,
        pods: () => this.#pods.values(),
        podAt: (ip) => this.#podAt(ip),
        changes: this.#changes,
        bgp: this.options.bgp,
        services,
        serviceLb,
      }),
      (step, durationMs) => {
        if (step.target !== undefined)
          this.metrics.reconcileDuration.observe({ target: step.target }, durationMs / 1000);
      },
    );
    this.#opened = { maps, ipcache, policy, steps, services };
    this.metrics.datapath = maps.metrics;
    // Adopt what the kernel holds: the first apply only writes differences.
    const lb = services.adopt(maps.lb);
    this.#log.info("adopted pinned maps", {
      ipcache: ipcache.resync(),
      policy: policy.resync(),
      lbSvc: lb.svc,
      lbBackend: lb.backend,
      serviceLb,
    });
    this.#fullResync = false;

    this.#watch = new ClusterWatch(
      this.options.kubeconfig,
      {
        onEvent: (kind, type, obj) => {
          this.#onEvent(kind, type, obj);
        },
        onPage: (kind, objects) => {
          if (kind === "Pod") this.#onPods(objects);
          else for (const o of objects) this.#onEvent(kind, "add", o);
        },
        onError: (kind) => {
          this.metrics.watchErrors.inc({ resource: kind });
        },
        onRestart: (kind) => {
          this.metrics.watchRestarts.inc({ resource: kind });
        },
      },
      this.#log,
      // The informers' caches keep only what the agent reads, not whole objects.
      { transform: trimObject, kinds: serviceLb === "bpf" ? [...BASE_KINDS, ...SERVICE_KINDS] : BASE_KINDS },
    );
    await this.#watch.start();
    this.#log.info("cluster state synced", { nodes: this.#nodes.size, pods: this.#pods.size });
    this.#synced = true;
    this.#changes.all();
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
          if (nodeName === this.options.nodeName)
            this.#services?.setNode(nodeName, type === "delete" ? [] : nodeServiceAddresses(obj));
          break;
        }
        case "Service":
          if (type === "delete")
            this.#services?.deleteService(obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
          else this.#services?.upsertService(serviceView(obj));
          break;
        case "EndpointSlice":
          if (type === "delete")
            this.#services?.deleteSlice(obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
          else
            this.#services?.upsertSlice(obj.metadata?.name ?? "", endpointSliceView(obj as V1EndpointSlice));
          break;
        case "Pod": {
          if (type === "delete") {
            this.#removePod(name);
            this.#skipped.delete(`Pod${name}`);
            policy.deletePod(obj.metadata?.namespace ?? "", obj.metadata?.name ?? "");
          } else {
            policy.upsertPod(obj);
            this.#setPod(name, obj);
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
      if (kind === "Pod" || kind === "Namespace" || kind === "NetworkPolicy") this.#noteEngineChange();
    } catch (err) {
      // A bad object must never take the agent down.
      const { error, ...more } = errorFields(err);
      this.#skip(kind, name, "error", error, false, { ...more });
      this.#changes.all();
    }
    this.#schedule();
  }

  /** A pod as the agent keeps it (by address, for the ipcache), or why it is skipped. */
  #setPod(name: string, obj: KubernetesObject): void {
    this.#removePod(name);
    this.#skipped.delete(`Pod${name}`);
    const v = podView(obj);
    if (v.ok) this.#addPod(name, v.value);
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

  /**
   * A page of the first Pod list: as an add event for each, the engine fed the page in one
   * transaction (PolicySource.upsertPods), so a pod costs its own work and not an event's.
   */
  #onPods(objects: readonly KubernetesObject[]): void {
    const policy = this.options.policy;
    if (policy.upsertPods === undefined) {
      for (const o of objects) this.#onEvent("Pod", "add", o);
      return;
    }
    for (const obj of objects) {
      const name = key(obj);
      try {
        this.#setPod(name, obj);
      } catch (err) {
        const { error, ...more } = errorFields(err);
        this.#skip("Pod", name, "error", error, false, { ...more });
        this.#changes.all();
      }
    }
    try {
      policy.upsertPods(objects);
      this.#noteEngineChange();
    } catch (err) {
      // The engine never throws for an object; a bug must not take the agent down either.
      this.#log.error("policy engine failed on a page of pods", errorFields(err));
      this.#changes.all();
    }
    this.#schedule();
  }

  /** What the engine's last event changed goes into the next pass's writes. */
  #noteEngineChange(): void {
    const c = this.options.policy.lastChange();
    for (const k of c.policyKeys) this.#changes.policyKeys.add(k);
    for (const a of c.addresses) this.#changes.addresses.add(a);
  }

  #addPod(key: string, v: PodView): void {
    this.#pods.set(key, v);
    const at = this.#podsByIp.get(v.ip);
    if (at === undefined) this.#podsByIp.set(v.ip, key);
    else if (typeof at !== "string") at.set(key, v);
    else if (at !== key) {
      const other = this.#pods.get(at);
      const both = new Map<string, PodView>([[key, v]]);
      if (other !== undefined) both.set(at, other);
      this.#podsByIp.set(v.ip, both);
    }
    this.#changes.addresses.add(v.ip);
  }

  #removePod(key: string): void {
    const v = this.#pods.get(key);
    if (v === undefined) return;
    this.#pods.delete(key);
    const at = this.#podsByIp.get(v.ip);
    if (at === key) this.#podsByIp.delete(v.ip);
    else if (at !== undefined && typeof at !== "string") {
      at.delete(key);
      const [only, ...more] = at.keys();
      if (only === undefined) this.#podsByIp.delete(v.ip);
      else if (more.length === 0) this.#podsByIp.set(v.ip, only);
    }
    this.#changes.addresses.add(v.ip);
  }

  #podAt(ip: string): PodView | undefined {
    const at = this.#podsByIp.get(ip);
    if (at === undefined) return undefined;
    if (typeof at === "string") return this.#pods.get(at);
    let best: [string, PodView] | undefined;
    for (const e of at) if (best === undefined || e[0] < best[0]) best = e;
    return best?.[1];
  }

  #skip(
    kind: string,
    name: string,
    reason: string,
    detail: string,
    quiet = false,
    more: Record<string, unknown> = {},
  ): void {
    const k = `${kind}${kind === "Node" ? "/" : ""}${name}`;
    const prev = this.#skipped.get(k);
    this.#skipped.set(k, { kind, name, reason, detail });
    if (prev?.reason === reason) return;
    this.metrics.objectsSkipped.inc({ kind, reason });
    if (quiet) this.#log.debug("object skipped", { kind, name, reason, detail, ...more });
    else this.#log.warn("object skipped", { kind, name, reason, detail, ...more });
  }

  /**
   * Runs a pass after `delayMs`; by default (an event) at once when no pass started within the
   * last debounceMs, else when that much has passed since: the first event after a quiet spell is
   * programmed without waiting, a burst is batched into one pass per debounceMs.
   */
  #schedule(delayMs?: number): void {
    if (this.#stopped || !this.#synced) return;
    delayMs ??= Math.max(0, this.#lastPassAt + this.options.debounceMs - performance.now());
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#lastPassAt = performance.now();
      this.#running = this.#reconcile()
        .catch((err: unknown) => {
          this.#log.error(
            "reconcile failed",
            err instanceof StepError ? { step: err.step, ...errorFields(err.cause) } : errorFields(err),
          );
          this.#again = true;
        })
        .finally(() => {
          this.#running = undefined;
          if (this.#again) {
            this.#again = false;
            this.#retry = false;
            this.#schedule();
          } else if (this.#retry) {
            this.#retry = false;
            this.#schedule(Math.max(this.options.debounceMs, 1000));
          }
        });
    }, delayMs);
  }

  /** One pass: node plumbing when it changed, then maps by diff; ready once all of it applied. */
  async #reconcile(): Promise<void> {
    const opened = this.#opened;
    if (opened === undefined) return;
    const started = performance.now();
    const full = this.#fullResync;
    this.#fullResync = false;
    if (full) {
      opened.services.resync();
      // Every step again, the on-link check re-reading the routes it rests on; the conflist stays.
      opened.steps.resync();
    }

    const own = this.#nodes.get(this.options.nodeName);
    if (own === undefined) {
      const skipped = this.#skipped.get(`Node/${this.options.nodeName}`);
      this.#setNotReady(
        skipped === undefined ? `node ${this.options.nodeName} not found in the cluster` : skipped.detail,
      );
      return;
    }
    const nodes = [...this.#nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
    const pass: Pass = { own, nodes, remote: nodes.filter((n) => n.name !== own.name) };
    // A full resync once the node is programmed: the plumbing in its own lane and the maps
    // audited in slices, both beside the passes events keep running.
    if (full && this.#ready) this.#startResyncLane(opened, pass);
    const applied = await opened.steps.run(
      pass,
      this.#plumbing === undefined ? undefined : (step) => step.plumbing !== true,
    );
    this.metrics.identities.set(this.options.policy.identities().size);

    const durationMs = performance.now() - started;
    this.#lastReconcile = { at: new Date().toISOString(), durationMs };
    this.metrics.reconcileDuration.observe({ target: "all" }, durationMs / 1000);
    // Ready means programmed: every step of a pass that started after the first lists applied.
    if (applied) this.#setReady();
    else {
      this.#setNotReady("some map entries could not be written; retrying");
      this.#retry = true;
    }
  }

  /**
   * The full resync's node plumbing (devices, programs, routes, masquerade: child processes and
   * netlink, hundreds of milliseconds on a loaded node) and the node's own addresses, in a lane
   * of its own: passes meanwhile run the map steps only, so events never wait for a process.
   * Then the map audit. One lane at a time; a pass follows it (plumbing an event changed meanwhile).
   */
  #startResyncLane(opened: Opened, pass: Pass): void {
    if (this.#plumbing !== undefined) return;
    this.#plumbing = (async () => {
      const local = await this.#datapath.localAddresses();
      this.#changes.localAddresses = local;
      await opened.steps.run(pass, (step) => step.plumbing === true);
    })()
      .catch((err: unknown) => {
        this.#log.error(
          "resync of the node's plumbing failed",
          err instanceof StepError ? { step: err.step, ...errorFields(err.cause) } : errorFields(err),
        );
      })
      .finally(() => {
        this.#plumbing = undefined;
        this.#startAudit(opened);
        this.#schedule(0);
      });
  }

  /**
   * The full resync's map audit, in the background: skn_ipcache and skn_policy are read in slices
   * and compared with what the agent wrote (MapReconciler.audit); between slices the event loop
   * runs, and a pass in flight finishes first, so events never wait behind more than one slice.
   * Drift goes into the next pass as keys to rewrite. One audit at a time.
   */
  #startAudit(opened: Opened): void {
    if (this.#audit !== undefined || this.#stopped) return;
    this.#audit = this.#runAudit(opened)
      .catch((err: unknown) => {
        this.#log.error("map audit failed", errorFields(err));
      })
      .finally(() => {
        this.#audit = undefined;
      });
  }

  async #runAudit(opened: Opened): Promise<void> {
    const pause = async (): Promise<boolean> => {
      await new Promise<void>((r) => setImmediate(r));
      while (this.#running !== undefined && !this.#stopped) await this.#running;
      return !this.#stopped;
    };
    const maps: [
      string,
      MapReconciler<Prefix, IpcacheEntry> | MapReconciler<PolicyKey, PolicyEntry>,
      Set<string>,
    ][] = [
      [IPCACHE_MAP, opened.ipcache, this.#changes.ipcacheKeys],
      [POLICY_MAP, opened.policy, this.#changes.policyKeys],
    ];
    for (const [map, reconciler, keys] of maps) {
      const started = performance.now();
      const r = await reconciler.audit({ pause });
      const fields = {
        map,
        checked: r.checked,
        altered: r.altered,
        extra: r.extra,
        missing: r.missing,
        complete: r.complete,
        slices: r.slices,
        maxSliceMs: Math.round(r.maxSliceMs * 100) / 100,
        durationMs: Math.round(performance.now() - started),
      };
      if (r.keys.length === 0) {
        this.#log.info("map audited", fields);
        continue;
      }
      for (const ks of r.keys) keys.add(ks);
      if (map === POLICY_MAP) this.#changes.policyRepairs++;
      for (const kind of ["altered", "extra", "missing"] as const)
        if (r[kind] > 0) this.metrics.mapDrift.inc({ map, kind }, r[kind]);
      this.#log.warn("map drift found; repairing", fields);
      this.#schedule(0);
    }
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
    const opened = this.#opened;
    if (opened === undefined) return;
    const { endpoints, conntrack } = opened.maps.occupancy();
    this.metrics.endpoints.set(endpoints.entries);
    this.metrics.mapEntries.set({ map: ENDPOINTS_MAP }, endpoints.entries);
    this.metrics.mapCapacity.set({ map: ENDPOINTS_MAP }, endpoints.capacity);
    this.metrics.mapEntries.set({ map: CONNTRACK_MAP }, conntrack.entries);
    this.metrics.mapCapacity.set({ map: CONNTRACK_MAP }, conntrack.capacity);
    this.metrics.mapCapacity.set({ map: IPCACHE_MAP }, opened.maps.ipcache.maxEntries);
    this.metrics.mapCapacity.set({ map: POLICY_MAP }, opened.maps.policy.maxEntries);
  }

  status(): AgentStatus {
    const own = this.#nodes.get(this.options.nodeName);
    const opened = this.#opened;
    return {
      node: this.options.nodeName,
      ready: this.#ready,
      reason: this.#notReadyReason,
      bpffsRoot: this.options.bpffsRoot,
      nodeIp: own?.internalIp ?? null,
      podCidr: own?.podCidr ?? null,
      overlay: this.#node.overlay,
      encap: { mode: this.options.encap, uplink: this.#node.uplink },
      routing: this.options.routing,
      nodeRoutes: this.#node.nodeRoutes.map((r) => {
        const peer = r.source === "bgp" ? this.options.bgp?.peerOf(r.podCidr) : undefined;
        return peer === undefined ? r : { ...r, peer };
      }),
      bgp: this.options.bgp?.status() ?? null,
      nodes: [...this.#nodes.values()],
      skipped: [...this.#skipped.values()],
      maps:
        opened === undefined
          ? []
          : [
              { name: IPCACHE_MAP, entries: opened.ipcache.size, capacity: opened.maps.ipcache.maxEntries },
              { name: POLICY_MAP, entries: opened.policy.size, capacity: opened.maps.policy.maxEntries },
            ],
      lastReconcile: this.#lastReconcile,
      policyErrors: this.options.policy.errors(),
    };
  }

  /** Pods the agent knows, by IP (skeinctl monitor names addresses with it). */
  podsByIp(): Map<string, { namespace: string; name: string; node: string }> {
    const out = new Map<string, { namespace: string; name: string; node: string }>();
    for (const ip of this.#podsByIp.keys()) {
      const p = this.#podAt(ip);
      if (p !== undefined) out.set(ip, { namespace: p.namespace, name: p.name, node: p.nodeName });
    }
    return out;
  }

  /**
   * Reads what the status shows from outside the process (BIRD's sessions, the node routes BGP
   * changes without a pass). Waits at most `maxWaitMs` (birdc on a loaded node can be slow): the
   * status then shows the previous reading, and the refresh finishes in the background. One
   * refresh at a time. Never throws.
   */
  async refreshStatus(maxWaitMs = 1000): Promise<void> {
    if (this.options.bgp === undefined) return;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#refreshing,
      new Promise<void>((r) => {
        timer = setTimeout(r, maxWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async #refresh(): Promise<void> {
    const bgp = this.options.bgp;
    if (bgp === undefined) return;
    await bgp.refresh();
    // BGP routes come and go without a pass: read the node routes again.
    const overlay = this.#node.overlay;
    if (overlay === null || this.#opened === undefined) return;
    const remote = [...this.#nodes.values()]
      .filter((n) => n.name !== this.options.nodeName)
      .sort((a, b) => a.name.localeCompare(b.name));
    try {
      this.#node.nodeRoutes = await this.#datapath.nodeRoutes(remote, overlay.ifname);
    } catch (err) {
      this.#log.warn("cannot read the node routes for the status", errorFields(err));
    }
  }

  /** Stops watching and closes the maps, and ends BIRD. The datapath and the routes stay as they are. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#resyncTimer);
    await this.#watch?.stop();
    await this.#running;
    await this.#plumbing;
    await this.#audit;
    const opened = this.#opened;
    this.#opened = undefined;
    this.metrics.datapath = undefined;
    opened?.maps.close();
    await this.options.bgp?.stop();
  }
}
