/**
 * The pinned datapath across builds, on the real kernel: a pin an earlier build left under a name
 * this build retired (its layout changed, so this build uses a new name) is removed by the load,
 * and an unload removes it too; a pinned map whose definition differs from this build's (a changed
 * setting) is refused before anything loads.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PinnedMapMismatchError, Program, RawMap } from "../../../loader/index.js";
import { CONNTRACK_MAP } from "../../../maps/conntrack.js";
import { PROGRAM_NAMES, RETIRED_PINS, pinPath } from "../../../maps/pins.js";
import { POLICY_MAP } from "../../../maps/policy.js";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../../maps/datapath/pinned.js";
import { uniqueName } from "../../helpers/names.js";
import { requireRoot } from "../../helpers/privileged.js";

const BPF_MAP_TYPE_LRU_HASH = 9;

/** Pins a map shaped like the retired 32-byte conntrack under `root`. */
function pinRetired(root: string, name: string): void {
  using map = RawMap.create(BPF_MAP_TYPE_LRU_HASH, name, 16, 32, 1024);
  map.pin(join(root, name));
}

describe("agent: pinned datapath, retired pins of earlier builds", function () {
  let root = "";

  before(function () {
    requireRoot(this);
    root = `/sys/fs/bpf/${uniqueName("skn-retire-")}`;
  });

  after(function () {
    if (root !== "" && existsSync(root)) unloadPinnedDatapath(root);
  });

  it("a load beside an earlier build's skn_conntrack pins skn_conntrack2 and removes the old pin", function () {
    assert.ok(RETIRED_PINS.includes("skn_conntrack"));
    loadPinnedDatapath(root);
    unloadPinnedDatapath(root);
    // An earlier build's pins: the retired map, alone (its programs were the earlier build's).
    loadPinnedDatapath(root);
    pinRetired(root, "skn_conntrack");
    assert.ok(existsSync(join(root, "skn_conntrack")));
    const report = loadPinnedDatapath(root);
    assert.equal(existsSync(join(root, "skn_conntrack")), false, "retired pin removed");
    assert.ok(existsSync(pinPath(root, CONNTRACK_MAP)));
    assert.equal(report.maps.find((m) => m.name === CONNTRACK_MAP)?.action, "reused");
  });

  it("an unload removes a retired pin too, and the root with it", function () {
    pinRetired(root, "skn_conntrack");
    const removed = unloadPinnedDatapath(root);
    assert.ok(removed.includes("skn_conntrack"), removed.join(", "));
    assert.equal(existsSync(root), false);
  });
});

describe("agent: pinned datapath, a pinned map that does not match this build", function () {
  let root = "";

  before(function () {
    requireRoot(this);
    root = `/sys/fs/bpf/${uniqueName("skn-mismatch-")}`;
  });

  after(function () {
    if (root !== "" && existsSync(root)) unloadPinnedDatapath(root);
  });

  it("a changed policy map capacity is refused before load, naming skn_policy and the remedy; the pins stay as they were", function () {
    loadPinnedDatapath(root);
    const programIds = () =>
      PROGRAM_NAMES.map((p) => {
        using prog = Program.openPinned(pinPath(root, p));
        return prog.info().id;
      });
    const mapId = () => {
      using map = RawMap.openPinned(pinPath(root, POLICY_MAP));
      return map.info.id;
    };
    const before = { programs: programIds(), policy: mapId() };
    assert.throws(
      () => loadPinnedDatapath(root, { policyMapEntries: 1024 }),
      (err: unknown) => {
        assert.ok(err instanceof PinnedMapMismatchError, String(err));
        assert.equal(err.mapName, POLICY_MAP);
        assert.equal(err.pinPath, pinPath(root, POLICY_MAP));
        assert.deepEqual(err.differences, [{ property: "maxEntries", expected: 1024, found: 262144 }]);
        assert.match(err.message, /max entries 1024 expected, 262144 pinned/);
        assert.match(err.message, new RegExp(`skeinctl datapath unload --bpffs-root ${root}`));
        return true;
      },
    );
    assert.deepEqual({ programs: programIds(), policy: mapId() }, before);
    // The old settings load again, adopting everything.
    const report = loadPinnedDatapath(root);
    assert.ok(report.programs.every((p) => p.action === "adopted"));
    assert.ok(report.maps.every((m) => m.action === "reused"));
  });
});
