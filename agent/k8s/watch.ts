/**
 * Supervised informers (the real @kubernetes/client-node watch code) for the resources the agent
 * needs: always Nodes, Namespaces, Pods and NetworkPolicies; Services and EndpointSlices when the
 * agent translates Services (--service-lb bpf). client-node relists on 410 by itself but stops on any other error; the supervisor
 * restarts it with capped, jittered backoff. No promise rejection goes unhandled.
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  ListWatch,
  NetworkingV1Api,
  Watch,
  type KubeConfig,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { errorFields, type Logger } from "../log.js";

export type ResourceKind = "Node" | "Namespace" | "Pod" | "NetworkPolicy" | "Service" | "EndpointSlice";

/** The kinds every agent watches; the Service kinds are added with --service-lb bpf. */
export const BASE_KINDS: readonly ResourceKind[] = ["Node", "Namespace", "Pod", "NetworkPolicy"];
export const SERVICE_KINDS: readonly ResourceKind[] = ["Service", "EndpointSlice"];
export type WatchEventType = "add" | "update" | "delete";

export interface WatchHooks {
  onEvent(kind: ResourceKind, type: WatchEventType, obj: KubernetesObject): void;
  onError?(kind: ResourceKind, err: unknown): void;
  onRestart?(kind: ResourceKind): void;
}

interface Supervised {
  kind: ResourceKind;
  informer: ListWatch<KubernetesObject>;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  synced: boolean;
}

export interface WatchOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Applied to every listed and watched object before the informer caches it and hooks see it:
   * the cache then holds only what the agent reads. Default: objects as received.
   */
  transform?: (kind: ResourceKind, obj: KubernetesObject) => KubernetesObject;
  /** Which kinds to watch; BASE_KINDS when absent. */
  kinds?: readonly ResourceKind[];
}

/** A Watch whose objects pass through `transform` (ListWatch caches what the callback gets). */
class TransformingWatch extends Watch {
  readonly #transform: (obj: KubernetesObject) => KubernetesObject;

  constructor(kc: KubeConfig, transform: (obj: KubernetesObject) => KubernetesObject) {
    super(kc);
    this.#transform = transform;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase: string, apiObj: unknown, watchObj?: unknown) => {
        // ERROR and BOOKMARK objects are not resources: only their metadata/code is read.
        const obj =
          (phase === "ADDED" || phase === "MODIFIED" || phase === "DELETED") &&
          apiObj !== null &&
          typeof apiObj === "object"
            ? this.#transform(apiObj)
            : apiObj;
        callback(phase, obj, watchObj);
      },
      done,
    );
  }
}

export class ClusterWatch {
  readonly #kc: KubeConfig;
  readonly #hooks: WatchHooks;
  readonly #log: Logger;
  readonly #items: Supervised[] = [];
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #transform: ((kind: ResourceKind, obj: KubernetesObject) => KubernetesObject) | undefined;
  readonly #kinds: readonly ResourceKind[];
  #stopped = false;
  #syncWaiters: (() => void)[] = [];

  constructor(kc: KubeConfig, hooks: WatchHooks, log: Logger, options: WatchOptions = {}) {
    this.#kc = kc;
    this.#hooks = hooks;
    this.#log = log;
    this.#minBackoffMs = options.minBackoffMs ?? 500;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#transform = options.transform;
    this.#kinds = options.kinds ?? BASE_KINDS;
  }

  /** Starts every informer. Resolves once each has listed successfully at least once. */
  async start(): Promise<void> {
    const core = this.#kc.makeApiClient(CoreV1Api);
    const net = this.#kc.makeApiClient(NetworkingV1Api);
    const discovery = this.#kc.makeApiClient(DiscoveryV1Api);
    const defs: [
      ResourceKind,
      string,
      () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>,
    ][] = [
      ["Node", "/api/v1/nodes", () => core.listNode()],
      ["Namespace", "/api/v1/namespaces", () => core.listNamespace()],
      ["Pod", "/api/v1/pods", () => core.listPodForAllNamespaces()],
      [
        "NetworkPolicy",
        "/apis/networking.k8s.io/v1/networkpolicies",
        () => net.listNetworkPolicyForAllNamespaces(),
      ],
      ["Service", "/api/v1/services", () => core.listServiceForAllNamespaces()],
      [
        "EndpointSlice",
        "/apis/discovery.k8s.io/v1/endpointslices",
        () => discovery.listEndpointSliceForAllNamespaces(),
      ],
    ];
    for (const [kind, path, list] of defs) {
      if (!this.#kinds.includes(kind)) continue;
      // What makeInformer builds, kept as a ListWatch for its resource version.
      const transform = this.#transform;
      const informer =
        transform === undefined
          ? new ListWatch<KubernetesObject>(path, new Watch(this.#kc), list, false)
          : new ListWatch<KubernetesObject>(
              path,
              new TransformingWatch(this.#kc, (o) => transform(kind, o)),
              async () => {
                const r = await list();
                return { ...r, items: r.items.map((o) => transform(kind, o)) };
              },
              false,
            );
      const item: Supervised = { kind, informer, failures: 0, timer: undefined, synced: false };
      informer.on("add", (o) => {
        this.#hooks.onEvent(kind, "add", o);
      });
      informer.on("update", (o) => {
        this.#hooks.onEvent(kind, "update", o);
      });
      informer.on("delete", (o) => {
        this.#hooks.onEvent(kind, "delete", o);
      });
      informer.on("error", (err: unknown) => {
        this.#onError(item, err);
      });
      this.#items.push(item);
      this.#launch(item);
    }
    await new Promise<void>((resolve) => {
      this.#syncWaiters.push(resolve);
      this.#checkSynced();
    });
  }

  /** True when every informer has listed once. */
  get synced(): boolean {
    return this.#items.length > 0 && this.#items.every((i) => i.synced);
  }

  #checkSynced(): void {
    if (!this.synced) return;
    for (const w of this.#syncWaiters.splice(0)) w();
  }

  #launch(item: Supervised): void {
    if (this.#stopped) return;
    item.informer
      .start()
      .then(() => {
        if (item.informer.latestResourceVersion() !== "") {
          if (!item.synced)
            this.#log.info("watch synced", { resource: item.kind, objects: item.informer.list().length });
          item.synced = true;
          item.failures = 0;
          this.#checkSynced();
        }
      })
      .catch((err: unknown) => {
        this.#onError(item, err);
      });
  }

  #onError(item: Supervised, err: unknown): void {
    if (this.#stopped) return;
    this.#hooks.onError?.(item.kind, err);
    item.failures++;
    const base = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** (item.failures - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#log.warn("watch failed, restarting", {
      resource: item.kind,
      attempt: item.failures,
      backoffMs: delay,
      ...errorFields(err),
    });
    clearTimeout(item.timer);
    item.timer = setTimeout(() => {
      item.timer = undefined;
      this.#hooks.onRestart?.(item.kind);
      this.#launch(item);
    }, delay);
  }

  /** Objects currently known for a kind. */
  list(kind: ResourceKind): readonly KubernetesObject[] {
    return this.#items.find((i) => i.kind === kind)?.informer.list() ?? [];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const item of this.#items) {
      clearTimeout(item.timer);
      try {
        await item.informer.stop();
      } catch {
        // Stopping an informer whose request already failed is fine.
      }
    }
  }
}
