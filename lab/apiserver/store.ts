/**
 * The lab API server's object store: every object of the served resource types, keyed by
 * namespace/name, with the verbs of the API (get, list, create, update, patch, delete, watch).
 * What an object goes through before it is stored (validation, defaulting) lives in
 * admission.ts; resource versions, history and watchers in watch-cache.ts. Synchronous and
 * single-threaded: a write and the delivery of its events to every watcher happen in one turn.
 *
 * The semantics follow kube-apiserver where a client can tell: 404/409/410/422 errors, optimistic
 * concurrency, status subresources. Deletion is immediate (no kubelet, no namespace controller):
 * deleting a namespace deletes everything in it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Admission, type AdmissionOptions } from "./admission.js";
import { ApiError, STALE_OBJECT_MESSAGE, alreadyExists, badRequest, conflict, notFound } from "./errors.js";
import {
  cloneJson,
  isJsonObject,
  jsonEqual,
  jsonText,
  objectAt,
  stringAt,
  type JsonObject,
  type JsonValue,
} from "./json.js";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, type PatchType } from "./patch.js";
import {
  RESOURCES,
  resourceByKind,
  resourceByName,
  type ResourceInfo,
  type ResourceName,
} from "./resources.js";
import { checkShape } from "./shapes.js";
import {
  compileFilter,
  deepFreeze,
  matchesFilter,
  WatchCache,
  type SelectOptions,
  type StoreWatch,
  type WatchEvent,
  type WatchOptions,
} from "./watch-cache.js";

export type { SelectOptions, StoreEventType, StoreWatch, WatchEvent, WatchOptions } from "./watch-cache.js";

/** Where an object lives: `namespace` only for namespaced resources. */
export interface ObjectRef {
  namespace?: string | undefined;
}

/** Options for {@link LabStore.list}. */
export interface ListOptions extends SelectOptions {
  /** At most this many items; the result then carries a `continue` token. */
  limit?: number | undefined;
  /** The `continue` token of a previous page. */
  continue?: string | undefined;
}

/** One page of a list. Items are deep copies without kind/apiVersion, as the real server sends them. */
export interface ListResult {
  items: JsonObject[];
  /** The stored (deep-frozen) objects behind `items`, in the same order: `listItemJson` keys on them. */
  stored: readonly JsonObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

/**
 * A stored object's JSON text as a list item (without kind and apiVersion), UTF-8 encoded, made
 * once per stored object: stored objects are frozen and replaced on every change, so the bytes
 * stay true as long as the object lives. A 100,000-pod list is then served for the cost of
 * copying bytes.
 */
const itemJson = new WeakMap<JsonObject, Buffer>();
export function listItemJson(stored: JsonObject): Buffer {
  let bytes = itemJson.get(stored);
  if (bytes === undefined) {
    const { kind: _kind, apiVersion: _apiVersion, ...item } = stored;
    bytes = Buffer.from(JSON.stringify(item));
    itemJson.set(stored, bytes);
  }
  return bytes;
}

/** Which part of an object an update may change. */
export type Subresource = "status";

/** Options for {@link LabStore.update} and {@link LabStore.patch}. */
export interface UpdateOptions extends ObjectRef {
  subresource?: Subresource | undefined;
}

/** Options for {@link LabStore.delete}. */
export interface DeleteOptions extends ObjectRef {
  preconditions?: { uid?: string | undefined; resourceVersion?: string | undefined } | undefined;
}

/** Construction options for {@link LabStore}. */
export interface LabStoreOptions {
  /** Events retained per resource type for watch resumption (default 1000, minimum 1). */
  history?: number;
  /**
   * The resourceVersion before the first write (default: the current time in milliseconds, so a
   * client still holding a resourceVersion of a previous server run is answered 410 and relists).
   */
  firstResourceVersion?: number;
  /** Namespaces created at start (default: default, kube-system, kube-public, kube-node-lease). */
  builtinNamespaces?: readonly string[];
  /** Clock for creationTimestamp (tests). */
  now?: () => Date;
  /** ClusterIP range for Services (default 10.96.0.0/16). */
  serviceCidr?: string;
  /** NodePort range for Services, inclusive (default 30000-32767). */
  nodePortRange?: readonly [number, number];
}

interface Table {
  readonly info: ResourceInfo;
  readonly objects: Map<string, JsonObject>;
  /** The keys in order, kept until a key is added or removed (a 100,000-pod list is paged). */
  sortedKeys?: string[] | undefined;
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}

function meta(obj: JsonObject): JsonObject {
  return objectAt(obj, "metadata") ?? {};
}

function nameOf(obj: JsonObject): string {
  return stringAt(meta(obj), "name") ?? "";
}

function namespaceOf(obj: JsonObject): string | undefined {
  return stringAt(meta(obj), "namespace");
}

function rvOf(obj: JsonObject): string | undefined {
  return stringAt(meta(obj), "resourceVersion");
}

/** kind, apiVersion and metadata first, as the real server serializes objects. */
function canonical(info: ResourceInfo, obj: JsonObject): JsonObject {
  const { kind: _k, apiVersion: _a, metadata, ...rest } = obj;
  return { kind: info.kind, apiVersion: info.apiVersion, metadata: metadata ?? {}, ...rest };
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function resolve(resource: ResourceName | ResourceInfo): ResourceInfo {
  if (typeof resource !== "string") return resource;
  const info = resourceByName(resource);
  if (info === undefined)
    throw new ApiError(404, "NotFound", `the server could not find the requested resource (${resource})`);
  return info;
}

/**
 * The in-memory object store. Owned by whoever constructs it (normally the server from
 * {@link startLabApiServer}); `close()` ends every watch. Methods throw {@link ApiError} for
 * anything a real API server would reject; returned objects are deep copies the caller owns.
 */
export class LabStore {
  readonly #tables = new Map<ResourceName, Table>();
  readonly #watch: WatchCache;
  readonly #admission: Admission;
  readonly #now: () => Date;

  /** Creates the store and its built-in namespaces. Throws RangeError on a bad option. */
  constructor(options: LabStoreOptions = {}) {
    this.#watch = new WatchCache({
      history: options.history ?? 1000,
      firstResourceVersion: options.firstResourceVersion ?? Date.now(),
    });
    this.#now = options.now ?? (() => new Date());
    const admission: AdmissionOptions = {};
    if (options.serviceCidr !== undefined) admission.serviceCidr = options.serviceCidr;
    if (options.nodePortRange !== undefined) admission.nodePortRange = options.nodePortRange;
    this.#admission = new Admission(admission);
    for (const info of RESOURCES) this.#tables.set(info.name, { info, objects: new Map() });
    for (const ns of options.builtinNamespaces ?? [
      "default",
      "kube-system",
      "kube-public",
      "kube-node-lease",
    ]) {
      this.create("namespaces", { metadata: { name: ns } });
    }
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return this.#watch.resourceVersion;
  }

  /** The number of open watches (all resources), for tests and diagnostics. */
  get watchCount(): number {
    return this.#watch.watchCount;
  }

  /** How many ClusterIPs and NodePorts Services hold (diagnostics; tests check for leaks). */
  get serviceAllocations(): { clusterIPs: number; nodePorts: number; serviceCidr: string } {
    const s = this.#admission.services;
    return { clusterIPs: s.ips.used, nodePorts: s.nodePorts.used, serviceCidr: s.ips.cidr };
  }

  #table(resource: ResourceName | ResourceInfo): Table {
    return this.#tables.get(resolve(resource).name) as Table;
  }

  #namespaceFor(info: ResourceInfo, ref: ObjectRef | undefined, body?: JsonObject): string | undefined {
    if (!info.namespaced) return undefined;
    const fromPath = ref?.namespace;
    const fromBody = body === undefined ? undefined : namespaceOf(body);
    if (fromPath !== undefined && fromBody !== undefined && fromBody !== "" && fromBody !== fromPath) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const ns = fromPath ?? (fromBody === "" ? undefined : fromBody) ?? "default";
    return ns;
  }

  #requireNamespace(namespace: string | undefined): void {
    if (namespace === undefined) return;
    if (!this.#table("namespaces").objects.has(namespace)) throw notFound(resolve("namespaces"), namespace);
  }

  /** A copy of one object; undefined when it does not exist. */
  get(resource: ResourceName, name: string, ref?: ObjectRef): JsonObject | undefined {
    const info = resolve(resource);
    const ns = this.#namespaceFor(info, ref);
    const obj = this.#table(info).objects.get(keyOf(ns, name));
    return obj === undefined ? undefined : cloneJson(obj);
  }

  /** Like {@link get} but throws a 404 {@link ApiError} when the object does not exist. */
  getOrThrow(resource: ResourceName, name: string, ref?: ObjectRef): JsonObject {
    const obj = this.get(resource, name, ref);
    if (obj === undefined) throw notFound(resolve(resource), name);
    return obj;
  }

  #sortedKeys(table: Table): string[] {
    table.sortedKeys ??= [...table.objects.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return table.sortedKeys;
  }

  #sorted(table: Table): [string, JsonObject][] {
    return this.#sortedKeys(table).map((k) => [k, table.objects.get(k) as JsonObject]);
  }

  /**
   * Lists objects matching the options, sorted by namespace/name. Throws 400 for a bad selector,
   * an unsupported field label or a bad continue token.
   */
  list(resource: ResourceName, options?: ListOptions): ListResult {
    const info = resolve(resource);
    const table = this.#table(info);
    const f = compileFilter(info, options);
    let after: string | undefined;
    if (options?.continue !== undefined && options.continue !== "") after = decodeContinue(options.continue);
    const limit = options?.limit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0))
      throw badRequest(`limit must be a non-negative integer, got ${limit}`);
    // From the first key after the continue token; a page costs its own objects, not the table's.
    const keys = this.#sortedKeys(table);
    let lo = 0;
    if (after !== undefined) {
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((keys[mid] as string) <= after) lo = mid + 1;
        else hi = mid;
      }
    }
    const max = limit !== undefined && limit > 0 ? limit : Infinity;
    const page: [string, JsonObject][] = [];
    let i = lo;
    for (; i < keys.length && page.length < max; i++) {
      const k = keys[i] as string;
      const o = table.objects.get(k) as JsonObject;
      if (matchesFilter(info, f, o)) page.push([k, o]);
    }
    let remaining = 0;
    if (f.namespace === undefined && f.labels.requirements.length === 0 && f.fields.requirements.length === 0)
      remaining = keys.length - i;
    else
      for (; i < keys.length; i++)
        if (matchesFilter(info, f, table.objects.get(keys[i] as string) as JsonObject)) remaining++;
    const result: ListResult = {
      // Stored objects are deep-frozen: a shallow copy without kind and apiVersion is enough.
      items: page.map(([, o]) => {
        const { kind: _kind, apiVersion: _apiVersion, ...item } = o;
        return item;
      }),
      stored: page.map(([, o]) => o),
      resourceVersion: this.resourceVersion,
    };
    if (remaining > 0) {
      const last = page[page.length - 1];
      if (last !== undefined) result.continue = encodeContinue(last[0], this.#watch.resourceVersionNumber);
      result.remainingItemCount = remaining;
    }
    return result;
  }

  /**
   * Creates an object. `ref.namespace` (the URL's namespace) wins over an empty body namespace;
   * a different non-empty body namespace is 400. Throws 404 when the namespace does not exist,
   * 409 when the name is taken, 422 for a missing/invalid name or a kind/apiVersion of another
   * resource, 400 for wrongly typed fields.
   */
  create(resource: ResourceName, body: JsonValue, ref?: ObjectRef): JsonObject {
    const info = resolve(resource);
    checkShape(info, body);
    const obj = cloneJson(body as JsonObject);
    const m: JsonObject = objectAt(obj, "metadata") ?? {};
    obj.metadata = m;
    let name = stringAt(m, "name") ?? "";
    const generateName = stringAt(m, "generateName");
    if (name === "" && generateName !== undefined && generateName !== "") {
      name = generateName + randomBytes(4).toString("hex").slice(0, 5);
      m.name = name;
    }
    this.#admission.checkKind(info, obj, name);
    const ns = this.#namespaceFor(info, ref, obj);
    if (ns === undefined) delete m.namespace;
    else m.namespace = ns;
    this.#admission.validateMeta(info, obj, name);
    this.#requireNamespace(ns);
    const table = this.#table(info);
    const key = keyOf(ns, name);
    if (table.objects.has(key)) throw alreadyExists(info, name);

    obj.apiVersion = info.apiVersion;
    obj.kind = info.kind;
    m.uid = randomUUID();
    m.creationTimestamp = timestamp(this.#now());
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    if (info.hasGeneration) m.generation = 1;
    else delete m.generation;
    this.#admission.admitCreate(info, obj, name);
    m.resourceVersion = this.#watch.next();
    const stored = deepFreeze(canonical(info, obj));
    table.objects.set(key, stored);
    table.sortedKeys = undefined;
    this.#watch.record(info, "ADDED", stored, undefined);
    return cloneJson(stored);
  }

  /**
   * Replaces an object (PUT). With `subresource: "status"` only `status` changes; otherwise, for
   * resources with a status subresource, `status` is kept as stored. A non-empty
   * `metadata.resourceVersion` must equal the stored one (else 409 Conflict). Throws 404 when the
   * object does not exist, 400 when the body's name/namespace differ from `name`/`ref`.
   * An update that changes nothing returns the stored object without a new resourceVersion.
   */
  update(
    resource: ResourceName,
    body: JsonValue,
    options?: UpdateOptions & { name?: string | undefined },
  ): JsonObject {
    const info = resolve(resource);
    checkShape(info, body);
    const obj = body as JsonObject;
    const bodyName = nameOf(obj);
    const name = options?.name ?? bodyName;
    if (bodyName !== "" && bodyName !== name) {
      throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    }
    this.#admission.checkKind(info, obj, name);
    const ns = this.#namespaceFor(info, options, obj);
    return this.#replace(info, ns, name, obj, options?.subresource === "status" ? "status" : "main");
  }

  #replace(
    info: ResourceInfo,
    ns: string | undefined,
    name: string,
    body: JsonObject,
    mode: "main" | "status" | "all",
  ): JsonObject {
    const table = this.#table(info);
    const key = keyOf(ns, name);
    const old = table.objects.get(key);
    if (old === undefined) throw notFound(info, name);
    const wantRv = rvOf(body);
    if (wantRv !== undefined && wantRv !== "" && wantRv !== rvOf(old))
      throw conflict(info, name, STALE_OBJECT_MESSAGE);

    let next: JsonObject;
    if (mode === "status") {
      next = cloneJson(old);
      if (Object.hasOwn(body, "status")) next.status = cloneJson(body.status as JsonValue);
      else delete next.status;
    } else {
      next = cloneJson(body);
      if (mode === "main" && info.hasStatus) {
        if (Object.hasOwn(old, "status")) next.status = cloneJson(old.status as JsonValue);
        else delete next.status;
      }
    }
    const oldMeta = meta(old);
    const m: JsonObject = objectAt(next, "metadata") ?? {};
    next.metadata = m;
    next.apiVersion = info.apiVersion;
    next.kind = info.kind;
    m.name = name;
    if (ns === undefined) delete m.namespace;
    else m.namespace = ns;
    m.uid = oldMeta.uid as JsonValue;
    m.creationTimestamp = oldMeta.creationTimestamp as JsonValue;
    if (oldMeta.generation !== undefined) m.generation = oldMeta.generation;
    else delete m.generation;
    delete m.generateName;
    if (oldMeta.generateName !== undefined) m.generateName = oldMeta.generateName;
    m.resourceVersion = oldMeta.resourceVersion as JsonValue;
    this.#admission.admitUpdate(info, next, old, name);
    if (jsonEqual(next, old)) return cloneJson(old);
    if (info.hasGeneration && info.contentFields.some((f) => !jsonEqual(next[f], old[f]))) {
      m.generation = (typeof oldMeta.generation === "number" ? oldMeta.generation : 0) + 1;
    }
    m.resourceVersion = this.#watch.next();
    const stored = deepFreeze(canonical(info, next));
    if (!table.objects.has(key)) table.sortedKeys = undefined;
    table.objects.set(key, stored);
    this.#watch.record(info, "MODIFIED", stored, old);
    return cloneJson(stored);
  }

  /**
   * Patches an object. The patch applies to the whole stored object; with `subresource:
   * "status"` only the resulting `status` is kept, otherwise (for resources with a status
   * subresource) status changes are dropped. A `metadata.resourceVersion` in the result that
   * differs from the stored one is a precondition failure (409). Throws 404 when missing, 400 for
   * a malformed patch, 422 when a JSON patch cannot be applied or the result is invalid.
   */
  patch(
    resource: ResourceName,
    name: string,
    patch: JsonValue,
    type: PatchType,
    options?: UpdateOptions,
  ): JsonObject {
    const info = resolve(resource);
    const ns = this.#namespaceFor(info, options);
    const old = this.#table(info).objects.get(keyOf(ns, name));
    if (old === undefined) throw notFound(info, name);
    let patched: JsonValue;
    switch (type) {
      case "merge":
        if (!isJsonObject(patch)) throw badRequest("merge patch: the patch must be a JSON object");
        patched = applyMergePatch(old, patch);
        break;
      case "strategic":
        patched = applyStrategicMergePatch(old, patch);
        break;
      case "json":
        patched = applyJsonPatch(old, patch);
        break;
    }
    checkShape(info, patched);
    const obj = patched as JsonObject;
    if (nameOf(obj) !== name)
      throw badRequest(
        `the name of the object (${nameOf(obj)}) does not match the name on the URL (${name})`,
      );
    if (info.namespaced && namespaceOf(obj) !== ns) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    this.#admission.checkKind(info, obj, name);
    return this.#replace(info, ns, name, obj, options?.subresource === "status" ? "status" : "main");
  }

  /**
   * Deletes an object and returns it as last stored (with the deletion's resourceVersion).
   * Deleting a namespace first deletes every namespaced object in it. Throws 404 when missing,
   * 409 when a precondition fails, 403 for the protected namespaces (default, kube-system,
   * kube-public), as the real server's NamespaceLifecycle admission does.
   */
  delete(resource: ResourceName, name: string, options?: DeleteOptions): JsonObject {
    const info = resolve(resource);
    const ns = this.#namespaceFor(info, options);
    const table = this.#table(info);
    const key = keyOf(ns, name);
    const old = table.objects.get(key);
    if (old === undefined) throw notFound(info, name);
    const pre = options?.preconditions;
    const m = meta(old);
    if (pre?.uid !== undefined && pre.uid !== "" && pre.uid !== m.uid) {
      throw conflict(
        info,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${jsonText(m.uid)}`,
      );
    }
    if (
      pre?.resourceVersion !== undefined &&
      pre.resourceVersion !== "" &&
      pre.resourceVersion !== m.resourceVersion
    ) {
      throw conflict(
        info,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${jsonText(m.resourceVersion)}`,
      );
    }
    this.#admission.admitDelete(info, name);
    if (info.name === "namespaces") {
      for (const t of this.#tables.values()) {
        if (!t.info.namespaced) continue;
        for (const [k, o] of this.#sorted(t)) if (namespaceOf(o) === name) this.#remove(t, k, o);
      }
    }
    return cloneJson(this.#remove(table, key, old));
  }

  #remove(table: Table, key: string, old: JsonObject): JsonObject {
    table.objects.delete(key);
    table.sortedKeys = undefined;
    this.#admission.released(table.info, old);
    const gone = cloneJson(old);
    (gone.metadata as JsonObject).resourceVersion = this.#watch.next();
    const stored = deepFreeze(gone);
    this.#watch.record(table.info, "DELETED", stored, undefined);
    return stored;
  }

  /** Deletes every object matching the options (deletecollection); returns the deleted objects. */
  deleteCollection(resource: ResourceName, options?: SelectOptions): JsonObject[] {
    const info = resolve(resource);
    const page = this.list(info.name, options);
    return page.items.map((o) => this.delete(info.name, nameOf(o), { namespace: namespaceOf(o) }));
  }

  /**
   * Creates the object, or replaces it (spec, metadata and status) when it exists. The resource
   * is found from `kind` (and `apiVersion`, when present). For seeding and the lab orchestrator;
   * resourceVersion in `obj` is ignored. Throws like {@link create}/{@link update}.
   */
  upsert(obj: JsonValue): JsonObject {
    if (!isJsonObject(obj)) throw badRequest("object must be a JSON object");
    const kind = stringAt(obj, "kind");
    const apiVersion = stringAt(obj, "apiVersion");
    const info = kind === undefined ? undefined : resourceByKind(kind, apiVersion);
    if (info === undefined)
      throw badRequest(`no served resource has kind ${String(kind)} (apiVersion ${String(apiVersion)})`);
    checkShape(info, obj);
    const ns = this.#namespaceFor(info, undefined, obj);
    const existing = this.#table(info).objects.get(keyOf(ns, nameOf(obj)));
    if (existing === undefined) return this.create(info.name, obj, { namespace: ns });
    const body = cloneJson(obj);
    const m = objectAt(body, "metadata") ?? {};
    delete m.resourceVersion;
    body.metadata = m;
    return this.#replace(info, ns, nameOf(obj), body, "all");
  }

  /**
   * Starts a watch. Synchronously delivers the initial events (see {@link WatchOptions}), then
   * every later matching change, to `onEvent` until `close()`. Throws 410 Expired when
   * `resourceVersion` is older than the retained history (or from another server run), 400 for a
   * bad selector or resourceVersion. If `onEvent` throws, the watch is closed.
   */
  watch(resource: ResourceName, options: WatchOptions, onEvent: (ev: WatchEvent) => void): StoreWatch {
    const info = resolve(resource);
    const table = this.#table(info);
    return this.#watch.watch(info, options, () => this.#sorted(table).map(([, o]) => o), onEvent);
  }

  /** Ends every watch; later writes still work but nobody hears them. Idempotent. */
  close(): void {
    this.#watch.close();
  }
}

function encodeContinue(lastKey: string, rv: number): string {
  return Buffer.from(JSON.stringify({ v: 1, rv, after: lastKey })).toString("base64url");
}

function decodeContinue(token: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (isJsonObject(parsed) && parsed.v === 1 && typeof parsed.after === "string") return parsed.after;
  } catch {
    // falls through to the error below
  }
  throw badRequest("invalid continue token");
}
