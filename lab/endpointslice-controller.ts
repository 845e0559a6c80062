/**
 * The lab's EndpointSlice controller: what kube-controller-manager's endpointslice controller
 * does for a single-stack IPv4 cluster. For every Service with a selector (and not of type
 * ExternalName) it keeps EndpointSlices labelled `kubernetes.io/service-name: <svc>` and
 * `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
 * Service, holding one endpoint per selected pod that has an IPv4 address: `addresses: [podIP]`,
 * `nodeName`, `targetRef`, `conditions` (`serving` = the pod's Ready condition, `terminating` =
 * a deletionTimestamp, `ready` = serving and not terminating, or always with
 * `publishNotReadyAddresses`), `hostname` when the pod's subdomain is the Service. Ports are the
 * Service's ports with `targetPort` resolved per pod (a number as is, a name through the pod's
 * containerPorts; a port a pod cannot resolve is left out for that pod), so pods that resolve
 * differently land in different slices, as upstream; at most 100 endpoints per slice. A Service
 * without selected pods gets one empty slice. Services without a selector are left alone (their
 * slices are someone else's); when a Service goes, its managed slices go.
 *
 * It runs inside the lab API server process (lab/apiserver/main.ts starts it), on the store's own
 * synchronous watches: the lab orchestrator exits while a kept lab runs on, the API server is
 * what lives as long as the objects, and in-process there are no lost or reordered events to
 * recover from. Writes go through the store's verbs, so they are admitted, versioned and watched
 * like any client's. Work is queued per Service and done on the next turn, so a burst of pod
 * changes costs one write.
 */
import { createHash } from "node:crypto";
import { ApiError } from "./apiserver/errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "./apiserver/json.js";
import type { ResourceName } from "./apiserver/resources.js";
import { labelsOf } from "./apiserver/selectors.js";
import type {
  ListOptions,
  ListResult,
  ObjectRef,
  StoreWatch,
  WatchEvent,
  WatchOptions,
} from "./apiserver/store.js";

/** The label naming a slice's Service (discovery.k8s.io/v1 LabelServiceName). */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
/** The label naming a slice's manager (discovery.k8s.io/v1 LabelManagedBy). */
export const MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by";
/** kube-controller-manager's value for {@link MANAGED_BY_LABEL}. */
export const CONTROLLER_NAME = "endpointslice-controller.k8s.io";
/** Set on the slices of headless Services (v1.IsHeadlessService). */
export const HEADLESS_LABEL = "service.kubernetes.io/headless";
/** kube-controller-manager's --max-endpoints-per-slice default. */
export const MAX_ENDPOINTS_PER_SLICE = 100;

/** The store verbs the controller uses; {@link LabStore} has them. */
export interface ControllerStore {
  list(resource: ResourceName, options?: ListOptions): ListResult;
  get(resource: ResourceName, name: string, ref?: ObjectRef): JsonObject | undefined;
  create(resource: ResourceName, body: JsonValue, ref?: ObjectRef): JsonObject;
  update(
    resource: ResourceName,
    body: JsonValue,
    options?: ObjectRef & { name?: string | undefined },
  ): JsonObject;
  delete(resource: ResourceName, name: string, options?: ObjectRef): JsonObject;
  watch(resource: ResourceName, options: WatchOptions, onEvent: (ev: WatchEvent) => void): StoreWatch;
}

/** One slice the controller wants: its name and content (without server-managed fields). */
export interface DesiredSlice {
  name: string;
  labels: Record<string, string>;
  endpoints: JsonObject[];
  ports: JsonObject[];
}

function meta(obj: JsonObject): JsonObject {
  return isJsonObject(obj.metadata) ? obj.metadata : {};
}

function spec(obj: JsonObject): JsonObject {
  return isJsonObject(obj.spec) ? obj.spec : {};
}

function status(obj: JsonObject): JsonObject {
  return isJsonObject(obj.status) ? obj.status : {};
}

function text(obj: JsonObject, key: string): string {
  const v = obj[key];
  return typeof v === "string" ? v : "";
}

function objects(v: JsonValue | undefined): JsonObject[] {
  return Array.isArray(v) ? v.filter(isJsonObject) : [];
}

/** The Service's selector; undefined when it has none (empty counts as none, as on the wire). */
export function selectorOf(service: JsonObject): Record<string, string> | undefined {
  const sel = spec(service).selector;
  if (!isJsonObject(sel)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(sel)) if (typeof v === "string") out[k] = v;
  return Object.keys(out).length === 0 ? undefined : out;
}

/** Whether the controller manages slices for this Service. */
export function isManagedService(service: JsonObject): boolean {
  return selectorOf(service) !== undefined && text(spec(service), "type") !== "ExternalName";
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function podIPv4(pod: JsonObject): string | undefined {
  const st = status(pod);
  const candidates = [text(st, "podIP"), ...objects(st.podIPs).map((p) => text(p, "ip"))];
  return candidates.find((ip) => /^\d{1,3}(\.\d{1,3}){3}$/.test(ip));
}

function podReady(pod: JsonObject): boolean {
  return objects(status(pod).conditions).some((c) => c.type === "Ready" && c.status === "True");
}

/** podutil.FindPort: a number as is, a name through the pod's containers' ports. */
export function resolveTargetPort(pod: JsonObject, servicePort: JsonObject): number | undefined {
  const target = servicePort.targetPort ?? servicePort.port;
  if (typeof target === "number") return target > 0 ? target : undefined;
  if (typeof target !== "string" || target === "") return undefined;
  if (/^\d+$/.test(target)) return Number(target);
  const protocol = text(servicePort, "protocol") || "TCP";
  for (const c of objects(spec(pod).containers)) {
    for (const p of objects(c.ports)) {
      if (
        p.name === target &&
        (text(p, "protocol") || "TCP") === protocol &&
        typeof p.containerPort === "number"
      )
        return p.containerPort;
    }
  }
  return undefined;
}

/** The endpoint for one pod, or undefined when the pod does not belong in slices. */
export function endpointFor(service: JsonObject, pod: JsonObject): JsonObject | undefined {
  const ip = podIPv4(pod);
  if (ip === undefined) return undefined;
  const phase = text(status(pod), "phase");
  if (phase === "Failed" || phase === "Succeeded") return undefined;
  const serving = podReady(pod);
  const terminating = meta(pod).deletionTimestamp !== undefined && meta(pod).deletionTimestamp !== null;
  const ready = spec(service).publishNotReadyAddresses === true || (serving && !terminating);
  const targetRef: JsonObject = {
    kind: "Pod",
    namespace: text(meta(pod), "namespace"),
    name: text(meta(pod), "name"),
  };
  if (text(meta(pod), "uid") !== "") targetRef.uid = text(meta(pod), "uid");
  const ep: JsonObject = { addresses: [ip], conditions: { ready, serving, terminating }, targetRef };
  const hostname = text(spec(pod), "hostname");
  if (hostname !== "" && text(spec(pod), "subdomain") === text(meta(service), "name")) ep.hostname = hostname;
  const node = text(spec(pod), "nodeName");
  if (node !== "") ep.nodeName = node;
  return ep;
}

function hash(value: JsonValue): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 5);
}

/**
 * The slices a Service should have given the pods of its namespace (pure). Undefined when the
 * controller does not manage the Service (no selector, or ExternalName).
 */
export function desiredSlices(service: JsonObject, pods: readonly JsonObject[]): DesiredSlice[] | undefined {
  const selector = selectorOf(service);
  if (selector === undefined || !isManagedService(service)) return undefined;
  const svcName = text(meta(service), "name");
  const labels: Record<string, string> = {};
  const svcLabels = meta(service).labels;
  if (isJsonObject(svcLabels))
    for (const [k, v] of Object.entries(svcLabels)) if (typeof v === "string") labels[k] = v;
  labels[SERVICE_NAME_LABEL] = svcName;
  labels[MANAGED_BY_LABEL] = CONTROLLER_NAME;
  if (text(spec(service), "clusterIP") === "None") labels[HEADLESS_LABEL] = "";
  else Reflect.deleteProperty(labels, HEADLESS_LABEL);

  const servicePorts = objects(spec(service).ports);
  const groups = new Map<string, { ports: JsonObject[]; endpoints: JsonObject[] }>();
  const selected = pods
    .filter((p) => selects(selector, labelsOf(p)))
    .sort((a, b) => (text(meta(a), "name") < text(meta(b), "name") ? -1 : 1));
  for (const pod of selected) {
    const ep = endpointFor(service, pod);
    if (ep === undefined) continue;
    const ports: JsonObject[] = [];
    for (const sp of servicePorts) {
      const port = resolveTargetPort(pod, sp);
      if (port === undefined) continue;
      const p: JsonObject = { name: text(sp, "name"), port, protocol: text(sp, "protocol") || "TCP" };
      if (text(sp, "appProtocol") !== "") p.appProtocol = text(sp, "appProtocol");
      ports.push(p);
    }
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    group.endpoints.push(ep);
    groups.set(key, group);
  }
  const base = svcName.slice(0, 57);
  const out: DesiredSlice[] = [];
  for (const [key, group] of [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (let i = 0; i < group.endpoints.length; i += MAX_ENDPOINTS_PER_SLICE) {
      out.push({
        name: `${base}-${hash([key, i])}`,
        labels: { ...labels },
        endpoints: group.endpoints.slice(i, i + MAX_ENDPOINTS_PER_SLICE),
        ports: group.ports,
      });
    }
  }
  if (out.length === 0)
    out.push({ name: `${base}-${hash(["placeholder"])}`, labels, endpoints: [], ports: [] });
  return out;
}

/** Options for {@link startEndpointSliceController}. */
export interface EndpointSliceControllerOptions {
  /** Where problems go (one line each). Default: stderr. */
  log?: (line: string) => void;
  /** Delay before a failed Service is tried again (doubled per failure, up to 5 tries). Default 200 ms. */
  retryMs?: number;
}

/** A running controller: `close()` stops it (idempotent); `idle()` resolves when no work is queued. */
export interface EndpointSliceController {
  idle(): Promise<void>;
  close(): void;
  /** Writes done so far (create, update, delete), for tests and diagnostics. */
  readonly writes: number;
}

interface PodSeen {
  labels: Record<string, string>;
}

/**
 * Starts the controller on `store`: watches Services, Pods and managed EndpointSlices and keeps
 * the slices in step. The caller owns the result and must `close()` it before closing the store.
 * Never throws after starting: failures are logged and retried.
 */
export function startEndpointSliceController(
  store: ControllerStore,
  options: EndpointSliceControllerOptions = {},
): EndpointSliceController {
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const retryMs = options.retryMs ?? 200;
  const queue = new Set<string>();
  const failures = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const pods = new Map<string, PodSeen>();
  let scheduled: NodeJS.Immediate | undefined;
  let closed = false;
  let writes = 0;
  let waiters: (() => void)[] = [];

  const settleIfIdle = (): void => {
    if (queue.size === 0 && timers.size === 0 && scheduled === undefined) {
      for (const w of waiters.splice(0)) w();
    }
  };

  const enqueue = (namespace: string, name: string): void => {
    if (closed) return;
    queue.add(`${namespace}/${name}`);
    scheduled ??= setImmediate(drain);
  };

  const servicesSelecting = (namespace: string, labels: Record<string, string>): string[] =>
    store
      .list("services", { namespace })
      .items.filter((s) => {
        const sel = selectorOf(s);
        return sel !== undefined && selects(sel, labels);
      })
      .map((s) => text(meta(s), "name"));

  function reconcile(key: string): void {
    const slash = key.indexOf("/");
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const existing = store.list("endpointslices", {
      namespace,
      labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${CONTROLLER_NAME}`,
    }).items;
    const service = store.get("services", name, { namespace });
    const desired =
      service === undefined ? undefined : desiredSlices(service, store.list("pods", { namespace }).items);
    // A slice that is no longer wanted under its name is reused for a new one (as upstream
    // reuses slices), so a placeholder filling up or a port change is one update, not two writes.
    const names = new Set((desired ?? []).map((d) => d.name));
    const spare = existing.map((e) => text(meta(e), "name")).filter((n) => !names.has(n));
    for (const d of desired ?? []) {
      if (existing.some((e) => text(meta(e), "name") === d.name)) continue;
      const reuse = spare.shift();
      if (reuse !== undefined) d.name = reuse;
    }
    for (const sliceName of spare) {
      store.delete("endpointslices", sliceName, { namespace });
      writes++;
    }
    if (service === undefined || desired === undefined) return;
    const owner: JsonObject = {
      apiVersion: "v1",
      kind: "Service",
      name,
      uid: text(meta(service), "uid"),
      controller: true,
      blockOwnerDeletion: true,
    };
    for (const d of desired) {
      const current = existing.find((s) => text(meta(s), "name") === d.name);
      const body: JsonObject = {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          ...(current === undefined ? {} : meta(current)),
          name: d.name,
          namespace,
          labels: d.labels,
          ownerReferences: [owner],
        },
        addressType: "IPv4",
        endpoints: d.endpoints,
        ports: d.ports,
      };
      if (current === undefined) store.create("endpointslices", body, { namespace });
      else {
        const before = text(meta(current), "resourceVersion");
        const after = store.update("endpointslices", body, { namespace, name: d.name });
        if (text(meta(after), "resourceVersion") === before) continue;
      }
      writes++;
    }
  }

  function drain(): void {
    scheduled = undefined;
    const keys = [...queue];
    queue.clear();
    for (const key of keys) {
      if (closed) return;
      try {
        reconcile(key);
        failures.delete(key);
      } catch (err) {
        const n = (failures.get(key) ?? 0) + 1;
        const why = err instanceof ApiError ? `${err.code} ${err.reason}: ${err.message}` : String(err);
        if (err instanceof ApiError && err.code === 404) continue; // the namespace went meanwhile
        if (n > 5) {
          log(`endpointslice-controller: giving up on service ${key}: ${why}`);
          failures.delete(key);
          continue;
        }
        failures.set(key, n);
        log(`endpointslice-controller: service ${key} (try ${n}): ${why}`);
        const t = setTimeout(
          () => {
            timers.delete(t);
            const slash = key.indexOf("/");
            enqueue(key.slice(0, slash), key.slice(slash + 1));
            settleIfIdle();
          },
          retryMs * 2 ** (n - 1),
        );
        timers.add(t);
      }
    }
    settleIfIdle();
  }

  const watches: StoreWatch[] = [];
  watches.push(
    store.watch("services", {}, (ev) => {
      enqueue(text(meta(ev.object), "namespace"), text(meta(ev.object), "name"));
    }),
  );
  watches.push(
    store.watch("pods", {}, (ev) => {
      const m = meta(ev.object);
      const namespace = text(m, "namespace");
      const podKey = `${namespace}/${text(m, "name")}`;
      const before = pods.get(podKey)?.labels ?? {};
      const now = labelsOf(ev.object);
      if (ev.type === "DELETED") pods.delete(podKey);
      else pods.set(podKey, { labels: now });
      const names = new Set([...servicesSelecting(namespace, before), ...servicesSelecting(namespace, now)]);
      for (const n of names) enqueue(namespace, n);
    }),
  );
  watches.push(
    store.watch("endpointslices", { labelSelector: `${MANAGED_BY_LABEL}=${CONTROLLER_NAME}` }, (ev) => {
      // Someone else changed or removed one of ours: put it back.
      if (ev.type === "ADDED") return;
      const service = labelsOf(ev.object)[SERVICE_NAME_LABEL];
      if (service !== undefined) enqueue(text(meta(ev.object), "namespace"), service);
    }),
  );
  // Slices of Services that went while no controller ran: the initial ADDED events above only
  // cover Services that exist.
  for (const slice of store.list("endpointslices", {
    labelSelector: `${MANAGED_BY_LABEL}=${CONTROLLER_NAME}`,
  }).items) {
    const service = labelsOf(slice)[SERVICE_NAME_LABEL];
    if (service !== undefined) enqueue(text(meta(slice), "namespace"), service);
  }

  return {
    get writes() {
      return writes;
    },
    idle: () =>
      new Promise<void>((resolve) => {
        waiters.push(resolve);
        settleIfIdle();
      }),
    close: () => {
      if (closed) return;
      closed = true;
      for (const w of watches) w.close();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      if (scheduled !== undefined) clearImmediate(scheduled);
      scheduled = undefined;
      queue.clear();
      for (const w of waiters.splice(0)) w();
      waiters = [];
    },
  };
}
