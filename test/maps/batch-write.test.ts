/**
 * Batch writes into real kernel maps: RawMap.updatePacked (BPF_MAP_UPDATE_BATCH, element by
 * element where the kernel lacks it) and the reconciler's first fill through TypedMap.setMany, on
 * a pinned LPM trie shaped like skn_ipcache. A batch that stops at a failing entry (map full) must
 * leave the same result as writing one entry at a time: each failure counted, the rest written.
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { MapType, RawMap, SysError, ensurePinRoot } from "../../loader/index.js";
import {
  IPCACHE_MAP,
  IpcacheMap,
  ipcacheCodec,
  ipcacheKeyString,
  type IpcacheEntry,
} from "../../maps/ipcache.js";
import type { Prefix } from "../../maps/net.js";
import { pinPath } from "../../maps/pins.js";
import { FakeMapPort, MapReconciler } from "../../maps/reconciler.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const BPF_F_NO_PREALLOC = 1;

function desired(n: number, identity = 300): Map<string, { key: Prefix; entry: IpcacheEntry }> {
  const m = new Map<string, { key: Prefix; entry: IpcacheEntry }>();
  for (let i = 0; i < n; i++) {
    const key = { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, length: 32 };
    m.set(ipcacheKeyString(key), {
      key,
      entry: {
        identity: identity + (i % 7),
        tunnelIp: i % 2 === 0 ? "192.0.2.1" : null,
        cidrIdentity: 0,
        flags: i % 4,
      },
    });
  }
  return m;
}

describe("maps: batch writes into a real pinned LPM trie", function () {
  let root = "";
  before(function () {
    requireRoot(this);
    ensurePinRoot("/sys/fs/bpf");
  });
  beforeEach(function () {
    root = `/sys/fs/bpf/${uniqueName("skbw")}`;
    mkdirSync(root);
  });
  afterEach(function () {
    if (root !== "") rmSync(root, { recursive: true, force: true });
  });

  /** A pinned map with skn_ipcache's type, sizes and flags, `capacity` entries. */
  function pinIpcache(capacity: number): IpcacheMap {
    const raw = RawMap.create(MapType.LPM_TRIE, "skbw_ipcache", 8, 16, capacity, BPF_F_NO_PREALLOC);
    try {
      raw.pin(pinPath(root, IPCACHE_MAP));
    } finally {
      raw.close();
    }
    return IpcacheMap.openPinned(root);
  }

  it("updatePacked stores every entry, then stops at the first that does not fit and names it", function () {
    using raw = RawMap.create(MapType.LPM_TRIE, "skbw_lpm", 8, 4, 100, BPF_F_NO_PREALLOC);
    const n = 150;
    const keys = Buffer.alloc(8 * n);
    const values = Buffer.alloc(4 * n);
    for (let i = 0; i < n; i++) {
      keys.writeUInt32LE(32, i * 8);
      keys.writeUInt32BE(0x0a000000 + i, i * 8 + 4);
      values.writeUInt32LE(i + 1, i * 4);
    }
    assert.deepEqual(raw.updatePacked(keys, values, 60), { written: 60 });
    const r = raw.updatePacked(keys.subarray(60 * 8), values.subarray(60 * 4), n - 60);
    assert.equal(r.written, 40);
    assert.ok(r.error instanceof SysError);
    assert.equal(raw.count(), 100);
    for (const i of [0, 59, 60, 99]) {
      const v = raw.lookup(keys.subarray(i * 8, i * 8 + 8));
      assert.equal(v?.readUInt32LE(0), i + 1, `entry ${i}`);
    }
    assert.equal(raw.lookup(keys.subarray(100 * 8, 101 * 8)), undefined);
    assert.throws(() => raw.updatePacked(keys, values, n + 1), RangeError);
  });

  it("the reconciler's first fill goes through setPacked and leaves exactly the desired entries", function () {
    using map = pinIpcache(30_000);
    const rec = new MapReconciler(map, ipcacheCodec, ipcacheKeyString);
    assert.equal(rec.resync(), 0);
    let batches = 0;
    const setPacked = map.setPacked.bind(map);
    map.setPacked = (keys, values, count) => {
      batches++;
      return setPacked(keys, values, count);
    };
    const want = desired(20_000);
    const r = rec.apply(want);
    assert.equal(batches, 3, "20,000 entries in batches of 8,192");
    assert.deepEqual([r.upserted, r.deleted, r.failed, r.size], [20_000, 0, 0, 20_000]);
    assert.equal(map.count(), 20_000);
    for (const [ks, { key, entry }] of [...want].filter((_e, i) => i % 997 === 0))
      assert.deepEqual(map.get(key), entry, ks);
    // What the kernel holds equals the shadow: a re-read and the same desired state write nothing.
    assert.equal(rec.resync(), 20_000);
    const again = rec.apply(want);
    assert.deepEqual([again.upserted, again.deleted, again.failed], [0, 0, 0]);
    // A changed state after the fill: changes written in a batch, deletes one by one.
    const next = desired(19_000, 400);
    const r2 = rec.apply(next);
    assert.deepEqual([r2.upserted, r2.deleted, r2.failed, r2.size], [19_000, 1_000, 0, 19_000]);
    const first = next.values().next().value;
    assert.ok(first !== undefined);
    assert.deepEqual(map.get(first.key), first.entry);
    assert.equal(map.count(), 19_000);
  });

  it("a fill beyond capacity counts each entry that did not fit, as writing one by one does", function () {
    using map = pinIpcache(10_000);
    const rec = new MapReconciler(map, ipcacheCodec, ipcacheKeyString);
    const r = rec.apply(desired(12_000));
    assert.equal(r.upserted, 10_000);
    assert.equal(r.failed, 2_000);
    assert.equal(r.overflow, 2_000);
    assert.equal(r.size, 10_000);
    assert.ok(r.firstError instanceof SysError);
    assert.equal(map.count(), 10_000);
    // The shadow holds exactly what the kernel holds.
    assert.equal(rec.resync(), 10_000);
  });
});

/** A fake map with a batch write that stops at the entries `refuse` names, as the kernel's does. */
class BatchingPort extends FakeMapPort<Prefix, IpcacheEntry> {
  batches: number[] = [];
  constructor(
    readonly refuse: (k: Prefix) => boolean,
    maxEntries?: number,
  ) {
    super(ipcacheKeyString, maxEntries);
  }
  override set(key: Prefix, value: IpcacheEntry): void {
    if (this.refuse(key)) throw new Error(`refused ${ipcacheKeyString(key)}`);
    super.set(key, value);
  }
  setPacked(keys: Uint8Array, values: Uint8Array, count: number): { written: number; error?: unknown } {
    this.batches.push(count);
    for (let i = 0; i < count; i++) {
      const key = ipcacheCodec.key.decode(keys.subarray(i * 8, i * 8 + 8));
      try {
        this.set(key, ipcacheCodec.value.decode(values.subarray(i * 16, i * 16 + 16)));
      } catch (error) {
        return { written: i, error };
      }
    }
    return { written: count };
  }
}

describe("maps: the reconciler's batch writes (fake port)", function () {
  it("writes upserts in batches of 8,192 with the entries' exact bytes", function () {
    const port = new BatchingPort(() => false);
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    const want = desired(20_000);
    const r = rec.apply(want);
    assert.deepEqual([r.upserted, r.failed, r.size], [20_000, 0, 20_000]);
    assert.deepEqual(port.batches, [8192, 8192, 3616]);
    for (const [ks, { entry }] of want) assert.deepEqual(port.entriesByKey.get(ks)?.[1], entry, ks);
  });

  it("an entry a batch stops at is written alone and counted; the rest of the batch still goes in", function () {
    const bad = new Set(["10.0.0.7/32", "10.0.0.8/32", "10.0.39.15/32"]);
    const port = new BatchingPort((k) => bad.has(ipcacheKeyString(k)));
    const rec = new MapReconciler(port, ipcacheCodec, ipcacheKeyString);
    const want = desired(10_000);
    const r = rec.apply(want);
    assert.equal(r.failed, 3);
    assert.equal(r.upserted, 10_000 - 3);
    assert.ok(r.firstError instanceof Error && r.firstError.message === "refused 10.0.0.7/32");
    assert.equal(port.entriesByKey.size, 10_000 - 3);
    // The shadow is what the map holds: the failed ones are retried by the next apply.
    bad.clear();
    const again = rec.apply(want);
    assert.deepEqual([again.upserted, again.failed, again.size], [3, 0, 10_000]);
  });
});
