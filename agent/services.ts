/**
 * The agent's Service load-balancing state: Services and EndpointSlices as the watch delivers
 * them, this node's NodePort addresses, and the desired content of the five agent-owned Service
 * maps (skn_lb_svc, _slot, _backend, _revnat, _maglev), kept per Service.
 *
 * Incremental: an event marks its Service dirty; a pass rebuilds only the dirty Services through the
 * shared builder (policy/lb-builder.ts, one Service at a time) and writes only the keys whose
 * desired value changed, in an order that never leaves a dangling reference (backends, slots,
 * reverse translations, Maglev tables, then frontends; deletes the other way round). The cost of
 * an event is that of its Service, not of the cluster. A full pass (start, resync) diffs every map
 * against the kernel, which also removes what a previous agent left behind.
 *
 * Ids: svc_id and backend_id come from one allocator for the node's lifetime. After a restart the
 * allocator adopts the ids in the pinned maps, so established flows keep their backend.
 */
import type { LbMapName, LbMapPorts } from "../maps/lb-apply.js";
import {
  LbBackendFlag,
  lbBackendCodec,
  lbBackendKeyString,
  type LbBackendEntry,
} from "../maps/lb-backend.js";
import { lbMaglevCodec, lbMaglevKeyString, type LbMaglevEntry } from "../maps/lb-maglev.js";
import { lbRevnatCodec, lbRevnatKeyString, type LbRevnatEntry } from "../maps/lb-revnat.js";
import { lbSlotCodec, lbSlotKeyString, type LbSlotEntry, type LbSlotKey } from "../maps/lb-slot.js";
import { lbSvcCodec, lbSvcKeyString, type LbSvcEntry, type LbSvcKey } from "../maps/lb-svc.js";
import { MapReconciler, type ApplyResult } from "../maps/reconciler.js";
import {
  backendKeyString,
  buildLb,
  LbIdAllocator,
  type EndpointSliceView,
  type FrontendOrigin,
  type ServiceView,
} from "../policy/lb-builder.js";

type Entry<K, V> = { key: K; entry: V };

/** One Service's share of the maps. */
interface Built {
  svc: Map<string, Entry<LbSvcKey, LbSvcEntry>>;
  slot: Map<string, Entry<LbSlotKey, LbSlotEntry>>;
  revnat: Map<string, Entry<number, LbRevnatEntry>>;
  maglev: Map<string, Entry<number, LbMaglevEntry>>;
  backend: Map<string, Entry<number, LbBackendEntry>>;
  origins: FrontendOrigin[];
  problems: string[];
}

/** An allocator whose releases the state decides (a one-Service build must not free the others' ids). */
class SharedIds extends LbIdAllocator {
  override retain(): void {
    // Released by release() once the state knows what every Service still uses.
  }

  release(frontendKeys: ReadonlySet<string>, backendKeys: ReadonlySet<string>): void {
    super.retain(frontendKeys, backendKeys);
  }
}

/** What one pass of ServiceLbState.apply did. */
export interface ServicePassResult {
  /** Services rebuilt in this pass. */
  rebuilt: number;
  /** Per map: upserts, deletes, failures. */
  maps: Record<LbMapName, ApplyResult>;
  /** For each rebuilt Service: ms from its first unprogrammed event to its entries written. */
  latenciesMs: number[];
  failed: number;
  firstError?: unknown;
}

const UPSERT_ORDER: readonly LbMapName[] = ["backend", "slot", "revnat", "maglev", "svc"];
const DELETE_ORDER: readonly LbMapName[] = ["svc", "slot", "maglev", "revnat", "backend"];

function emptyResult(): ApplyResult {
  return { upserted: 0, deleted: 0, failed: 0, size: 0, overflow: 0 };
}

function add(into: ApplyResult, r: ApplyResult): void {
  into.upserted += r.upserted;
  into.deleted += r.deleted;
  into.failed += r.failed;
  into.size = r.size;
  into.overflow = r.overflow;
  if (r.firstError !== undefined) into.firstError ??= r.firstError;
}

export class ServiceLbState {
  readonly #services = new Map<string, ServiceView>();
  /** Service (ns/name) → its slices by ns/sliceName. */
  readonly #slices = new Map<string, Map<string, EndpointSliceView>>();
  /** Slice ns/name → the Service it was filed under. */
  readonly #sliceOwner = new Map<string, string>();
  #nodeName: string;
  #nodeAddresses: string[] = [];
  readonly #ids = new SharedIds();
  /** Service → earliest unprogrammed event (performance.now()). */
  readonly #dirty = new Map<string, number>();
  readonly #built = new Map<string, Built>();
  /** Frontend key string → the Service holding it (a second claimant is left out). */
  readonly #frontendOwner = new Map<string, string>();
  /** Services that lost a frontend to another: rebuilt when a frontend is released. */
  readonly #contested = new Set<string>();
  /** Backend key (id string) → the Services using it, with their version of the entry. */
  readonly #backendRefs = new Map<string, Map<string, LbBackendEntry>>();
  readonly #desired = {
    svc: new Map<string, Entry<LbSvcKey, LbSvcEntry>>(),
    slot: new Map<string, Entry<LbSlotKey, LbSlotEntry>>(),
    revnat: new Map<string, Entry<number, LbRevnatEntry>>(),
    maglev: new Map<string, Entry<number, LbMaglevEntry>>(),
    backend: new Map<string, Entry<number, LbBackendEntry>>(),
  };
  readonly #writers: {
    svc: MapReconciler<LbSvcKey, LbSvcEntry>;
    slot: MapReconciler<LbSlotKey, LbSlotEntry>;
    revnat: MapReconciler<number, LbRevnatEntry>;
    maglev: MapReconciler<number, LbMaglevEntry>;
    backend: MapReconciler<number, LbBackendEntry>;
  };
  /** Keys changed since the last write, per map. */
  readonly #changed: Record<LbMapName, Set<string>> = {
    svc: new Set(),
    slot: new Set(),
    revnat: new Set(),
    maglev: new Set(),
    backend: new Set(),
  };
  #whole = true;

  /** `ports` are borrowed: the caller closes them. */
  constructor(nodeName: string, ports: LbMapPorts) {
    this.#nodeName = nodeName;
    this.#writers = {
      svc: new MapReconciler(ports.svc, lbSvcCodec, lbSvcKeyString),
      slot: new MapReconciler(ports.slot, lbSlotCodec, lbSlotKeyString),
      revnat: new MapReconciler(ports.revnat, lbRevnatCodec, lbRevnatKeyString),
      maglev: new MapReconciler(ports.maglev, lbMaglevCodec, lbMaglevKeyString),
      backend: new MapReconciler(ports.backend, lbBackendCodec, lbBackendKeyString),
    };
  }

  /**
   * Reads the pinned maps (at start, and on a full resync): adopts their ids so that established
   * flows keep their meaning, and makes the next apply a whole diff. Returns the entries per map.
   */
  adopt(ports: LbMapPorts): Record<LbMapName, number> {
    const counts = {
      svc: this.#writers.svc.resync(),
      slot: this.#writers.slot.resync(),
      revnat: this.#writers.revnat.resync(),
      maglev: this.#writers.maglev.resync(),
      backend: this.#writers.backend.resync(),
    };
    this.#ids.adopt(ports.svc.entries(), ports.backend.entries());
    this.#whole = true;
    return counts;
  }

  /** The next apply diffs every map against the kernel (after `resyncKernel`). */
  resync(): void {
    for (const w of Object.values(this.#writers)) w.resync();
    this.#whole = true;
  }

  get nodeName(): string {
    return this.#nodeName;
  }

  /** This node's NodePort addresses; every Service with a NodePort is rebuilt when they change. */
  setNode(nodeName: string, addresses: readonly string[], now = performance.now()): void {
    const sorted = [...new Set(addresses)].sort();
    if (nodeName === this.#nodeName && sorted.join(",") === this.#nodeAddresses.join(",")) return;
    const renamed = nodeName !== this.#nodeName;
    this.#nodeName = nodeName;
    this.#nodeAddresses = sorted;
    for (const [k, s] of this.#services)
      if (renamed || s.type === "NodePort" || s.type === "LoadBalancer") this.#mark(k, now);
  }

  get nodeAddresses(): readonly string[] {
    return this.#nodeAddresses;
  }

  upsertService(view: ServiceView, now = performance.now()): void {
    const k = `${view.namespace}/${view.name}`;
    this.#services.set(k, view);
    this.#mark(k, now);
  }

  deleteService(namespace: string, name: string, now = performance.now()): void {
    const k = `${namespace}/${name}`;
    if (!this.#services.delete(k) && !this.#built.has(k)) return;
    this.#mark(k, now);
  }

  /** `sliceName` is the slice's metadata.name; `view` undefined when no Service owns it. */
  upsertSlice(sliceName: string, view: EndpointSliceView | undefined, now = performance.now()): void {
    if (view === undefined) return;
    const sk = `${view.namespace}/${sliceName}`;
    const owner = `${view.namespace}/${view.serviceName}`;
    const prev = this.#sliceOwner.get(sk);
    if (prev !== undefined && prev !== owner) this.#dropSlice(sk, prev, now);
    let m = this.#slices.get(owner);
    if (m === undefined) this.#slices.set(owner, (m = new Map<string, EndpointSliceView>()));
    m.set(sk, view);
    this.#sliceOwner.set(sk, owner);
    this.#mark(owner, now);
  }

  deleteSlice(namespace: string, sliceName: string, now = performance.now()): void {
    const sk = `${namespace}/${sliceName}`;
    const owner = this.#sliceOwner.get(sk);
    if (owner !== undefined) this.#dropSlice(sk, owner, now);
  }

  #dropSlice(sk: string, owner: string, now: number): void {
    const m = this.#slices.get(owner);
    m?.delete(sk);
    if (m?.size === 0) this.#slices.delete(owner);
    this.#sliceOwner.delete(sk);
    this.#mark(owner, now);
  }

  #mark(k: string, now: number): void {
    if (!this.#dirty.has(k)) this.#dirty.set(k, now);
  }

  /** Services with unprogrammed changes. */
  get pending(): number {
    return this.#dirty.size;
  }

  /** Every Service rebuilt next pass (a bad event, a full resync). */
  markAll(now = performance.now()): void {
    for (const k of new Set([...this.#services.keys(), ...this.#built.keys()])) this.#mark(k, now);
  }

  /** Rebuilds the dirty Services and writes what changed. Never throws for a single entry. */
  apply(now: () => number = () => performance.now()): ServicePassResult {
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    for (const [k] of dirty) this.#rebuild(k);
    // Frontends released by this pass may now go to a Service that lost them (once: a Service
    // rebuilt here does not release anything it did not already release).
    if (this.#released.size > 0) {
      const contested = [...this.#contested].filter((c) => !this.#released.has(c));
      this.#released.clear();
      for (const c of contested) {
        this.#contested.delete(c);
        this.#rebuild(c);
      }
      this.#released.clear();
    }
    const maps = {
      svc: emptyResult(),
      slot: emptyResult(),
      revnat: emptyResult(),
      maglev: emptyResult(),
      backend: emptyResult(),
    };
    const whole = this.#whole;
    this.#whole = false;
    // Ids are never reused while held; unused ones are released on whole passes (O(desired)).
    if (whole) this.#releaseIds();
    const d = this.#desired;
    const ups = (name: LbMapName) => [...this.#changed[name]].filter((ks) => d[name].has(ks));
    const dels = (name: LbMapName) => [...this.#changed[name]].filter((ks) => !d[name].has(ks));
    const upserts: Record<LbMapName, string[]> = {
      svc: ups("svc"),
      slot: ups("slot"),
      revnat: ups("revnat"),
      maglev: ups("maglev"),
      backend: ups("backend"),
    };
    const deletes: Record<LbMapName, string[]> = {
      svc: dels("svc"),
      slot: dels("slot"),
      revnat: dels("revnat"),
      maglev: dels("maglev"),
      backend: dels("backend"),
    };
    for (const name of UPSERT_ORDER) {
      const r = this.#applyChanged(name, whole ? d[name].keys() : upserts[name]);
      add(maps[name], r);
    }
    for (const name of DELETE_ORDER) {
      // A whole pass diffs the map against everything desired: it only deletes by now.
      const r = whole ? this.#applyWhole(name) : this.#applyChanged(name, deletes[name]);
      add(maps[name], r);
    }
    let failed = 0;
    let firstError: unknown;
    for (const name of UPSERT_ORDER) {
      failed += maps[name].failed;
      firstError ??= maps[name].firstError;
      // A failed key is retried next pass.
      if (maps[name].failed === 0) this.#changed[name].clear();
    }
    if (failed > 0) this.#whole = true;
    const end = now();
    const result: ServicePassResult = {
      rebuilt: dirty.length,
      maps,
      latenciesMs: dirty.map(([, t]) => end - t),
      failed,
    };
    if (firstError !== undefined) result.firstError = firstError;
    return result;
  }

  #applyChanged(name: LbMapName, keys: Iterable<string>): ApplyResult {
    switch (name) {
      case "svc":
        return this.#writers.svc.applyChanged(this.#desired.svc, keys);
      case "slot":
        return this.#writers.slot.applyChanged(this.#desired.slot, keys);
      case "revnat":
        return this.#writers.revnat.applyChanged(this.#desired.revnat, keys);
      case "maglev":
        return this.#writers.maglev.applyChanged(this.#desired.maglev, keys);
      case "backend":
        return this.#writers.backend.applyChanged(this.#desired.backend, keys);
    }
  }

  #applyWhole(name: LbMapName): ApplyResult {
    switch (name) {
      case "svc":
        return this.#writers.svc.apply(this.#desired.svc);
      case "slot":
        return this.#writers.slot.apply(this.#desired.slot);
      case "revnat":
        return this.#writers.revnat.apply(this.#desired.revnat);
      case "maglev":
        return this.#writers.maglev.apply(this.#desired.maglev);
      case "backend":
        return this.#writers.backend.apply(this.#desired.backend);
    }
  }

  /** Services whose frontends were released in this pass. */
  readonly #released = new Set<string>();

  #rebuild(k: string): void {
    const old = this.#built.get(k);
    const view = this.#services.get(k);
    const next = view === undefined ? undefined : this.#build(k, view);
    if (old !== undefined) {
      let released = false;
      for (const ks of old.svc.keys())
        if (next?.svc.has(ks) !== true && this.#frontendOwner.get(ks) === k) {
          this.#frontendOwner.delete(ks);
          released = true;
        }
      if (released) this.#released.add(k);
    }
    this.#swap("svc", old?.svc, next?.svc);
    this.#swap("slot", old?.slot, next?.slot);
    this.#swap("revnat", old?.revnat, next?.revnat);
    this.#swap("maglev", old?.maglev, next?.maglev);
    this.#swapBackends(k, old?.backend, next?.backend);
    if (next === undefined) this.#built.delete(k);
    else this.#built.set(k, next);
  }

  /** One Service through the builder, without the frontends another Service holds. */
  #build(k: string, view: ServiceView): Built {
    const slices = [...(this.#slices.get(k)?.values() ?? [])];
    const r = buildLb(
      {
        node: { nodeName: this.#nodeName, nodeAddresses: this.#nodeAddresses },
        services: [view],
        endpointSlices: slices,
      },
      this.#ids,
    );
    const built: Built = {
      svc: new Map(),
      slot: new Map(),
      revnat: new Map(),
      maglev: new Map(),
      backend: new Map(),
      origins: [],
      problems: [...r.problems],
    };
    for (const origin of r.origins.values()) {
      const ks = lbSvcKeyString(origin.key);
      const owner = this.#frontendOwner.get(ks);
      if (owner !== undefined && owner !== k) {
        built.problems.push(`${k}: ${origin.kind} ${ks} is already ${owner}'s: left out`);
        this.#contested.add(k);
        continue;
      }
      this.#frontendOwner.set(ks, k);
      const svcEntry = r.svc.get(ks);
      if (svcEntry !== undefined) built.svc.set(ks, svcEntry);
      const id = String(origin.svcId);
      const rev = r.revnat.get(id);
      if (rev !== undefined) built.revnat.set(id, rev);
      const mag = r.maglev.get(id);
      if (mag !== undefined) built.maglev.set(id, mag);
      origin.backendIds.forEach((b, slot) => {
        const sk = lbSlotKeyString({ svcId: origin.svcId, slot });
        const s = r.slot.get(sk);
        if (s !== undefined) built.slot.set(sk, s);
        const be = r.backend.get(String(b));
        if (be !== undefined) built.backend.set(String(b), be);
      });
      built.origins.push(origin);
    }
    // Terminating endpoints no longer in a slot stay as backends while their TCP flows drain.
    for (const [bks, e] of r.backend)
      if (!built.backend.has(bks) && (e.entry.flags & LbBackendFlag.terminating) !== 0)
        built.backend.set(bks, e);
    return built;
  }

  #swap<K, V>(
    name: Exclude<LbMapName, "backend">,
    old: Map<string, Entry<K, V>> | undefined,
    next: Map<string, Entry<K, V>> | undefined,
  ): void {
    const desired = this.#desired[name] as unknown as Map<string, Entry<K, V>>;
    const changed = this.#changed[name];
    for (const ks of old?.keys() ?? [])
      if (next?.has(ks) !== true) {
        desired.delete(ks);
        changed.add(ks);
      }
    for (const [ks, e] of next ?? []) {
      const was = desired.get(ks);
      if (was !== e) {
        desired.set(ks, e);
        changed.add(ks);
      }
    }
  }

  /** Backends are shared: an entry stays while a Service uses it; terminating only if so for all. */
  #swapBackends(
    k: string,
    old: Map<string, Entry<number, LbBackendEntry>> | undefined,
    next: Map<string, Entry<number, LbBackendEntry>> | undefined,
  ): void {
    const touched = new Set<string>([...(old?.keys() ?? []), ...(next?.keys() ?? [])]);
    for (const bks of touched) {
      let refs = this.#backendRefs.get(bks);
      const e = next?.get(bks);
      if (e === undefined) refs?.delete(k);
      else {
        if (refs === undefined) this.#backendRefs.set(bks, (refs = new Map<string, LbBackendEntry>()));
        refs.set(k, e.entry);
      }
      if (refs === undefined || refs.size === 0) {
        this.#backendRefs.delete(bks);
        if (this.#desired.backend.delete(bks)) this.#changed.backend.add(bks);
        continue;
      }
      let merged: LbBackendEntry | undefined;
      for (const v of refs.values())
        merged =
          merged === undefined
            ? { ...v }
            : { ...merged, flags: merged.flags & (v.flags | ~LbBackendFlag.terminating) & 0xff };
      if (merged === undefined) continue;
      this.#desired.backend.set(bks, { key: Number(bks), entry: merged });
      this.#changed.backend.add(bks);
    }
  }

  /** Keeps the ids of every frontend and backend still desired; frees the rest. O(desired). */
  #releaseIds(): void {
    const backends = new Set<string>();
    for (const { entry } of this.#desired.backend.values())
      backends.add(backendKeyString(entry.addr, entry.port, entry.proto));
    this.#ids.release(new Set(this.#desired.svc.keys()), backends);
  }

  /** What is programmed, for metrics and status. */
  counts(): { services: number; frontends: number; backends: number; problems: number } {
    let services = 0;
    let problems = 0;
    for (const b of this.#built.values()) {
      if (b.svc.size > 0) services++;
      problems += b.problems.length;
    }
    return {
      services,
      frontends: this.#desired.svc.size,
      backends: this.#desired.backend.size,
      problems,
    };
  }

  /** Inputs the builder left out, by Service. */
  problems(): string[] {
    return [...this.#built.values()].flatMap((b) => b.problems);
  }

  /** Every Service's origins (frontend → backends), for status. */
  origins(): FrontendOrigin[] {
    return [...this.#built.values()].flatMap((b) => b.origins);
  }
}
