/**
 * tcx attachment (loader/tcx.ts) against the real kernel (skipped, saying why, on one without tcx): a veth pair between two namespaces of the
 * test's own, skn_from_pod (of a private datapath, which knows no endpoint and so drops every
 * packet as spoofed) attached to one end's ingress, traffic through it, replace, detach.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../helpers/privileged.js";
import { noTcxReason, requireTcx, type SkipContext } from "../helpers/tcx.js";
import { runInPeer, useVethPair } from "./hook-fixture.js";

describe("loader: tcx attach, query, replace, detach (real kernel)", function () {
  this.timeout(30000);
  // Ahead of the veth pair's setup, which it skips too.
  before(function () {
    requireRoot(this);
    requireTcx(this, `"loader: hooks …: a cls_bpf filter in Skein's slot" (test/loader/hook.test.ts)`);
  });
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

describe("loader: tcx tests on a kernel without tcx skip, saying why (fake mocha context)", function () {
  class Skipped extends Error {}
  const fake = (test: SkipContext["test"]): SkipContext => ({
    test,
    skip: () => {
      throw new Skipped();
    },
  });

  it("in a suite's before hook: every test of the suite, nested ones too, carries the reason", function () {
    const inner = { tests: [{ title: "c" }], suites: [] };
    const suite = { tests: [{ title: "a" }, { title: "b" }], suites: [inner] };
    const ctx = fake({ type: "hook", title: '"before all" hook', parent: suite });
    assert.throws(() => {
      requireTcx(ctx, "test X", false);
    }, Skipped);
    const note = `(${noTcxReason("test X")})`;
    assert.deepEqual(
      [...suite.tests, ...inner.tests].map((t) => t.title),
      [`a ${note}`, `b ${note}`, `c ${note}`],
    );
    assert.match(note, /kernel without tcx \(Linux < 6\.6\); cls_bpf path covered by test X/);
  });

  it("in a test: that test alone; with tcx, nothing happens", function () {
    const other = { title: "other" };
    const test = { type: "test", title: "t", parent: { tests: [other], suites: [] } };
    test.parent.tests.push(test);
    assert.throws(() => {
      requireTcx(fake(test), "test X", false);
    }, Skipped);
    assert.equal(test.title, `t (${noTcxReason("test X")})`);
    assert.equal(other.title, "other");
    requireTcx(fake({ type: "test", title: "u" }), "test X", true);
  });
});
