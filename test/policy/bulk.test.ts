/**
 * The engine's bulk path (upsertPods, the agent's first lists): a batch of pods leaves exactly
 * the state that upserting them one at a time leaves, whatever came before and after it, and
 * lastChange() names what the batch changed.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { V1Pod } from "@kubernetes/client-node";
import { PolicyEngine } from "../../policy/engine.js";
import type { IdentityHash } from "../../policy/identity.js";
import { ALL_IPS, clusterArb, opArb, podArb, POD_SLOTS, type Op } from "./arbitraries.js";
import { namespace, observable, pod, policy } from "./fixtures.js";

/** Applies one op to an engine (pod deletes by the name the op's slot uses). */
function apply(e: PolicyEngine, op: Op, pods: Map<number, V1Pod>): void {
  switch (op.kind) {
    case "ns":
      if (op.obj === undefined) e.deleteNamespace(op.name);
      else e.upsertNamespace(op.obj);
      break;
    case "pod": {
      const old = pods.get(op.slot);
      if (op.obj === undefined) {
        if (old !== undefined) e.deletePod(old.metadata?.namespace ?? "", `p${op.slot}`);
        pods.delete(op.slot);
      } else {
        if (old !== undefined && old.metadata?.namespace !== op.obj.metadata?.namespace)
          e.deletePod(old.metadata?.namespace ?? "", `p${op.slot}`);
        e.upsertPod(op.obj);
        pods.set(op.slot, op.obj);
      }
      break;
    }
    case "policy":
      if (op.obj === undefined) for (const ns of ["a", "b"]) e.deletePolicy(ns, `np${op.slot}`);
      else e.upsertPolicy(op.obj);
      break;
  }
}

function snapshot(e: PolicyEngine): { entries: Map<string, number>; addresses: Map<string, string> } {
  const entries = new Map<string, number>();
  for (const [k, v] of e.desiredPolicy()) entries.set(k, v.entry.ruleId);
  const addresses = new Map<string, string>();
  for (const ip of ALL_IPS) addresses.set(ip, `${e.identityOfIp(ip)}|${e.localFlags(ip)}`);
  return { entries, addresses };
}

/** A batch: pods of distinct slots (a list never holds one name twice). */
const batchArb = fc
  .uniqueArray(fc.integer({ min: 0, max: POD_SLOTS - 1 }), { minLength: 1, maxLength: POD_SLOTS })
  .chain((slots) => fc.tuple(...slots.map((i) => podArb(i).map((p): [number, V1Pod] => [i, p]))));

describe("policy engine: the bulk path (upsertPods)", function () {
  for (const [label, hash] of [
    ["default hash", undefined],
    ["every identity colliding", (() => 3) as IdentityHash],
  ] as const)
    it(`a batch leaves the state one upsert per pod leaves, before and after any history (${label})`, function () {
      fc.assert(
        fc.property(
          clusterArb,
          fc.array(opArb, { maxLength: 10 }),
          batchArb,
          fc.array(opArb, { maxLength: 10 }),
          (start, before, batch, after) => {
            const opts = { nodeName: "n1", ...(hash === undefined ? {} : { hash }) };
            const one = new PolicyEngine(opts);
            const bulk = new PolicyEngine(opts);
            const podsOne = new Map<number, V1Pod>();
            const podsBulk = new Map<number, V1Pod>();
            const both = (op: Op) => {
              apply(one, op, podsOne);
              apply(bulk, op, podsBulk);
            };
            for (const n of start.namespaces) both({ kind: "ns", name: n.metadata?.name ?? "", obj: n });
            start.policies.forEach((np, j) => {
              both({ kind: "policy", slot: j, obj: np });
            });
            // The first list: one engine pod by pod, the other in one batch.
            start.pods.forEach((p, i) => {
              apply(one, { kind: "pod", slot: i, obj: p }, podsOne);
            });
            bulk.upsertPods(start.pods);
            start.pods.forEach((p, i) => podsBulk.set(i, p));
            assert.deepEqual(observable(bulk, ALL_IPS), observable(one, ALL_IPS));
            for (const op of before) both(op);

            // A batch in the middle of a history (a relist): same state, and lastChange names
            // every entry and address whose output differs before and after it.
            // A pod moving namespace is a delete and an add, as the informer sees it: deletes first.
            for (const [i, p] of batch) {
              const old = podsOne.get(i);
              if (old !== undefined && old.metadata?.namespace !== p.metadata?.namespace) {
                one.deletePod(old.metadata?.namespace ?? "", `p${i}`);
                bulk.deletePod(old.metadata?.namespace ?? "", `p${i}`);
              }
            }
            const was = snapshot(bulk);
            const unionKeys = new Set<string>();
            const unionAddresses = new Set<string>();
            for (const [i, p] of batch) {
              one.upsertPod(p);
              for (const k of one.lastChange().policyKeys) unionKeys.add(k);
              for (const a of one.lastChange().addresses) unionAddresses.add(a);
              podsOne.set(i, p);
              podsBulk.set(i, p);
            }
            const versionBefore = bulk.version;
            bulk.upsertPods(batch.map(([, p]) => p));
            assert.deepEqual(observable(bulk, ALL_IPS), observable(one, ALL_IPS));
            assert.deepEqual(bulk.errors(), one.errors());
            const now = snapshot(bulk);
            const change = bulk.lastChange();
            for (const [k, id] of now.entries)
              if (was.entries.get(k) !== id)
                assert.ok(change.policyKeys.has(k), `key ${k} changed, not named`);
            for (const k of was.entries.keys())
              if (!now.entries.has(k)) assert.ok(change.policyKeys.has(k), `key ${k} removed, not named`);
            for (const [ip, v] of now.addresses)
              if (was.addresses.get(ip) !== v) assert.ok(change.addresses.has(ip), `address ${ip} not named`);
            for (const k of change.policyKeys)
              assert.ok(unionKeys.has(k) || was.entries.has(k) || now.entries.has(k));
            for (const a of change.addresses)
              assert.ok(unionAddresses.has(a), `address ${a} named needlessly`);
            if (change.policyKeys.size > 0 || change.addresses.size > 0)
              assert.ok(bulk.version > versionBefore);

            for (const op of after) both(op);
            assert.deepEqual(observable(bulk, ALL_IPS), observable(one, ALL_IPS));
          },
        ),
        { numRuns: hash === undefined ? 200 : 100 },
      );
    });

  it("pods with the same labels in another order share an identity; labels that only concatenate alike do not", function () {
    const e = new PolicyEngine({ nodeName: "n1" });
    e.upsertNamespace(namespace("a"));
    e.upsertPods([
      pod("a", "p1", "10.1.0.1", { labels: { app: "web", tier: "fe" } }),
      pod("a", "p2", "10.1.0.2", { labels: { tier: "fe", app: "web" } }),
      pod("a", "p3", "10.1.0.3", { labels: { "x1:y": "z" } }),
      pod("a", "p4", "10.1.0.4", { labels: { x: "1:yz" } }),
      pod("a", "p5", "10.1.0.5", { labels: { "x1:y": "z" } }),
    ]);
    const id = (n: string) => e.podIdentity("a", n);
    assert.equal(id("p1"), id("p2"));
    assert.notEqual(id("p3"), id("p4"));
    assert.equal(id("p3"), id("p5"));
    assert.equal(e.identities().size, 3);
  });

  it("a pod the engine cannot take is reported and the rest of the batch goes in", function () {
    const e = new PolicyEngine({ nodeName: "n1" });
    e.upsertPolicy(
      policy("a", "np", {
        podSelector: {},
        ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }],
      }),
    );
    const bad = pod("a", "v6", "fd00::1", { labels: { app: "web" } });
    e.upsertPods([pod("a", "p1", "10.1.0.1", { labels: { app: "web" } }), bad, pod("a", "p2", "10.1.0.2")]);
    assert.deepEqual(
      e.errors().map((x) => x.object),
      ["Pod a/v6"],
    );
    assert.equal(e.stats().pods, 2);
    assert.ok(e.lastChange().addresses.has("10.1.0.2"));
    assert.ok(e.desiredPolicy().size > 0);
  });
});
