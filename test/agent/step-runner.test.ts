/** StepRunner: a step applies when its key changed, stays unapplied when it fails, again after a resync. */
import assert from "node:assert/strict";
import { StepError, StepRunner, type Step } from "../../agent/step-runner.js";

interface Pass {
  a: string;
  b: string;
}

function recorder() {
  const ran: string[] = [];
  const failing = new Set<string>();
  const step = (
    name: string,
    key: ((p: Pass) => string | null) | undefined,
    extra: Partial<Step<Pass>> = {},
  ) => {
    const s: Step<Pass> = {
      name,
      ...(key === undefined ? {} : { key }),
      apply: (p: Pass) => {
        ran.push(name);
        if (failing.has(name)) throw new Error(`${name} broke on ${p.a}`);
        return true;
      },
      ...extra,
    };
    return s;
  };
  return { ran, failing, step };
}

describe("agent: StepRunner", function () {
  it("applies a step when its key changed, skips it while it is the same", async function () {
    const { ran, step } = recorder();
    const runner = new StepRunner([
      step("on-a", (p) => p.a),
      step("on-b", (p) => p.b),
      step("always", undefined),
    ]);
    await runner.run({ a: "1", b: "1" });
    await runner.run({ a: "1", b: "1" });
    await runner.run({ a: "2", b: "1" });
    assert.deepEqual(ran, ["on-a", "on-b", "always", "always", "on-a", "always"]);
    assert.equal(runner.applied("on-a"), "2");
    assert.equal(runner.applied("always"), undefined);
  });

  it("stops at a failing step, keeps it and those after unapplied, and runs them next time", async function () {
    const { ran, failing, step } = recorder();
    const runner = new StepRunner([
      step("first", (p) => p.a),
      step("second", (p) => p.a),
      step("third", (p) => p.a),
    ]);
    failing.add("second");
    await assert.rejects(runner.run({ a: "1", b: "" }), (err: unknown) => {
      assert.ok(err instanceof StepError);
      assert.equal(err.step, "second");
      assert.equal(err.message, "second: second broke on 1");
      assert.ok(err.cause instanceof Error);
      return true;
    });
    assert.deepEqual(ran, ["first", "second"]);
    assert.equal(runner.applied("second"), undefined);
    failing.clear();
    await runner.run({ a: "1", b: "" });
    assert.deepEqual(ran, ["first", "second", "second", "third"]);
  });

  it("keeps a step unapplied that returns false, without failing the pass", async function () {
    let ok = false;
    const ran: string[] = [];
    const runner = new StepRunner<Pass>([
      { name: "partial", key: (p) => p.a, apply: () => (ran.push("partial"), ok) },
      { name: "after", key: (p) => p.a, apply: () => (ran.push("after"), true) },
    ]);
    await runner.run({ a: "1", b: "" });
    ok = true;
    await runner.run({ a: "1", b: "" });
    await runner.run({ a: "1", b: "" });
    assert.deepEqual(ran, ["partial", "after", "partial"]);
  });

  it("holds back an afterAll step while a step before it is unapplied, and says whether all applied", async function () {
    let ok = false;
    const ran: string[] = [];
    const runner = new StepRunner<Pass>([
      { name: "maps", apply: () => (ran.push("maps"), ok) },
      { name: "conflist", key: () => "c", afterAll: true, apply: () => (ran.push("conflist"), true) },
    ]);
    assert.equal(await runner.run({ a: "1", b: "" }), false);
    assert.deepEqual(ran, ["maps"], "the conflist waits for the maps");
    ok = true;
    assert.equal(await runner.run({ a: "1", b: "" }), true);
    assert.deepEqual(ran, ["maps", "maps", "conflist"]);
    assert.equal(await runner.run({ a: "1", b: "" }), true, "an up-to-date step counts as applied");
  });

  it("skips a step whose key is null, keeping what it applied last", async function () {
    const { ran, step } = recorder();
    const runner = new StepRunner([step("maybe", (p) => (p.b === "" ? null : p.a))]);
    await runner.run({ a: "1", b: "x" });
    await runner.run({ a: "2", b: "" });
    assert.equal(runner.applied("maybe"), "1");
    await runner.run({ a: "1", b: "x" });
    assert.deepEqual(ran, ["maybe"]);
  });

  it("forgets every key on resync but those of keepOnResync steps", async function () {
    const { ran, step } = recorder();
    const runner = new StepRunner([
      step("drifts", (p) => p.a),
      step("kept", (p) => p.a, { keepOnResync: true }),
    ]);
    await runner.run({ a: "1", b: "" });
    runner.resync();
    await runner.run({ a: "1", b: "" });
    assert.deepEqual(ran, ["drifts", "kept", "drifts"]);
  });

  it("asks a step's key only after the steps before it applied, and times every apply that returned", async function () {
    const state = { written: 0 };
    const timed: string[] = [];
    const runner = new StepRunner<Pass>(
      [
        { name: "writer", key: (p) => p.a, apply: () => (state.written++, true) },
        { name: "reader", key: () => String(state.written), apply: () => false },
      ],
      (s, ms) => {
        assert.ok(ms >= 0);
        timed.push(s.name);
      },
    );
    await runner.run({ a: "1", b: "" });
    assert.equal(runner.applied("writer"), "1");
    assert.deepEqual(timed, ["writer", "reader"]);
    assert.throws(() => new StepRunner([...runner.steps, ...runner.steps]), /unique/);
  });
});
