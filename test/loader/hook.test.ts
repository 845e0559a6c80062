/**
 * loader/hook.ts against the real kernel: a cls_bpf filter moved to tcx by the next attach, tcx
 * replace in place, detach of both kinds; traffic through the hook at every step (skn_from_pod of a
 * private datapath knows no endpoint and drops every packet as spoofed).
 */
import assert from "node:assert/strict";
import { runInPeer, useVethPair } from "./hook-fixture.js";

interface Step {
  hooked?: { kind: string; progId: number };
  removed?: boolean;
  query: { kind: string; progId: number } | null;
  tcx: number[];
  tc: number | null;
  ping: boolean;
  droppedA?: number;
  droppedB?: number;
}

describe("loader: hooks prefer tcx, move cls_bpf filters over, replace and detach (real kernel)", function () {
  this.timeout(30000);
  const pair = useVethPair("sknhk", "hka", "hkb", "198.51.100");

  it("cls_bpf → tcx on the next attach, replace in place, detach; the program runs at every step", function () {
    const { ids, steps } = runInPeer("hook-child.js", pair, "hkb", "198.51.100") as {
      ids: { a: number; b: number };
      steps: Record<string, Step>;
    };
    const s = (k: string): Step => {
      const v = steps[k];
      assert.ok(v !== undefined, k);
      return v;
    };
    assert.deepEqual([s("before").query, s("before").tcx, s("before").ping], [null, [], true]);
    assert.deepEqual(s("asTc").hooked, { kind: "tc", progId: ids.a });
    assert.deepEqual(
      [s("asTc").query, s("asTc").tcx, s("asTc").tc],
      [{ kind: "tc", progId: ids.a }, [], ids.a],
    );
    assert.equal(s("asTc").ping, false, "the filter drops");
    assert.ok((s("asTc").droppedA ?? 0) >= 1);

    assert.deepEqual(s("moved").hooked, { kind: "tcx", progId: ids.b });
    assert.deepEqual(
      [s("moved").query, s("moved").tcx, s("moved").tc],
      [{ kind: "tcx", progId: ids.b }, [ids.b], null],
    );
    assert.equal(s("moved").ping, false);
    assert.ok((s("moved").droppedB ?? 0) >= 1, "the tcx program counts the drop");

    assert.deepEqual([s("replaced").query, s("replaced").tcx], [{ kind: "tcx", progId: ids.a }, [ids.a]]);
    assert.equal(s("replaced").ping, false);

    assert.equal(s("detached").removed, true);
    assert.deepEqual([s("detached").query, s("detached").tcx, s("detached").tc], [null, [], null]);
    assert.equal(s("detached").ping, true, "nothing on the hook: traffic flows");
    assert.equal(s("again").removed, false);
  });
});
