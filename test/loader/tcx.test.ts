/**
 * tcx attachment (loader/tcx.ts) against the real kernel: a veth pair between two namespaces of the
 * test's own, skn_from_pod (of a private datapath, which knows no endpoint and so drops every
 * packet as spoofed) attached to one end's ingress, traffic through it, replace, detach.
 */
import assert from "node:assert/strict";
import { runInPeer, useVethPair } from "./hook-fixture.js";

describe("loader: tcx attach, query, replace, detach (real kernel)", function () {
  this.timeout(30000);
  const pair = useVethPair("skntx", "txa", "txb", "192.0.2");

  it("runs the program on the hook, lists it, refuses it twice, replaces it in place and detaches it", function () {
    const r = runInPeer("tcx-child.js", pair, "txb", "192.0.2") as {
      ids: { a: number; b: number };
      before: number[];
      attached: number[];
      replaced: number[];
      after: number[];
      again: string;
      detachedOld: boolean;
      detached: boolean;
      ping: Record<"before" | "attached" | "replaced" | "after", boolean>;
      dropped: { a: number; b: number };
    };
    assert.deepEqual(r.before, [], "nothing on the hook at first");
    assert.deepEqual(r.attached, [r.ids.a]);
    assert.deepEqual(r.replaced, [r.ids.b], "replaced in place, not added");
    assert.deepEqual(r.after, []);
    assert.match(r.again, /EEXIST/, "the same program twice on one hook is refused");
    assert.equal(r.detachedOld, false, "the replaced program is no longer attached");
    assert.equal(r.detached, true);
    assert.deepEqual(r.ping, { before: true, attached: false, replaced: false, after: true });
    assert.ok(r.dropped.a >= 1, "the first program counted the ping it dropped");
    assert.ok(r.dropped.b >= 1, "and so did its replacement");
  });
});
