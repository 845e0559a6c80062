import assert from "node:assert/strict";
import { ipcacheCodec, ipcacheKeyString, type IpcacheEntry } from "../../maps/ipcache.js";
import type { Prefix } from "../../maps/net.js";
import { FakeMapPort, MapReconciler } from "../../maps/reconciler.js";

function desired(n: number, identity = 300): Map<string, { key: Prefix; entry: IpcacheEntry }> {
  const m = new Map<string, { key: Prefix; entry: IpcacheEntry }>();
  for (let i = 0; i < n; i++) {
    const key = { ip: `10.0.${i >> 8}.${i & 255}`, length: 32 };
    m.set(ipcacheKeyString(key), { key, entry: { identity, tunnelIp: null, cidrIdentity: 0, flags: 0 } });
  }
  return m;
}

describe("agent: map reconciler (diff, then apply)", function () {
  it("writes only differences; an unchanged desired state writes nothing", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    assert.equal(rec.apply(desired(100)).upserted, 100);
    const writes = port.writes;
    const again = rec.apply(desired(100));
    assert.deepEqual([again.upserted, again.deleted], [0, 0]);
    assert.equal(port.writes, writes);
    const changed = desired(100);
    changed.delete("10.0.0.1/32");
    changed.get("10.0.0.2/32")!.entry.identity = 999;
    const r = rec.apply(changed);
    assert.deepEqual([r.upserted, r.deleted, r.size], [1, 1, 99]);
  });

  it("adopts what the kernel holds: resync then apply never empties the map", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString);
    for (const { key, entry } of desired(50).values()) port.set(key, entry);
    port.writes = 0;
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    assert.equal(rec.resync(), 50);
    let minSize = Infinity;
    const origDelete = port.delete.bind(port);
    port.delete = (k) => {
      const r = origDelete(k);
      minSize = Math.min(minSize, port.entriesByKey.size);
      return r;
    };
    const r = rec.apply(desired(60, 301));
    assert.equal(r.upserted, 60);
    assert.equal(r.deleted, 0);
    assert.ok(port.entriesByKey.size === 60);
    assert.ok(minSize === Infinity || minSize > 0);
  });

  it("reports overflow instead of failing silently when the map is too small", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString, 10);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    const r = rec.apply(desired(15));
    assert.equal(r.overflow, 5);
    assert.equal(r.failed, 5);
    assert.equal(r.size, 10);
    assert.ok(r.firstError instanceof Error);
  });

  it("makes room by deleting first when the map is full", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString, 10);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    rec.apply(desired(10));
    const next = new Map([...desired(20)].slice(10));
    const r = rec.apply(next);
    assert.equal(r.failed, 0);
    assert.equal(r.size, 10);
  });

  it("applyChanged writes only the named keys: upserts what differs, deletes what is no longer desired", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    rec.apply(desired(100));
    const writes = port.writes;
    const next = desired(100);
    next.delete("10.0.0.1/32");
    next.get("10.0.0.2/32")!.entry.identity = 999;
    next.get("10.0.0.3/32")!.entry.identity = 999; // changed but not named: left alone
    const r = rec.applyChanged(next, ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.4/32", "10.0.9.9/32"]);
    assert.deepEqual([r.upserted, r.deleted, r.failed, r.size], [1, 1, 0, 99]);
    assert.equal(port.writes, writes + 2, "one write per changed key, none for the unchanged or absent");
    assert.equal(port.entriesByKey.get("10.0.0.2/32")?.[1].identity, 999);
    assert.equal(port.entriesByKey.get("10.0.0.3/32")?.[1].identity, 300);
    assert.equal(port.entriesByKey.has("10.0.0.1/32"), false);
    // A whole apply afterwards finds only what was left out.
    assert.equal(rec.apply(next).upserted, 1);
  });

  it("applyChanged counts failed writes and keeps the shadow true to the map", function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString, 10);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    rec.apply(desired(10));
    const next = desired(11);
    const r = rec.applyChanged(next, ["10.0.0.10/32"]);
    assert.deepEqual([r.upserted, r.failed, r.size, r.overflow], [0, 1, 10, 1]);
    assert.ok(r.firstError instanceof Error);
  });
});

describe("agent: map reconciler audit (the full resync, in slices)", function () {
  const entry = (identity: number): IpcacheEntry => ({ identity, tunnelIp: null, cidrIdentity: 0, flags: 0 });

  it("finds altered, extra and missing entries, trusts what events wrote meanwhile, and applyChanged repairs only those", async function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    const want = desired(1000);
    rec.apply(want);
    // Behind the reconciler's back: one altered, one removed, one added.
    port.entriesByKey.set("10.0.0.7/32", [{ ip: "10.0.0.7", length: 32 }, entry(4)]);
    port.entriesByKey.delete("10.0.1.9/32");
    port.entriesByKey.set("10.9.9.9/32", [{ ip: "10.9.9.9", length: 32 }, entry(5)]);
    let slices = 0;
    const r = await rec.audit({
      chunk: 64,
      pause: () => {
        slices++;
        // An event between slices: a new pod and a deleted one, through the reconciler.
        if (slices === 3) {
          const key = { ip: "10.1.0.1", length: 32 };
          want.set("10.1.0.1/32", { key, entry: entry(301) });
          want.delete("10.0.3.200/32");
          rec.applyChanged(want, ["10.1.0.1/32", "10.0.3.200/32"]);
        }
        return Promise.resolve(true);
      },
    });
    assert.ok(r.complete);
    assert.ok(r.slices >= 1000 / 64, `${r.slices} slices`);
    assert.deepEqual([r.altered, r.extra, r.missing], [1, 1, 1]);
    assert.deepEqual(new Set(r.keys), new Set(["10.0.0.7/32", "10.0.1.9/32", "10.9.9.9/32"]));
    const writes = port.writes;
    const fix = rec.applyChanged(want, r.keys);
    assert.deepEqual([fix.upserted, fix.deleted, fix.failed], [2, 1, 0]);
    assert.equal(port.writes - writes, 3, "only the drifted entries written");
    assert.equal(port.entriesByKey.size, want.size);
    for (const [ks, { entry: e }] of want) assert.deepEqual(port.entriesByKey.get(ks)?.[1], e, ks);
    // Nothing drifted now: a second audit finds nothing.
    const again = await rec.audit({ chunk: 64, pause: () => Promise.resolve(true) });
    assert.deepEqual([again.altered, again.extra, again.missing, again.checked], [0, 0, 0, want.size]);
  });

  it("stops when pause says so, reporting an incomplete audit without touching the map", async function () {
    const port = new FakeMapPort<Prefix, IpcacheEntry>(ipcacheKeyString);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    rec.apply(desired(300));
    const writes = port.writes;
    const r = await rec.audit({ chunk: 50, pause: () => Promise.resolve(false) });
    assert.equal(r.complete, false);
    assert.equal(r.slices, 1);
    assert.equal(r.missing, 0, "an incomplete walk reports nothing missing");
    assert.equal(port.writes, writes);
  });
});
