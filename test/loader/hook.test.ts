/**
 * loader/hook.ts against the real kernel: a cls_bpf filter in Skein's slot, replaced in place and
 * detached (every kernel); a cls_bpf filter moved to tcx by the next attach, tcx replace in place,
 * detach of both kinds (kernels with tcx). Traffic through the hook at every step (skn_from_pod of a
 * private datapath knows no endpoint and drops every packet as spoofed).
 */
import assert from "node:assert/strict";
import { requireTcx } from "../helpers/tcx.js";
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

const COVERS_CLS_BPF =
  "a cls_bpf filter in Skein's slot (forced, every kernel): attach, replace in place, detach; the program runs at every step";

describe("loader: hooks prefer tcx, move cls_bpf filters over, replace and detach (real kernel)", function () {
  this.timeout(30000);
  const pair = useVethPair("sknhk", "hka", "hkb", "198.51.100");

  function stepsOf(child: string): { ids: { a: number; b: number }; s: (k: string) => Step } {
    const { ids, steps } = runInPeer(child, pair, "hkb", "198.51.100") as {
      ids: { a: number; b: number };
      steps: Record<string, Step>;
    };
    return {
      ids,
      s: (k) => {
        const v = steps[k];
        assert.ok(v !== undefined, k);
        return v;
      },
    };
  }

  it(COVERS_CLS_BPF, function () {
    const { ids, s } = stepsOf("hook-tc-child.js");
    assert.deepEqual([s("before").query, s("before").tc, s("before").ping], [null, null, true]);

    assert.deepEqual(s("attached").hooked, { kind: "tc", progId: ids.a });
    assert.deepEqual(
      [s("attached").query, s("attached").tcx, s("attached").tc],
      [{ kind: "tc", progId: ids.a }, [], ids.a],
    );
    assert.equal(s("attached").ping, false, "the filter drops");
    assert.ok((s("attached").droppedA ?? 0) >= 1);

    assert.deepEqual(s("replaced").hooked, { kind: "tc", progId: ids.b });
    assert.deepEqual(
      [s("replaced").query, s("replaced").tcx, s("replaced").tc],
      [{ kind: "tc", progId: ids.b }, [], ids.b],
    );
    assert.equal(s("replaced").ping, false);
    assert.ok((s("replaced").droppedB ?? 0) >= 1, "the replacement filter counts the drop");

    assert.equal(s("detached").removed, true);
    assert.deepEqual([s("detached").query, s("detached").tc], [null, null]);
    assert.equal(s("detached").ping, true, "nothing on the hook: traffic flows");
    assert.equal(s("again").removed, false);
  });

  it("cls_bpf → tcx on the next attach, replace in place, detach; the program runs at every step", function () {
    requireTcx(this, "the cls_bpf test above");
    const { ids, s } = stepsOf("hook-child.js");
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
