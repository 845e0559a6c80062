/**
 * The lab's kube-proxy: watches Services and EndpointSlices in the lab API server (client-node's
 * ListWatch, supervised as the agent's watches are) and keeps every node's kube-proxy rules
 * (lab/kube-proxy.ts) equal to them, rewriting them whole after a short debounce on any change.
 *
 * What it takes from the objects, as kube-proxy does: Services with a ClusterIP (not headless, not
 * ExternalName); their ports with node ports; endpoints from the EndpointSlices labelled with the
 * Service's name: ready ones, or, only when none is ready, the serving terminating ones;
 * externalTrafficPolicy Local (lab/kube-proxy.ts then gives NodePorts and externalIPs only this
 * node's endpoints).
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import {
  applyKubeProxy,
  type ProxiedService,
  type ProxyMode,
  type ServiceEndpoint,
  type ServicePortSpec,
} from "./kube-proxy.js";

/** The label an EndpointSlice carries naming its Service (discovery.k8s.io/v1). */
const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/** One endpoint's address per IP, with the node it is on and whether kube-proxy would use it. */
function sliceEndpoints(slice: V1EndpointSlice): (ServiceEndpoint & { terminating: boolean })[] {
  const out: (ServiceEndpoint & { terminating: boolean })[] = [];
  for (const ep of slice.endpoints) {
    const c = ep.conditions ?? {};
    // An unset ready means ready (discovery.k8s.io/v1); serving defaults to ready.
    const ready = c.ready !== false;
    const serving = c.serving ?? ready;
    const terminating = c.terminating === true;
    for (const address of ep.addresses)
      out.push({
        ip: address,
        nodeName: ep.nodeName ?? "",
        ready: ready && !terminating,
        terminating: serving && terminating,
      });
  }
  return out;
}

/**
 * The Services as lab/kube-proxy.ts takes them, from the API's Services and EndpointSlices (pure).
 * A port's target is the slices' port of the same name and protocol (the controller resolved named
 * ports), else the Service's numeric targetPort, else its port.
 */
export function proxiedServices(
  services: readonly V1Service[],
  slices: readonly V1EndpointSlice[],
): ProxiedService[] {
  const out: ProxiedService[] = [];
  for (const svc of services) {
    const spec = svc.spec;
    const namespace = svc.metadata?.namespace ?? "default";
    const name = svc.metadata?.name ?? "";
    const clusterIP = spec?.clusterIP ?? "";
    if (spec === undefined || spec.type === "ExternalName" || clusterIP === "" || clusterIP === "None")
      continue;
    const own = slices.filter(
      (s) =>
        (s.metadata?.namespace ?? "default") === namespace &&
        s.metadata?.labels?.[SERVICE_NAME_LABEL] === name &&
        s.addressType === "IPv4",
    );
    const ports: ServicePortSpec[] = [];
    for (const p of spec.ports ?? []) {
      const protocol = p.protocol ?? "TCP";
      if (protocol !== "TCP" && protocol !== "UDP") continue;
      const fromSlice = own
        .flatMap((s) => s.ports ?? [])
        .find((sp) => (sp.name ?? "") === (p.name ?? "") && (sp.protocol ?? "TCP") === protocol);
      const targetPort = fromSlice?.port ?? (typeof p.targetPort === "number" ? p.targetPort : p.port);
      ports.push({
        ...(p.name === undefined || p.name === "" ? {} : { name: p.name }),
        port: p.port,
        protocol,
        targetPort,
        ...(p.nodePort === undefined ? {} : { nodePort: p.nodePort }),
      });
    }
    const all = new Map<string, ServiceEndpoint & { terminating: boolean }>();
    for (const s of own) for (const e of sliceEndpoints(s)) if (!all.has(e.ip)) all.set(e.ip, e);
    const ready = [...all.values()].filter((e) => e.ready);
    // kube-proxy falls back to serving terminating endpoints only when no endpoint is ready.
    const chosen = ready.length > 0 ? ready : [...all.values()].filter((e) => e.terminating);
    out.push({
      name,
      namespace,
      clusterIP,
      ports,
      endpoints: chosen.map((e) => ({ ip: e.ip, nodeName: e.nodeName, ready: true })),
      externalTrafficPolicy: spec.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
      ...(spec.externalIPs === undefined || spec.externalIPs.length === 0
        ? {}
        : { externalIPs: [...spec.externalIPs] }),
    });
  }
  return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/** A node whose namespace gets the rules. */
export interface ProxyNode {
  name: string;
  netns: string;
}

export interface ServiceProxyOptions {
  mode: ProxyMode;
  /** The nodes to program (read on every sync, so nodes added later are programmed too). */
  nodes: () => readonly ProxyNode[];
  /** kube-proxy's --cluster-cidr. */
  clusterCidr?: string;
  debounceMs?: number;
  log?: (line: string) => void;
}

/** Writes one node's rules; replaced in unit tests. */
export type ApplyRules = (
  node: ProxyNode,
  mode: ProxyMode,
  services: readonly ProxiedService[],
  clusterCidr?: string,
) => Promise<void>;

const applyToNode: ApplyRules = (node, mode, services, clusterCidr) =>
  applyKubeProxy(node.netns, mode, services, {
    nodeName: node.name,
    ...(clusterCidr === undefined ? {} : { clusterCidr }),
  });

type Source = {
  list: () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>;
  path: string;
};

/**
 * The running proxy. `start` resolves once both watches have listed and the first rules are
 * written; `stop` ends the watches and waits for a sync in flight (the rules stay: the nodes'
 * namespaces go with the lab). Sync failures are logged and retried on the next change or after
 * a second.
 */
export class ServiceProxy {
  readonly #opts: Required<Omit<ServiceProxyOptions, "clusterCidr">> & { clusterCidr?: string };
  readonly #apply: ApplyRules;
  readonly #informers: ListWatch<KubernetesObject>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  #stopped = false;
  #applied: ProxiedService[] = [];
  #waiters: { pred: (s: readonly ProxiedService[]) => boolean; resolve: () => void }[] = [];

  private constructor(opts: ServiceProxyOptions, apply: ApplyRules) {
    this.#opts = {
      mode: opts.mode,
      nodes: opts.nodes,
      debounceMs: opts.debounceMs ?? 100,
      log: opts.log ?? (() => undefined),
      ...(opts.clusterCidr === undefined ? {} : { clusterCidr: opts.clusterCidr }),
    };
    this.#apply = apply;
  }

  /**
   * Starts watching through `kc`; the caller stops the proxy it gets. Throws, after ending what it
   * started, when the first list or the first rules fail.
   */
  static async start(
    kc: KubeConfig,
    opts: ServiceProxyOptions,
    apply: ApplyRules = applyToNode,
  ): Promise<ServiceProxy> {
    const proxy = new ServiceProxy(opts, apply);
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const sources: Source[] = [
      { path: "/api/v1/services", list: () => core.listServiceForAllNamespaces() },
      {
        path: "/apis/discovery.k8s.io/v1/endpointslices",
        list: () => discovery.listEndpointSliceForAllNamespaces(),
      },
    ];
    for (const s of sources) {
      const informer = new ListWatch<KubernetesObject>(s.path, new Watch(kc), s.list, false);
      for (const ev of ["add", "update", "delete"] as const)
        informer.on(ev, () => {
          proxy.#schedule();
        });
      informer.on("error", (err: unknown) => {
        proxy.#restart(informer, s.path, err);
      });
      proxy.#informers.push(informer);
    }
    try {
      await Promise.all(proxy.#informers.map((i) => i.start()));
      await proxy.sync();
    } catch (err) {
      // No proxy to hand out: end the watches here, or they keep the process alive.
      await proxy.stop();
      throw err;
    }
    return proxy;
  }

  get mode(): ProxyMode {
    return this.#opts.mode;
  }

  /** What the rules hold now (the last successful sync). */
  get services(): readonly ProxiedService[] {
    return this.#applied;
  }

  /** Resolves once a sync has written rules satisfying `pred`; throws after `timeoutMs`. */
  async waitFor(
    what: string,
    pred: (s: readonly ProxiedService[]) => boolean,
    timeoutMs = 10000,
  ): Promise<void> {
    if (pred(this.#applied)) return;
    let timer: NodeJS.Timeout | undefined;
    const waiter: { pred: typeof pred; resolve: () => void } = { pred, resolve: () => undefined };
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          waiter.resolve = resolve;
          this.#waiters.push(waiter);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`service proxy: ${what} not programmed within ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
    }
  }

  /** Writes every node's rules from the watches' current objects now (after any sync in flight). */
  async sync(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    this.#running = this.#syncOnce().finally(() => {
      this.#running = undefined;
    });
    await this.#running;
  }

  async #syncOnce(): Promise<void> {
    const [services, slices] = this.#informers.map((i) => i.list());
    const desired = proxiedServices(services ?? [], (slices ?? []) as V1EndpointSlice[]);
    for (const node of this.#opts.nodes())
      await this.#apply(node, this.#opts.mode, desired, this.#opts.clusterCidr);
    this.#applied = desired;
    const waiting = this.#waiters;
    this.#waiters = waiting.filter((w) => !w.pred(desired));
    for (const w of waiting) if (!this.#waiters.includes(w)) w.resolve();
  }

  #schedule(delayMs = this.#opts.debounceMs): void {
    if (this.#stopped) return;
    this.#dirty = true;
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#dirty || this.#stopped) return;
      this.#dirty = false;
      this.sync().catch((err: unknown) => {
        this.#opts.log(
          `service proxy: sync failed, retrying: ${err instanceof Error ? err.message : String(err)}`,
        );
        this.#schedule(1000);
      });
    }, delayMs);
  }

  #restart(informer: ListWatch<KubernetesObject>, path: string, err: unknown): void {
    if (this.#stopped) return;
    this.#opts.log(
      `service proxy: watch ${path} failed, restarting: ${err instanceof Error ? err.message : String(err)}`,
    );
    setTimeout(() => {
      if (this.#stopped) return;
      informer.start().catch((e: unknown) => {
        this.#restart(informer, path, e);
      });
    }, 500).unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const i of this.#informers) await i.stop().catch(() => undefined);
    if (this.#running !== undefined) await this.#running.catch(() => undefined);
  }
}
