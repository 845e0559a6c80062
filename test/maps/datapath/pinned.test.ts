/**
 * The pinned datapath across builds, on the real kernel: a pin an earlier build left under a name
 * this build retired (its layout changed, so this build uses a new name) is removed by the load,
 * and an unload removes it too.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { RawMap } from "../../../loader/index.js";
import { CONNTRACK_MAP } from "../../../maps/conntrack.js";
import { RETIRED_PINS, pinPath } from "../../../maps/pins.js";
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
