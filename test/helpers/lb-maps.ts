/**
 * Writes Service frontends and backends straight into a node's pinned skn_lb_* maps, for tests of
 * the datapath's Service paths without the agent's Service wiring: slots local-first, reverse
 * translation, and a consistent table (every node computes the same one from the same backends,
 * sorted by id) standing in for the agent's Maglev table.
 */
import { LbBackendFlag, LbBackendMap, type LbBackendEntry } from "../../maps/lb-backend.js";
import { LbMaglevMap, MAGLEV_M } from "../../maps/lb-maglev.js";
import { LbRevnatMap } from "../../maps/lb-revnat.js";
import { LbSlotMap } from "../../maps/lb-slot.js";
import { LbSvcMap, type LbProtoNumber } from "../../maps/lb-svc.js";

export interface TestBackend {
  id: number;
  addr: string;
  port: number;
  proto: LbProtoNumber;
  /** The node the backend pod lives on. */
  node: string;
}

export interface TestFrontend {
  svcId: number;
  addr: string;
  port: number;
  proto: LbProtoNumber;
  /** LbSvcFlag bits. */
  flags: number;
  backends: TestBackend[];
}

/** One node's Service maps. Owns the fds: close it. */
export class TestLbMaps implements Disposable {
  readonly svc: LbSvcMap;
  readonly slot: LbSlotMap;
  readonly backend: LbBackendMap;
  readonly revnat: LbRevnatMap;
  readonly maglev: LbMaglevMap;

  constructor(
    root: string,
    readonly nodeName: string,
  ) {
    this.svc = LbSvcMap.openPinned(root);
    this.slot = LbSlotMap.openPinned(root);
    this.backend = LbBackendMap.openPinned(root);
    this.revnat = LbRevnatMap.openPinned(root);
    this.maglev = LbMaglevMap.openPinned(root);
  }

  backendEntry(b: TestBackend): LbBackendEntry {
    return {
      addr: b.addr,
      port: b.port,
      proto: b.proto,
      flags: b.node === this.nodeName ? LbBackendFlag.local : 0,
    };
  }

  /** Writes the frontend whole (backends first, then slots, table, reverse entry, frontend). */
  upsert(f: TestFrontend): void {
    for (const b of f.backends) this.backend.set(b.id, this.backendEntry(b));
    const ordered = [
      ...f.backends.filter((b) => b.node === this.nodeName),
      ...f.backends.filter((b) => b.node !== this.nodeName),
    ];
    ordered.forEach((b, slot) => this.slot.set({ svcId: f.svcId, slot }, { backendId: b.id }));
    const sorted = [...f.backends].sort((x, y) => x.id - y.id);
    if (sorted.length > 0)
      this.maglev.set(
        f.svcId,
        Array.from({ length: MAGLEV_M }, (_, i) => sorted[i % sorted.length]!.id),
      );
    else this.maglev.delete(f.svcId);
    this.revnat.set(f.svcId, { addr: f.addr, port: f.port, proto: f.proto });
    this.svc.set(
      { addr: f.addr, port: f.port, proto: f.proto },
      {
        svcId: f.svcId,
        count: f.backends.length,
        localCount: ordered.filter((b) => b.node === this.nodeName).length,
        flags: f.flags,
        affinityTimeoutS: 0,
      },
    );
  }

  /** A backend gone (its pod deleted): out of the frontend, and out of skn_lb_backend. */
  removeBackend(f: TestFrontend, id: number): TestFrontend {
    const next = { ...f, backends: f.backends.filter((b) => b.id !== id) };
    for (let slot = next.backends.length; slot < f.backends.length; slot++)
      this.slot.delete({ svcId: f.svcId, slot });
    this.upsert(next);
    this.backend.delete(id);
    return next;
  }

  close(): void {
    for (const m of [this.svc, this.slot, this.backend, this.revnat, this.maglev]) m.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
