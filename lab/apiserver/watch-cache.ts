/**
 * Watch delivery for the lab API server: the one global resourceVersion counter, a bounded event
 * history per resource type, the open watchers and what each of them is sent. Like
 * kube-apiserver's watch cache: a watch from a resourceVersion replays the retained events after
 * it, or is answered 410 `Expired` when they were dropped; an object that stops matching a
 * watch's selectors is sent as DELETED, one that starts matching as ADDED. Bookmarks are built
 * here (the HTTP layer decides when to send them).
 *
 * Synchronous: {@link WatchCache.record} delivers to every watcher before it returns, so a write
 * and its events happen in one turn and a watch never misses or repeats an event.
 */
import { ApiError, badRequest, expired } from "./errors.js";
import { cloneJson, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.js";
import { fieldValue, type ResourceInfo, type ResourceName } from "./resources.js";
import {
  labelsOf,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldSelector,
  type LabelSelector,
} from "./selectors.js";

/** Watch event types the store emits (BOOKMARK and ERROR are added by the HTTP layer). */
export type StoreEventType = "ADDED" | "MODIFIED" | "DELETED";

/** An event as delivered to one watcher, already filtered and shaped for it. */
export interface WatchEvent {
  readonly type: StoreEventType;
  /** Deeply frozen: clone before changing it. */
  readonly object: JsonObject;
}

/** Filters shared by list, watch and deletecollection. */
export interface SelectOptions {
  namespace?: string | undefined;
  /** String syntax (`a=b,c in (d)`) or an already parsed selector. */
  labelSelector?: string | LabelSelector | undefined;
  /** String syntax (`spec.nodeName=n1`) or an already parsed selector. */
  fieldSelector?: string | FieldSelector | undefined;
}

/** Options for a watch. */
export interface WatchOptions extends SelectOptions {
  /**
   * Unset, "" or "0": start with a synthetic ADDED for every matching object, then stream.
   * A number: replay the retained events after it, or throw 410 Expired when they were dropped.
   */
  resourceVersion?: string | undefined;
  /** Explicitly request (true) or suppress (false) the initial ADDED events. */
  sendInitialEvents?: boolean | undefined;
}

/** A live watch; `close()` is idempotent. */
export interface StoreWatch {
  readonly closed: boolean;
  close(): void;
}

/** A compiled list/watch filter. */
export interface Filter {
  readonly namespace: string | undefined;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
}

/** Compiles selectors; throws 400 for a bad selector or an unsupported field label. */
export function compileFilter(info: ResourceInfo, options: SelectOptions | undefined): Filter {
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

/** Whether `obj` passes the filter. */
export function matchesFilter(info: ResourceInfo, f: Filter, obj: JsonObject): boolean {
  if (f.namespace !== undefined && stringAt(objectAt(obj, "metadata"), "namespace") !== f.namespace)
    return false;
  if (!matchesLabels(f.labels, labelsOf(obj))) return false;
  return matchesFields(f.fields, (field) => fieldValue(info, obj, field));
}

/** Freezes a JSON value and everything in it; stored objects and events are shared this way. */
export function deepFreeze<T extends JsonValue>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

/** A BOOKMARK event's object: kind, apiVersion and the resourceVersion (plus annotations). */
export function bookmarkObject(
  info: ResourceInfo,
  resourceVersion: string,
  annotations?: JsonObject,
): JsonObject {
  const metadata: JsonObject = { resourceVersion };
  if (annotations !== undefined) metadata.annotations = annotations;
  return { kind: info.kind, apiVersion: info.apiVersion, metadata };
}

/** Options for {@link WatchCache}. */
export interface WatchCacheOptions {
  /** Events retained per resource type (minimum 1). */
  history: number;
  /** The resourceVersion before the first write. */
  firstResourceVersion: number;
}

interface StoredEvent {
  readonly type: StoreEventType;
  readonly rv: number;
  readonly object: JsonObject;
  /** The object before a MODIFIED event, for selector transitions. */
  readonly previous: JsonObject | undefined;
}

interface Watcher {
  readonly info: ResourceInfo;
  readonly filter: Filter;
  readonly deliver: (ev: WatchEvent) => void;
  closed: boolean;
}

interface Channel {
  readonly history: StoredEvent[];
  /** Every event with rv > compactedRv is still in `history`. */
  compactedRv: number;
  readonly watchers: Set<Watcher>;
}

/**
 * Resource versions, history and watchers for every resource type. Owned by the store;
 * `close()` ends every watch. Throws {@link ApiError} for watches a real server would refuse.
 */
export class WatchCache {
  readonly #channels = new Map<ResourceName, Channel>();
  readonly #historyLimit: number;
  readonly #first: number;
  #rv: number;
  #closed = false;

  /** Throws RangeError on a bad option. */
  constructor(options: WatchCacheOptions) {
    if (!Number.isInteger(options.history) || options.history < 1)
      throw new RangeError(`history must be a positive integer, got ${options.history}`);
    const first = options.firstResourceVersion;
    if (!Number.isSafeInteger(first) || first < 0)
      throw new RangeError(`firstResourceVersion must be a non-negative integer, got ${first}`);
    this.#historyLimit = options.history;
    this.#first = first;
    this.#rv = first;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** The current resourceVersion as a number (continue tokens). */
  get resourceVersionNumber(): number {
    return this.#rv;
  }

  /** Takes the next resourceVersion for a write that is about to be recorded. */
  next(): string {
    return String(++this.#rv);
  }

  /** The number of open watches (all resources). */
  get watchCount(): number {
    let n = 0;
    for (const c of this.#channels.values()) n += c.watchers.size;
    return n;
  }

  #channel(info: ResourceInfo): Channel {
    let c = this.#channels.get(info.name);
    if (c === undefined) {
      c = { history: [], compactedRv: this.#first, watchers: new Set() };
      this.#channels.set(info.name, c);
    }
    return c;
  }

  /**
   * Records a write at the current resourceVersion (taken with {@link next}) and delivers it.
   * `object` must already be deeply frozen; `previous` is the object before a MODIFIED.
   */
  record(
    info: ResourceInfo,
    type: StoreEventType,
    object: JsonObject,
    previous: JsonObject | undefined,
  ): void {
    const channel = this.#channel(info);
    const ev: StoredEvent = { type, rv: this.#rv, object, previous };
    channel.history.push(ev);
    while (channel.history.length > this.#historyLimit) {
      const dropped = channel.history.shift() as StoredEvent;
      channel.compactedRv = dropped.rv;
    }
    for (const w of [...channel.watchers]) this.#deliver(w, ev);
  }

  #deliver(w: Watcher, ev: StoredEvent): void {
    if (w.closed) return;
    const info = w.info;
    const now = matchesFilter(info, w.filter, ev.object);
    let out: WatchEvent | undefined;
    if (ev.type === "MODIFIED") {
      const before = ev.previous !== undefined && matchesFilter(info, w.filter, ev.previous);
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
    this.#channel(w.info).watchers.delete(w);
  }

  /**
   * Starts a watch. Synchronously delivers the initial events (`current()`'s objects that match,
   * see {@link WatchOptions}) or the replayed history, then every later matching change, to
   * `onEvent` until `close()`. Throws 410 Expired when `resourceVersion` is older than the
   * retained history (or from another server run), 400 for a bad selector or resourceVersion.
   * If `onEvent` throws, the watch is closed.
   */
  watch(
    info: ResourceInfo,
    options: WatchOptions,
    current: () => readonly JsonObject[],
    onEvent: (ev: WatchEvent) => void,
  ): StoreWatch {
    if (this.#closed) throw new ApiError(503, "InternalError", "the store is closed");
    const channel = this.#channel(info);
    const filter = compileFilter(info, options);
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
        initial = current()
          .filter((o) => matchesFilter(info, filter, o))
          .map((o) => ({ type: "ADDED", object: o }));
      }
    } else {
      if (!/^\d+$/.test(rvText)) throw badRequest(`invalid resource version "${rvText}"`);
      const from = Number(rvText);
      if (from < channel.compactedRv)
        throw expired(`too old resource version: ${from} (${channel.compactedRv + 1})`);
      if (from > this.#rv)
        throw expired(
          `too large resource version: ${from} (current ${this.#rv}); the server may have restarted`,
        );
      if (options.sendInitialEvents === true) {
        throw badRequest('sendInitialEvents is only supported with resourceVersion unset or "0"');
      }
      replay = channel.history.filter((e) => e.rv > from);
    }
    channel.watchers.add(watcher);
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

  /** Ends every watch; later writes are still recorded but nobody hears them. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const c of this.#channels.values()) {
      for (const w of c.watchers) w.closed = true;
      c.watchers.clear();
    }
  }
}
