/**
 * Supervised informers (the real @kubernetes/client-node watch code) for the resources the agent
 * needs: always Nodes, Namespaces, Pods and NetworkPolicies; Services and EndpointSlices when the
 * agent translates Services (--service-lb bpf). client-node relists on 410 by itself but stops on any other error; the supervisor
 * restarts it with capped, jittered backoff. No promise rejection goes unhandled.
 *
 * The first lists are paged (`limit`/`continue`, as client-go's reflector does) and read as plain
 * JSON, each object reduced by `transform` as its page arrives: a 100,000-pod list neither holds
 * the API server on one 70 MiB answer nor passes through client-node's model classes.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { errorFields, type Logger } from "../log.js";
import { ListWatch, Watch } from "./client.js";

export type ResourceKind = "Node" | "Namespace" | "Pod" | "NetworkPolicy" | "Service" | "EndpointSlice";

/** The kinds every agent watches; the Service kinds are added with --service-lb bpf. */
export const BASE_KINDS: readonly ResourceKind[] = ["Node", "Namespace", "Pod", "NetworkPolicy"];
export const SERVICE_KINDS: readonly ResourceKind[] = ["Service", "EndpointSlice"];
export type WatchEventType = "add" | "update" | "delete";

export interface WatchHooks {
  onEvent(kind: ResourceKind, type: WatchEventType, obj: KubernetesObject): void;
  /**
   * Optional: a page of the first list at once, each object an "add" (else onEvent for each):
   * lets the agent work on a page as a batch.
   */
  onPage?(kind: ResourceKind, objects: readonly KubernetesObject[]): void;
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
  /** Objects per list request (default 5,000). */
  pageSize?: number;
  /**
   * Applied to every listed and watched object before the informer caches it and hooks see it:
   * the cache then holds only what the agent reads. Default: objects as received.
   */
  transform?: (kind: ResourceKind, obj: KubernetesObject) => KubernetesObject;
  /** Which kinds to watch; BASE_KINDS when absent. */
  kinds?: readonly ResourceKind[];
}

interface ListPage {
  items?: KubernetesObject[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/**
 * A whole list, `pageSize` objects per request, each passed through `transform` as its page
 * arrives and then, a page at a time, to `onPage` (when given). The next page is asked for before
 * a page is processed, so the API server serves it while the agent works. The resource version is
 * the first page's: later pages are served from that snapshot by a real API server, and a watch
 * from it replays whatever changed while paging.
 */
async function listPaged(
  kc: KubeConfig,
  path: string,
  pageSize: number,
  transform: ((o: KubernetesObject) => KubernetesObject) | undefined,
  onPage?: (objects: readonly KubernetesObject[]) => void,
): Promise<{ items: KubernetesObject[]; metadata: { resourceVersion: string } }> {
  const items: KubernetesObject[] = [];
  let resourceVersion: string | undefined;
  const fetchPage = (next: string | undefined): Promise<ListPage> => {
    const query = new URLSearchParams({ limit: String(pageSize) });
    if (next !== undefined) query.set("continue", next);
    const p = getJson(kc, `${path}?${query.toString()}`) as Promise<ListPage>;
    // Awaited below; until then a failure must not count as unhandled.
    p.catch(() => undefined);
    return p;
  };
  // The page as received is not referenced past this: by the time the agent works on a page, only
  // what `transform` kept of it is alive (a page of 5,000 pods parsed is ~20 MiB that would
  // otherwise be copied by every young-generation GC meanwhile).
  const nextPage = async (p: Promise<ListPage>) => {
    const page = await p;
    const c = page.metadata?.continue;
    return {
      items: (page.items ?? []).map((o) => (transform === undefined ? o : transform(o))),
      next: c === undefined || c === "" ? undefined : c,
      resourceVersion: page.metadata?.resourceVersion ?? "",
    };
  };
  let pending: Promise<ListPage> | undefined = fetchPage(undefined);
  while (pending !== undefined) {
    const objects = await nextPage(pending);
    pending = objects.next === undefined ? undefined : fetchPage(objects.next);
    resourceVersion ??= objects.resourceVersion;
    for (const o of objects.items) items.push(o);
    onPage?.(objects.items);
  }
  return { items, metadata: { resourceVersion: resourceVersion ?? "" } };
}

/** One GET against the kubeconfig's current cluster, with its credentials; the answer parsed. */
async function getJson(kc: KubeConfig, path: string): Promise<unknown> {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error("kubeconfig: no current cluster");
  const url = new URL(server.replace(/\/$/, "") + path);
  const opts: RequestOptions & { headers: Record<string, string> } = { method: "GET", headers: {} };
  await kc.applyToHTTPSOptions(opts);
  opts.headers.Accept = "application/json";
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, opts, resolve);
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path}: no answer for 60 s`)));
    req.on("error", reject);
    req.end();
  });
  // Decoded chunk by chunk as it arrives (while the rest is on its way), not copied again at the end.
  res.setEncoding("utf8");
  let text = "";
  for await (const chunk of res) text += chunk as string;
  if (res.statusCode !== 200) {
    let message = text.slice(0, 300);
    try {
      const m = (JSON.parse(text) as { message?: unknown }).message;
      if (typeof m === "string") message = m;
    } catch {
      // Not a Status object: the raw text.
    }
    throw Object.assign(new Error(`GET ${path}: ${res.statusCode ?? "no status"} ${message}`), {
      statusCode: res.statusCode,
    });
  }
  return JSON.parse(text);
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
  readonly #pageSize: number;
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
    this.#pageSize = options.pageSize ?? 5000;
    this.#kinds = options.kinds ?? BASE_KINDS;
  }

  /** Starts every informer. Resolves once each has listed successfully at least once. */
  async start(): Promise<void> {
    const defs: [ResourceKind, string][] = [
      ["Node", "/api/v1/nodes"],
      ["Namespace", "/api/v1/namespaces"],
      ["Pod", "/api/v1/pods"],
      ["NetworkPolicy", "/apis/networking.k8s.io/v1/networkpolicies"],
      ["Service", "/api/v1/services"],
      ["EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices"],
    ];
    const transform = this.#transform;
    for (const [kind, path] of defs) {
      if (!this.#kinds.includes(kind)) continue;
      const t = transform === undefined ? undefined : (o: KubernetesObject) => transform(kind, o);
      // The first list hands its objects to the hooks a page at a time, as they arrive (the agent
      // works while the API server serves the next page); the informer's own events for those
      // same objects, once it has the whole list, are then skipped. Later relists (after a 410)
      // go through the informer only, which diffs them against its cache.
      const early = new WeakSet<KubernetesObject>();
      let listed = false;
      const list = async () => {
        if (listed) return listPaged(this.#kc, path, this.#pageSize, t);
        const delivered: KubernetesObject[] = [];
        try {
          const r = await listPaged(this.#kc, path, this.#pageSize, t, (objects) => {
            for (const o of objects) {
              early.add(o);
              delivered.push(o);
            }
            if (this.#hooks.onPage !== undefined) this.#hooks.onPage(kind, objects);
            else for (const o of objects) this.#hooks.onEvent(kind, "add", o);
          });
          listed = true;
          return r;
        } catch (err) {
          // The informer never saw this list: take back what it delivered (a retry lists again).
          for (const o of delivered) {
            early.delete(o);
            this.#hooks.onEvent(kind, "delete", o);
          }
          throw err;
        }
      };
      // What makeInformer builds, kept as a ListWatch for its resource version.
      const informer = new ListWatch<KubernetesObject>(
        path,
        t === undefined ? new Watch(this.#kc) : new TransformingWatch(this.#kc, t),
        list,
        false,
      );
      const item: Supervised = { kind, informer, failures: 0, timer: undefined, synced: false };
      informer.on("add", (o) => {
        if (!early.delete(o)) this.#hooks.onEvent(kind, "add", o);
      });
      informer.on("update", (o) => {
        if (!early.delete(o)) this.#hooks.onEvent(kind, "update", o);
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
