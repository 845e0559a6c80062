/**
 * Writes desired Service map contents (policy/lb-builder.ts's result) into the five maps the agent
 * owns, by diff, in an order that never lets the datapath see a dangling reference:
 *   1. upserts: backends, then slots, reverse translations and Maglev tables, then frontends
 *      (a frontend's new count appears only once its slots exist);
 *   2. deletes: frontends first, then slots, Maglev tables, reverse translations, backends.
 * Deleting a backend is what moves its flows: the datapath's next packet of a flow whose backend id
 * is gone picks a live backend (lib/lb.h).
 */
import { LbBackendMap, lbBackendCodec, lbBackendKeyString, type LbBackendEntry } from "./lb-backend.js";
import { LbMaglevMap, lbMaglevCodec, lbMaglevKeyString, type LbMaglevEntry } from "./lb-maglev.js";
import { LbRevnatMap, lbRevnatCodec, lbRevnatKeyString, type LbRevnatEntry } from "./lb-revnat.js";
import { LbSlotMap, lbSlotCodec, lbSlotKeyString, type LbSlotEntry, type LbSlotKey } from "./lb-slot.js";
import { LbSvcMap, lbSvcCodec, lbSvcKeyString, type LbSvcEntry, type LbSvcKey } from "./lb-svc.js";
import { MapReconciler, type ApplyResult, type MapPort } from "./reconciler.js";

type Entries<K, V> = ReadonlyMap<string, { key: K; entry: V }>;

/** Desired contents, keyed by each module's key string (lbSvcKeyString, lbSlotKeyString, String(id)). */
export interface LbMapsDesired {
  svc: Entries<LbSvcKey, LbSvcEntry>;
  slot: Entries<LbSlotKey, LbSlotEntry>;
  backend: Entries<number, LbBackendEntry>;
  revnat: Entries<number, LbRevnatEntry>;
  maglev: Entries<number, LbMaglevEntry>;
}

/** The ports (typed maps, or fakes in tests) of the five maps. */
export interface LbMapPorts {
  svc: MapPort<LbSvcKey, LbSvcEntry>;
  slot: MapPort<LbSlotKey, LbSlotEntry>;
  backend: MapPort<number, LbBackendEntry>;
  revnat: MapPort<number, LbRevnatEntry>;
  maglev: MapPort<number, LbMaglevEntry>;
}

export type LbMapName = keyof LbMapsDesired;

/** Per map: what one apply did. */
export type LbApplyResult = Record<LbMapName, ApplyResult>;

function sum(a: ApplyResult, b: ApplyResult): ApplyResult {
  const r: ApplyResult = {
    upserted: a.upserted + b.upserted,
    deleted: a.deleted + b.deleted,
    failed: a.failed + b.failed,
    size: b.size,
    overflow: b.overflow,
  };
  const err = a.firstError ?? b.firstError;
  if (err !== undefined) r.firstError = err;
  return r;
}

/** Diff-then-apply over the five agent-owned Service maps. Does not own the ports. */
export class LbMapsWriter {
  readonly #svc: MapReconciler<LbSvcKey, LbSvcEntry>;
  readonly #slot: MapReconciler<LbSlotKey, LbSlotEntry>;
  readonly #backend: MapReconciler<number, LbBackendEntry>;
  readonly #revnat: MapReconciler<number, LbRevnatEntry>;
  readonly #maglev: MapReconciler<number, LbMaglevEntry>;

  constructor(ports: LbMapPorts) {
    this.#svc = new MapReconciler(ports.svc, lbSvcCodec, lbSvcKeyString);
    this.#slot = new MapReconciler(ports.slot, lbSlotCodec, lbSlotKeyString);
    this.#backend = new MapReconciler(ports.backend, lbBackendCodec, lbBackendKeyString);
    this.#revnat = new MapReconciler(ports.revnat, lbRevnatCodec, lbRevnatKeyString);
    this.#maglev = new MapReconciler(ports.maglev, lbMaglevCodec, lbMaglevKeyString);
  }

  /** Re-reads every map (at start, when adopting pinned maps). Returns the entries per map. */
  resync(): Record<LbMapName, number> {
    return {
      svc: this.#svc.resync(),
      slot: this.#slot.resync(),
      backend: this.#backend.resync(),
      revnat: this.#revnat.resync(),
      maglev: this.#maglev.resync(),
    };
  }

  /** Writes the difference; never throws for a single entry (failures are counted per map). */
  apply(desired: LbMapsDesired): LbApplyResult {
    const up = {
      backend: this.#backend.applyChanged(desired.backend, desired.backend.keys()),
      slot: this.#slot.applyChanged(desired.slot, desired.slot.keys()),
      revnat: this.#revnat.applyChanged(desired.revnat, desired.revnat.keys()),
      maglev: this.#maglev.applyChanged(desired.maglev, desired.maglev.keys()),
      svc: this.#svc.applyChanged(desired.svc, desired.svc.keys()),
    };
    // Everything desired is written now: a whole apply only deletes.
    const svc = this.#svc.apply(desired.svc);
    const slot = this.#slot.apply(desired.slot);
    const maglev = this.#maglev.apply(desired.maglev);
    const revnat = this.#revnat.apply(desired.revnat);
    const backend = this.#backend.apply(desired.backend);
    return {
      svc: sum(up.svc, svc),
      slot: sum(up.slot, slot),
      backend: sum(up.backend, backend),
      revnat: sum(up.revnat, revnat),
      maglev: sum(up.maglev, maglev),
    };
  }
}

/** The five agent-owned Service maps of a pinned datapath, open. Owns the fds: close it. */
export class PinnedLbMaps implements Disposable {
  readonly svc: LbSvcMap;
  readonly slot: LbSlotMap;
  readonly backend: LbBackendMap;
  readonly revnat: LbRevnatMap;
  readonly maglev: LbMaglevMap;

  private constructor(m: {
    svc: LbSvcMap;
    slot: LbSlotMap;
    backend: LbBackendMap;
    revnat: LbRevnatMap;
    maglev: LbMaglevMap;
  }) {
    this.svc = m.svc;
    this.slot = m.slot;
    this.backend = m.backend;
    this.revnat = m.revnat;
    this.maglev = m.maglev;
  }

  /** Opens the maps pinned under `root`. Throws SysError (ENOENT: the datapath is not loaded), or a
   * size mismatch; closes what it opened before throwing. */
  static open(root: string): PinnedLbMaps {
    const opened: { close(): void }[] = [];
    const take = <T extends { close(): void }>(f: () => T): T => {
      const m = f();
      opened.push(m);
      return m;
    };
    try {
      return new PinnedLbMaps({
        svc: take(() => LbSvcMap.openPinned(root)),
        slot: take(() => LbSlotMap.openPinned(root)),
        backend: take(() => LbBackendMap.openPinned(root)),
        revnat: take(() => LbRevnatMap.openPinned(root)),
        maglev: take(() => LbMaglevMap.openPinned(root)),
      });
    } catch (err) {
      for (const m of opened.reverse()) m.close();
      throw err;
    }
  }

  close(): void {
    this.svc.close();
    this.slot.close();
    this.backend.close();
    this.revnat.close();
    this.maglev.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
