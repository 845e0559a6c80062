/**
 * The lab API server's object store: every object of the served resource types, one global
 * resourceVersion counter, a bounded per-resource event history for watch resumption, and the
 * watchers. Synchronous and single-threaded: a write and the delivery of its events to every
 * watcher happen in one turn, so a watch started from a resourceVersion never misses or repeats
 * an event.
 *
 * The semantics follow kube-apiserver where a client can tell: 404/409/410/422 errors, optimistic
 * concurrency, status subresources, watch event filtering by selectors (an object that stops
 * matching is reported DELETED), `Expired` for history that was dropped. Deletion is immediate
 * (no kubelet, no namespace controller): deleting a namespace deletes its pods and policies.
 */
import { randomBytes, randomUUID } from "node:crypto";
import {
  ApiError,
  STALE_OBJECT_MESSAGE,
  alreadyExists,
  badRequest,
  conflict,
  expired,
  forbidden,
  invalid,
  notFound,
  type StatusCause,
} from "./errors.js";
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
  fieldValue,
  RESOURCES,
  resourceByKind,
  resourceByName,
  type ResourceInfo,
  type ResourceName,
} from "./resources.js";
import {
  labelKeyError,
  labelsOf,
  labelValueError,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldSelector,
  type LabelSelector,
} from "./selectors.js";
import { checkShape } from "./shapes.js";
import { NAMESPACE_NAME_LABEL } from "../../policy/identity.js";

/** Watch event types the store emits (BOOKMARK and ERROR are added by the HTTP layer). */
export type StoreEventType = "ADDED" | "MODIFIED" | "DELETED";

/** An event as delivered to one watcher, already filtered and shaped for it. */
export interface WatchEvent {
  readonly type: StoreEventType;
  /** Deeply frozen: clone before changing it. */
  readonly object: JsonObject;
}

/** Where an object lives: `namespace` only for namespaced resources. */
export interface ObjectRef {
  namespace?: string | undefined;
}

/** Filters shared by list, watch and deletecollection. */
export interface SelectOptions extends ObjectRef {
  /** String syntax (`a=b,c in (d)`) or an already parsed selector. */
  labelSelector?: string | LabelSelector | undefined;
  /** String syntax (`spec.nodeName=n1`) or an already parsed selector. */
  fieldSelector?: string | FieldSelector | undefined;
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
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

/** Options for {@link LabStore.watch}. */
export interface WatchOptions extends SelectOptions {
  /**
   * Unset, "" or "0": start with a synthetic ADDED for every matching object, then stream.
   * A number: replay the retained events after it, or throw 410 Expired when they were dropped.
   */
  resourceVersion?: string | undefined;
  /** Explicitly request (true) or suppress (false) the initial ADDED events. */
  sendInitialEvents?: boolean | undefined;
}

/** A live watch on the store; `close()` is idempotent. */
export interface StoreWatch {
  readonly closed: boolean;
  close(): void;
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
}

interface StoredEvent {
  readonly type: StoreEventType;
  readonly rv: number;
  readonly object: JsonObject;
  /** The object before a MODIFIED event, for selector transitions. */
  readonly previous: JsonObject | undefined;
}

interface Filter {
  namespace: string | undefined;
  labels: LabelSelector;
  fields: FieldSelector;
}

interface Watcher {
  readonly info: ResourceInfo;
  readonly filter: Filter;
  readonly deliver: (ev: WatchEvent) => void;
  closed: boolean;
}

interface Table {
  readonly info: ResourceInfo;
  readonly objects: Map<string, JsonObject>;
  readonly history: StoredEvent[];
  /** Every event with rv > compactedRv is still in `history`. */
  compactedRv: number;
  readonly watchers: Set<Watcher>;
}

const PROTECTED_NAMESPACES = new Set(["default", "kube-system", "kube-public"]);
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function deepFreeze<T extends JsonValue>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
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
  readonly #historyLimit: number;
  readonly #now: () => Date;
  #rv: number;
  #closed = false;

  /** Creates the store and its built-in namespaces. Throws RangeError on a bad option. */
  constructor(options: LabStoreOptions = {}) {
    const history = options.history ?? 1000;
    if (!Number.isInteger(history) || history < 1)
      throw new RangeError(`history must be a positive integer, got ${history}`);
    this.#historyLimit = history;
    this.#now = options.now ?? (() => new Date());
    const first = options.firstResourceVersion ?? Date.now();
    if (!Number.isSafeInteger(first) || first < 0)
      throw new RangeError(`firstResourceVersion must be a non-negative integer, got ${first}`);
    this.#rv = first;
    for (const info of RESOURCES) {
      this.#tables.set(info.name, {
        info,
        objects: new Map(),
        history: [],
        compactedRv: first,
        watchers: new Set(),
      });
    }
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
    return String(this.#rv);
  }

  /** The number of open watches (all resources), for tests and diagnostics. */
  get watchCount(): number {
    let n = 0;
    for (const t of this.#tables.values()) n += t.watchers.size;
    return n;
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

  #filter(info: ResourceInfo, options: SelectOptions | undefined): Filter {
    const labels =
      typeof options?.labelSelector === "string"
        ? parseLabelSelector(options.labelSelector)
        : (options?.labelSelector ?? { requirements: [] });
    const fields =
      typeof options?.fieldSelector === "string"
        ? parseFieldSelector(options.fieldSelector)
        : (options?.fieldSelector ?? { requirements: [] });
    for (const r of fields.requirements) {
      if (fieldValue(info, {}, r.field) === undefined) {
        throw badRequest(`field label not supported: ${r.field}`);
      }
    }
    return { namespace: info.namespaced ? options?.namespace : undefined, labels, fields };
  }

  #matches(info: ResourceInfo, f: Filter, obj: JsonObject): boolean {
    if (f.namespace !== undefined && namespaceOf(obj) !== f.namespace) return false;
    if (!matchesLabels(f.labels, labelsOf(obj))) return false;
    return matchesFields(f.fields, (field) => fieldValue(info, obj, field));
  }

  #sorted(table: Table): [string, JsonObject][] {
    return [...table.objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Lists objects matching the options, sorted by namespace/name. Throws 400 for a bad selector,
   * an unsupported field label or a bad continue token.
   */
  list(resource: ResourceName, options?: ListOptions): ListResult {
    const info = resolve(resource);
    const table = this.#table(info);
    const f = this.#filter(info, options);
    let after: string | undefined;
    if (options?.continue !== undefined && options.continue !== "") after = decodeContinue(options.continue);
    const limit = options?.limit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0))
      throw badRequest(`limit must be a non-negative integer, got ${limit}`);
    const matching = this.#sorted(table).filter(
      ([k, o]) => (after === undefined || k > after) && this.#matches(info, f, o),
    );
    const page =
      limit !== undefined && limit > 0 && matching.length > limit ? matching.slice(0, limit) : matching;
    const result: ListResult = {
      items: page.map(([, o]) => {
        const item = cloneJson(o);
        delete item.kind;
        delete item.apiVersion;
        return item;
      }),
      resourceVersion: this.resourceVersion,
    };
    if (page.length < matching.length) {
      const last = page[page.length - 1];
      if (last !== undefined) result.continue = encodeContinue(last[0], this.#rv);
      result.remainingItemCount = matching.length - page.length;
    }
    return result;
  }

  #checkKind(info: ResourceInfo, body: JsonObject, name: string): void {
    const causes: StatusCause[] = [];
    const kind = stringAt(body, "kind");
    const apiVersion = stringAt(body, "apiVersion");
    if (kind !== undefined && kind !== "" && kind !== info.kind) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "kind",
        message: `Invalid value: "${kind}": must be ${info.kind} for ${info.name}`,
      });
    }
    if (apiVersion !== undefined && apiVersion !== "" && apiVersion !== info.apiVersion) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "apiVersion",
        message: `Invalid value: "${apiVersion}": must be ${info.apiVersion} for ${info.name}`,
      });
    }
    if (causes.length > 0) throw invalid(info.kind, info.group, name, causes);
  }

  #validateMeta(info: ResourceInfo, obj: JsonObject, name: string): void {
    const causes: StatusCause[] = [];
    const rule = info.nameRule === "label" ? DNS_LABEL_RE : DNS_SUBDOMAIN_RE;
    const max = info.nameRule === "label" ? 63 : 253;
    if (name === "") {
      causes.push({
        reason: "FieldValueRequired",
        field: "metadata.name",
        message: "Required value: name or generateName is required",
      });
    } else if (name.length > max || !rule.test(name)) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "metadata.name",
        message: `Invalid value: "${name}": a lowercase RFC 1123 ${info.nameRule} must consist of lower case alphanumeric characters, '-'${
          info.nameRule === "subdomain" ? " or '.'" : ""
        }, and must start and end with an alphanumeric character`,
      });
    }
    const labels = objectAt(meta(obj), "labels") ?? {};
    for (const [k, v] of Object.entries(labels)) {
      const ke = labelKeyError(k);
      if (ke !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: "metadata.labels",
          message: `Invalid value: "${k}": ${ke}`,
        });
      const ve = typeof v === "string" ? labelValueError(v) : "must be a string";
      if (ve !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: `metadata.labels`,
          message: `Invalid value: ${JSON.stringify(v)}: ${ve}`,
        });
    }
    const annotations = objectAt(meta(obj), "annotations") ?? {};
    for (const k of Object.keys(annotations)) {
      const ke = labelKeyError(k);
      if (ke !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: "metadata.annotations",
          message: `Invalid value: "${k}": ${ke}`,
        });
    }
    if (causes.length > 0) throw invalid(info.kind, info.group, name, causes);
  }

  #record(table: Table, type: StoreEventType, object: JsonObject, previous: JsonObject | undefined): void {
    const rv = this.#rv;
    const ev: StoredEvent = { type, rv, object, previous };
    table.history.push(ev);
    while (table.history.length > this.#historyLimit) {
      const dropped = table.history.shift() as StoredEvent;
      table.compactedRv = dropped.rv;
    }
    for (const w of [...table.watchers]) this.#deliver(w, ev);
  }

  #deliver(w: Watcher, ev: StoredEvent): void {
    if (w.closed) return;
    const info = w.info;
    const now = this.#matches(info, w.filter, ev.object);
    let out: WatchEvent | undefined;
    if (ev.type === "MODIFIED") {
      const before = ev.previous !== undefined && this.#matches(info, w.filter, ev.previous);
      if (now && before) out = { type: "MODIFIED", object: ev.object };
      else if (now) out = { type: "ADDED", object: ev.object };
      else if (before) {
        // The real watch cache reports the old content with the new resourceVersion.
        const prev = cloneJson(ev.previous);
        (prev.metadata as JsonObject).resourceVersion = String(ev.rv);
        out = { type: "DELETED", object: deepFreeze(prev) };
      }
    } else if (now) {
      out = { type: ev.type, object: ev.object };
    }
    if (out === undefined) return;
    try {
      w.deliver(out);
    } catch {
      // A failing consumer loses its watch, never the write that triggered it.
      this.#unwatch(w);
    }
  }

  #unwatch(w: Watcher): void {
    w.closed = true;
    this.#table(w.info).watchers.delete(w);
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
    this.#checkKind(info, obj, name);
    const ns = this.#namespaceFor(info, ref, obj);
    if (ns === undefined) delete m.namespace;
    else m.namespace = ns;
    this.#validateMeta(info, obj, name);
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
    this.#defaults(info, obj, name);
    m.resourceVersion = String(++this.#rv);
    const stored = deepFreeze(canonical(info, obj));
    table.objects.set(key, stored);
    this.#record(table, "ADDED", stored, undefined);
    return cloneJson(stored);
  }

  #defaults(info: ResourceInfo, obj: JsonObject, name: string): void {
    if (info.name === "namespaces") {
      const m = obj.metadata as JsonObject;
      m.labels = { ...(objectAt(m, "labels") ?? {}), [NAMESPACE_NAME_LABEL]: name };
      const spec = objectAt(obj, "spec") ?? {};
      if (!Array.isArray(spec.finalizers)) spec.finalizers = ["kubernetes"];
      obj.spec = spec;
      const status = objectAt(obj, "status") ?? {};
      status.phase = "Active";
      obj.status = status;
    } else if (info.name === "pods") {
      const status = objectAt(obj, "status") ?? {};
      if (stringAt(status, "phase") === undefined) status.phase = "Pending";
      obj.status = status;
    }
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
    this.#checkKind(info, obj, name);
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
    if (info.name === "namespaces") {
      m.labels = { ...(objectAt(m, "labels") ?? {}), [NAMESPACE_NAME_LABEL]: name };
      const status = objectAt(next, "status") ?? {};
      status.phase = "Active";
      next.status = status;
    }
    this.#validateMeta(info, next, name);
    if (jsonEqual(next, old)) return cloneJson(old);
    if (info.hasGeneration && !jsonEqual(next.spec, old.spec)) {
      m.generation = (typeof oldMeta.generation === "number" ? oldMeta.generation : 0) + 1;
    }
    m.resourceVersion = String(++this.#rv);
    const stored = deepFreeze(canonical(info, next));
    table.objects.set(key, stored);
    this.#record(table, "MODIFIED", stored, old);
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
    this.#checkKind(info, obj, name);
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
    if (info.name === "namespaces") {
      if (PROTECTED_NAMESPACES.has(name)) throw forbidden(info, name, "this namespace may not be deleted");
      for (const t of this.#tables.values()) {
        if (!t.info.namespaced) continue;
        for (const [k, o] of this.#sorted(t)) if (namespaceOf(o) === name) this.#remove(t, k, o);
      }
    }
    return cloneJson(this.#remove(table, key, old));
  }

  #remove(table: Table, key: string, old: JsonObject): JsonObject {
    table.objects.delete(key);
    const gone = cloneJson(old);
    (gone.metadata as JsonObject).resourceVersion = String(++this.#rv);
    const stored = deepFreeze(gone);
    this.#record(table, "DELETED", stored, undefined);
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
    if (this.#closed) throw new ApiError(503, "InternalError", "the store is closed");
    const info = resolve(resource);
    const table = this.#table(info);
    const filter = this.#filter(info, options);
    const rvText = options.resourceVersion ?? "";
    const watcher: Watcher = { info, filter, deliver: onEvent, closed: false };
    const handle: StoreWatch = {
      get closed() {
        return watcher.closed;
      },
      close: () => {
        this.#unwatch(watcher);
      },
    };
    let initial: WatchEvent[] = [];
    let replay: StoredEvent[] = [];
    if (rvText === "" || rvText === "0") {
      if (options.sendInitialEvents !== false) {
        initial = this.#sorted(table)
          .filter(([, o]) => this.#matches(info, filter, o))
          .map(([, o]) => ({ type: "ADDED", object: o }));
      }
    } else {
      if (!/^\d+$/.test(rvText)) throw badRequest(`invalid resource version "${rvText}"`);
      const from = Number(rvText);
      if (from < table.compactedRv)
        throw expired(`too old resource version: ${from} (${table.compactedRv + 1})`);
      if (from > this.#rv)
        throw expired(
          `too large resource version: ${from} (current ${this.#rv}); the server may have restarted`,
        );
      if (options.sendInitialEvents === true) {
        throw badRequest('sendInitialEvents is only supported with resourceVersion unset or "0"');
      }
      replay = table.history.filter((e) => e.rv > from);
    }
    table.watchers.add(watcher);
    for (const ev of initial) {
      if (watcher.closed) break;
      try {
        onEvent(ev);
      } catch {
        this.#unwatch(watcher);
      }
    }
    for (const ev of replay) this.#deliver(watcher, ev);
    return handle;
  }

  /** Ends every watch; later writes still work but nobody hears them. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const t of this.#tables.values()) {
      for (const w of t.watchers) w.closed = true;
      t.watchers.clear();
    }
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
