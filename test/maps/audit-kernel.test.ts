/**
 * The full resync's audit against real pinned LPM tries (skn_ipcache's and skn_policy's layouts):
 * read in slices by batch lookups, entries changed behind the agent's back with bpftool, events
 * writing and deleting between slices (the slice's resume key among them), and the drift repaired
 * by rewriting only the drifted keys.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { MapType, RawMap } from "../../loader/index.js";
import { IpcacheMap, ipcacheCodec, ipcacheKeyString, type IpcacheEntry } from "../../maps/ipcache.js";
import type { Prefix } from "../../maps/net.js";
import { MapReconciler } from "../../maps/reconciler.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const BPF_F_NO_PREALLOC = 1;

function hexArgs(b: Buffer): string[] {
  return [...b].map((x) => x.toString(16).padStart(2, "0"));
}

describe("maps: audit of a pinned LPM trie in slices, with drift made by bpftool", function () {
  this.timeout(60_000);
  let dir = "";
  let map: IpcacheMap | undefined;

  before(function () {
    requireRoot(this);
    dir = `/sys/fs/bpf/${uniqueName("skaud")}`;
    mkdirSync(dir, { recursive: true });
  });

  afterEach(function () {
    map?.close();
    map = undefined;
  });

  after(function () {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  function open(entries: number): { map: IpcacheMap; path: string } {
    const layout = ipcacheCodec;
    const raw = RawMap.create(
      MapType.LPM_TRIE,
      "skn_aud_test",
      layout.key.layout.size,
      layout.value.layout.size,
      entries,
      BPF_F_NO_PREALLOC,
    );
    const path = `${dir}/ipcache-${entries}`;
    raw.pin(path);
    map = new IpcacheMap(raw, ipcacheCodec);
    return { map, path };
  }

  const slot = (ip: string, identity: number): [string, { key: Prefix; entry: IpcacheEntry }] => {
    const key = { ip, length: 32 };
    return [
      ipcacheKeyString(key),
      { key, entry: { identity, tunnelIp: "198.18.0.2", cidrIdentity: 0, flags: 0 } },
    ];
  };

  it("readChunk walks every entry once, in slices, whatever size they come in", function () {
    const { map: m } = open(4096);
    for (let i = 0; i < 3000; i++) {
      const [, s] = slot(`10.1.${i >> 8}.${i & 255}`, 300 + i);
      m.set(s.key, s.entry);
    }
    const seen = new Set<string>();
    let after: Prefix | undefined;
    let slices = 0;
    for (;;) {
      const c = m.readChunk(after, 256);
      slices++;
      for (const [k, v] of c.entries) {
        const ks = ipcacheKeyString(k);
        assert.ok(!seen.has(ks), `${ks} twice`);
        seen.add(ks);
        assert.equal(
          ipcacheCodec.value.decode(v).identity - 300,
          (Number(k.ip.split(".")[2]) << 8) + Number(k.ip.split(".")[3]),
        );
      }
      if (c.done) break;
      after = c.entries.at(-1)?.[0];
    }
    assert.equal(seen.size, 3000);
    assert.ok(slices >= 12, `${slices} slices`);
  });

  it("finds what bpftool altered, deleted and added while events write between slices, and applyChanged repairs exactly that", async function () {
    const { map: m, path } = open(65536);
    const rec = new MapReconciler(m, ipcacheCodec, ipcacheKeyString);
    const want = new Map<string, { key: Prefix; entry: IpcacheEntry }>();
    for (let i = 0; i < 20_000; i++) want.set(...slot(`10.2.${i >> 8}.${i & 255}`, 1000 + (i % 50)));
    assert.equal(rec.apply(want).upserted, 20_000);

    const encKey = (ip: string) => ipcacheCodec.key.encode({ ip, length: 32 });
    const bpftool = (...args: string[]) => execFileSync("bpftool", ["map", ...args], { stdio: "pipe" });
    // Altered: another identity; deleted; added: an address nobody wrote.
    const altered = ipcacheCodec.value.encode({ identity: 4, tunnelIp: null, cidrIdentity: 0, flags: 0 });
    bpftool(
      "update",
      "pinned",
      path,
      "key",
      "hex",
      ...hexArgs(encKey("10.2.10.10")),
      "value",
      "hex",
      ...hexArgs(altered),
    );
    bpftool("delete", "pinned", path, "key", "hex", ...hexArgs(encKey("10.2.40.40")));
    bpftool(
      "update",
      "pinned",
      path,
      "key",
      "hex",
      ...hexArgs(encKey("10.3.0.1")),
      "value",
      "hex",
      ...hexArgs(altered),
    );

    // Events between slices: pods added and deleted through the reconciler, among them every key
    // of the slice just read (the walk must resume after a key still in the map, not start over).
    let pauses = 0;
    let lastSlice: string[] = [];
    const origReadChunk = m.readChunk.bind(m);
    m.readChunk = (after, max) => {
      const c = origReadChunk(after, max);
      lastSlice = c.entries.map(([k]) => ipcacheKeyString(k));
      return c;
    };
    const r = await rec.audit({
      chunk: 500,
      pause: async () => {
        pauses++;
        await new Promise((res) => setImmediate(res));
        const keys: string[] = [];
        if (pauses % 5 === 0) {
          // The newest keys of the last slice deleted (the resume key among them).
          const drift = new Set(["10.2.10.10/32", "10.2.40.40/32", "10.3.0.1/32"]);
          for (const ks of lastSlice.filter((k) => !drift.has(k)).slice(-3)) {
            want.delete(ks);
            keys.push(ks);
          }
        }
        const [ks, s] = slot(`10.4.${pauses >> 8}.${pauses & 255}`, 77);
        want.set(ks, s);
        keys.push(ks);
        const w = rec.applyChanged(want, keys);
        assert.equal(w.failed, 0);
        return true;
      },
    });
    assert.ok(r.complete, "complete");
    assert.ok(r.slices >= 40, `${r.slices} slices`);
    assert.deepEqual(
      { altered: r.altered, extra: r.extra, missing: r.missing },
      { altered: 1, extra: 1, missing: 1 },
      JSON.stringify(r.keys),
    );
    assert.deepEqual(new Set(r.keys), new Set(["10.2.10.10/32", "10.2.40.40/32", "10.3.0.1/32"]));
    const fix = rec.applyChanged(want, r.keys);
    assert.deepEqual([fix.upserted, fix.deleted, fix.failed], [2, 1, 0]);

    // The kernel now holds exactly the desired entries.
    const got = new Map<string, string>();
    for (const [k, v] of m.entries())
      got.set(ipcacheKeyString(k), ipcacheCodec.value.encode(v).toString("hex"));
    assert.equal(got.size, want.size);
    for (const [ks, { entry }] of want)
      assert.equal(got.get(ks), ipcacheCodec.value.encode(entry).toString("hex"), ks);
  });
});
