/**
 * Reusing pinned maps: before a load, each map the object pins is compared with what is pinned at
 * its path (type, key size, value size, max entries, flags). A mismatch is a PinnedMapMismatchError
 * naming the map, the pin and every difference, and nothing is loaded; a match is reused.
 */
import assert from "node:assert/strict";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  MapType,
  ObjectSpec,
  PinnedMapMismatchError,
  RawMap,
  ensurePinRoot,
  mapDifferences,
  type MapDefinition,
} from "../../loader/index.js";
import { defaultObjectPath } from "../../maps/pins.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const BPF_F_NO_PREALLOC = 1;

describe("loader: pinned map compatibility, the comparison", function () {
  const array: MapDefinition = { type: MapType.ARRAY, keySize: 4, valueSize: 24, maxEntries: 1, flags: 0 };

  it("lists every differing property, expected (the object) against found (the pin), in a fixed order", function () {
    assert.deepEqual(mapDifferences(array, { ...array }), []);
    assert.deepEqual(
      mapDifferences(array, { ...array, flags: BPF_F_NO_PREALLOC, maxEntries: 2, type: MapType.HASH }),
      [
        { property: "type", expected: MapType.ARRAY, found: MapType.HASH },
        { property: "maxEntries", expected: 1, found: 2 },
        { property: "flags", expected: 0, found: BPF_F_NO_PREALLOC },
      ],
    );
  });

  it("the error names the map, the pin and each difference; a caller's hint ends the message", function () {
    const differences = [
      { property: "type" as const, expected: MapType.LPM_TRIE, found: MapType.HASH },
      { property: "valueSize" as const, expected: 8, found: 16 },
      { property: "flags" as const, expected: 1, found: 0 },
    ];
    const err = new PinnedMapMismatchError("skn_policy", "/sys/fs/bpf/x/skn_policy", differences);
    assert.equal(err.name, "PinnedMapMismatchError");
    assert.equal(err.mapName, "skn_policy");
    assert.equal(err.pinPath, "/sys/fs/bpf/x/skn_policy");
    assert.deepEqual(err.differences, differences);
    assert.equal(
      err.message,
      "pinned map skn_policy at /sys/fs/bpf/x/skn_policy does not match the object " +
        "(type lpm_trie (11) expected, hash (1) pinned; value size 8 expected, 16 pinned; flags 0x1 expected, 0x0 pinned)",
    );
    const hinted = new PinnedMapMismatchError(err.mapName, err.pinPath, err.differences, {
      hint: "unload it first",
      cause: err,
    });
    assert.match(hinted.message, /pinned\): unload it first$/);
    assert.equal(hinted.cause, err);
  });
});

describe("loader: pinned map compatibility, checked before load (real kernel)", function () {
  this.timeout(30000);
  let base = "";

  before(function () {
    requireRoot(this);
    base = `/sys/fs/bpf/${uniqueName("skn-pinchk-")}`;
    ensurePinRoot(base);
  });

  after(function () {
    if (base !== "") rmSync(base, { recursive: true, force: true });
  });

  /** A fresh pin root holding one map pinned under `name`, as an earlier build might have left it. */
  function rootWith(name: string, def: MapDefinition): { root: string; id: number } {
    const root = join(base, uniqueName("r"));
    ensurePinRoot(root);
    using map = RawMap.create(def.type, name, def.keySize, def.valueSize, def.maxEntries, def.flags);
    map.pin(join(root, name));
    return { root, id: map.info.id };
  }

  function loadRefused(root: string): PinnedMapMismatchError {
    using spec = ObjectSpec.open(defaultObjectPath(), { pinRoot: root });
    let caught: unknown;
    try {
      spec.load().close();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof PinnedMapMismatchError, `a PinnedMapMismatchError, not ${String(caught)}`);
    return caught;
  }

  const config: MapDefinition = { type: MapType.ARRAY, keySize: 4, valueSize: 24, maxEntries: 1, flags: 0 };
  const cases: { title: string; name: string; pinned: MapDefinition; expected: MapDefinition }[] = [
    {
      title: "a different value size",
      name: "skn_config",
      pinned: { ...config, valueSize: 32 },
      expected: config,
    },
    {
      title: "different max entries",
      name: "skn_config",
      pinned: { ...config, maxEntries: 4 },
      expected: config,
    },
    {
      title: "a different type",
      name: "skn_config",
      pinned: { ...config, type: MapType.HASH },
      expected: config,
    },
    {
      title: "different flags (a preallocated hash where the object wants BPF_F_NO_PREALLOC)",
      name: "skn_endpoints",
      pinned: { type: MapType.HASH, keySize: 4, valueSize: 20, maxEntries: 65536, flags: 0 },
      expected: {
        type: MapType.HASH,
        keySize: 4,
        valueSize: 20,
        maxEntries: 65536,
        flags: BPF_F_NO_PREALLOC,
      },
    },
  ];

  for (const c of cases)
    it(`${c.title}: refused before load with the map, the pin and the difference; nothing loaded or pinned`, function () {
      const { root } = rootWith(c.name, c.pinned);
      const err = loadRefused(root);
      assert.equal(err.mapName, c.name);
      assert.equal(err.pinPath, join(root, c.name));
      assert.deepEqual(err.differences, mapDifferences(c.expected, c.pinned));
      assert.equal(err.differences.length, 1);
      assert.match(err.message, new RegExp(`^pinned map ${c.name} at ${join(root, c.name)} does not match`));
      assert.deepEqual(readdirSync(root), [c.name], "no other map was created or pinned");
    });

  it("several differences at once are all named", function () {
    const { root } = rootWith("skn_config", {
      type: MapType.HASH,
      keySize: 8,
      valueSize: 16,
      maxEntries: 2,
      flags: 0,
    });
    const err = loadRefused(root);
    assert.deepEqual(
      err.differences.map((d) => d.property),
      ["type", "keySize", "valueSize", "maxEntries"],
    );
  });

  it("a matching pin is reused by the load, the others are created and pinned", function () {
    const { root, id } = rootWith("skn_config", config);
    using spec = ObjectSpec.open(defaultObjectPath(), { pinRoot: root });
    const checked = spec.checkPinnedMaps();
    assert.deepEqual(
      checked.filter((m) => m.pinned).map((m) => [m.name, m.pinPath]),
      [["skn_config", join(root, "skn_config")]],
    );
    assert.ok(checked.length > 1, "the object pins more maps than skn_config");
    using loaded = spec.load();
    using map = loaded.map("skn_config");
    assert.equal(map.info.id, id, "the pinned map itself, not a new one");
    assert.deepEqual(readdirSync(root).sort(), checked.map((m) => m.name).sort());
    // A second load reuses all of them.
    using again = ObjectSpec.open(defaultObjectPath(), { pinRoot: root });
    assert.ok(again.checkPinnedMaps().every((m) => m.pinned));
  });

  it("a capacity set before load is what the pin is compared with", function () {
    const { root } = rootWith("skn_config", config);
    using spec = ObjectSpec.open(defaultObjectPath(), { pinRoot: root });
    spec.setMaxEntries("skn_config", 3);
    assert.throws(
      () => spec.checkPinnedMaps(),
      (err: unknown) =>
        err instanceof PinnedMapMismatchError &&
        err.differences.length === 1 &&
        err.differences[0]?.property === "maxEntries" &&
        err.differences[0].expected === 3 &&
        err.differences[0].found === 1,
    );
  });
});
