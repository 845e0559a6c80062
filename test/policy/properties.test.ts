/**
 * Properties over random clusters: the engine plus the datapath-order evaluator agree with a naive
 * reading of the NetworkPolicy spec; incremental results equal from-scratch ones; unions only add;
 * deleting every policy leaves nothing behind.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { Protocol } from "../../maps/policy.js";
import { PolicyEngine } from "../../policy/engine.js";
import type { IdentityHash } from "../../policy/identity.js";
import { ALL_IPS, EXTERNAL, clusterArb, opArb, policyArb, type Cluster, type Op } from "./arbitraries.js";
import { PolicyTable, evaluate } from "./evaluator.js";
import { observable } from "./fixtures.js";
import { oracleAllows } from "./oracle.js";

function feed(e: PolicyEngine, c: Cluster): void {
  for (const n of c.namespaces) e.upsertNamespace(n);
  for (const p of c.pods) e.upsertPod(p);
  for (const np of c.policies) e.upsertPolicy(np);
}

const FLOW_PORTS = [53, 80, 75, 8080, 9090, 443];
const FLOW_PROTOS = [Protocol.TCP, Protocol.UDP];

function endpoints(c: Cluster): string[] {
  return [...new Set([...c.pods.map((p) => p.status?.podIP as string), ...EXTERNAL])];
}

function describe_(c: Cluster): string {
  return JSON.stringify(c, null, 1);
}

describe("policy engine: properties", function () {
  this.timeout(120_000);

  it("agrees with the NetworkPolicy spec on every flow (all pods local)", function () {
    fc.assert(
      fc.property(clusterArb, (c) => {
        const e = new PolicyEngine();
        feed(e, c);
        assert.deepEqual(e.errors(), []);
        const table = new PolicyTable(e);
        const ips = endpoints(c);
        for (const src of ips)
          for (const dst of ips)
            for (const proto of FLOW_PROTOS)
              for (const port of FLOW_PORTS) {
                const want = oracleAllows(c, src, dst, proto, port);
                const got = evaluate(table, src, dst, proto, port).allowed;
                if (got !== want)
                  assert.fail(
                    `${src} → ${dst} ${proto}/${port}: engine ${got}, spec ${want}\n${describe_(c)}`,
                  );
              }
      }),
      { numRuns: 250 },
    );
  });

  it("agrees with the spec across two nodes, each engine enforcing its own pods", function () {
    fc.assert(
      fc.property(clusterArb, (c) => {
        const engines = {
          n1: new PolicyEngine({ nodeName: "n1" }),
          n2: new PolicyEngine({ nodeName: "n2" }),
        };
        feed(engines.n1, c);
        feed(engines.n2, c);
        const tables = { n1: new PolicyTable(engines.n1), n2: new PolicyTable(engines.n2) };
        const nodeOf = new Map(
          c.pods.map((p) => [p.status?.podIP as string, p.spec?.nodeName as "n1" | "n2"]),
        );
        const ips = endpoints(c);
        // Identities are computed independently on both nodes and must agree.
        for (const ip of ips) assert.equal(engines.n1.identityOfIp(ip), engines.n2.identityOfIp(ip));
        for (const src of ips)
          for (const dst of ips)
            for (const proto of FLOW_PROTOS)
              for (const port of FLOW_PORTS) {
                const sides = { src: tables[nodeOf.get(src) ?? "n1"], dst: tables[nodeOf.get(dst) ?? "n2"] };
                const want = oracleAllows(c, src, dst, proto, port);
                const got = evaluate(sides, src, dst, proto, port).allowed;
                if (got !== want)
                  assert.fail(
                    `${src} → ${dst} ${proto}/${port}: engine ${got}, spec ${want}\n${describe_(c)}`,
                  );
              }
      }),
      { numRuns: 120 },
    );
  });

  for (const [label, hash] of [
    ["default hash", undefined],
    ["every identity colliding", (() => 3) as IdentityHash],
  ] as const)
    it(`after any history, equals an engine built from scratch from the final state (${label})`, function () {
      fc.assert(
        fc.property(clusterArb, fc.array(opArb, { maxLength: 25 }), (start, ops) => {
          const opts = hash === undefined ? {} : { hash };
          const e = new PolicyEngine({ nodeName: "n1", ...opts });
          const nss = new Map<string, V1Namespace>();
          const pods = new Map<string, V1Pod>();
          const pols = new Map<string, V1NetworkPolicy>();
          const apply = (op: Op): void => {
            switch (op.kind) {
              case "ns":
                if (op.obj === undefined) {
                  e.deleteNamespace(op.name);
                  nss.delete(op.name);
                } else {
                  e.upsertNamespace(op.obj);
                  nss.set(op.name, op.obj);
                }
                break;
              case "pod": {
                const old = pods.get(`p${op.slot}`);
                if (op.obj === undefined) {
                  if (old !== undefined) e.deletePod(old.metadata?.namespace as string, `p${op.slot}`);
                  pods.delete(`p${op.slot}`);
                } else {
                  // A pod never changes namespace under the same name; model a move as delete + add.
                  if (old !== undefined && old.metadata?.namespace !== op.obj.metadata?.namespace)
                    e.deletePod(old.metadata?.namespace as string, `p${op.slot}`);
                  e.upsertPod(op.obj);
                  pods.set(`p${op.slot}`, op.obj);
                }
                break;
              }
              case "policy": {
                const name = `np${op.slot}`;
                const old = pols.get(name);
                if (op.obj === undefined) {
                  if (old !== undefined) e.deletePolicy(old.metadata?.namespace as string, name);
                  pols.delete(name);
                } else {
                  if (old !== undefined && old.metadata?.namespace !== op.obj.metadata?.namespace)
                    e.deletePolicy(old.metadata?.namespace as string, name);
                  e.upsertPolicy(op.obj);
                  pols.set(name, op.obj);
                }
                break;
              }
            }
          };
          for (const n of start.namespaces) apply({ kind: "ns", name: n.metadata?.name as string, obj: n });
          start.pods.forEach((p, i) => {
            apply({ kind: "pod", slot: i, obj: p });
          });
          start.policies.forEach((np, j) => {
            apply({ kind: "policy", slot: j, obj: np });
          });
          for (const op of ops) apply(op);

          const fresh = new PolicyEngine({ nodeName: "n1", ...opts });
          feed(fresh, {
            namespaces: [...nss.values()],
            pods: [...pods.values()],
            policies: [...pols.values()],
          });
          assert.deepEqual(observable(e, ALL_IPS), observable(fresh, ALL_IPS));
        }),
        { numRuns: hash === undefined ? 200 : 120 },
      );
    });

  it("adding a policy never removes an allow entry (union)", function () {
    fc.assert(
      fc.property(clusterArb, policyArb("extra"), (c, extra) => {
        const e = new PolicyEngine();
        feed(e, c);
        const before = new Set(e.desiredPolicy().keys());
        e.upsertPolicy(extra);
        for (const k of before) assert.ok(e.desiredPolicy().has(k), `lost ${k}`);
      }),
      { numRuns: 200 },
    );
  });

  it("a flow allowed stays allowed when a policy that does not select its ends is added", function () {
    fc.assert(
      fc.property(clusterArb, policyArb("extra"), (c, extra) => {
        const e = new PolicyEngine();
        feed(e, c);
        const before = new PolicyTable(e);
        const allowed: [string, string][] = [];
        const ips = endpoints(c);
        for (const s of ips)
          for (const d of ips) if (evaluate(before, s, d, Protocol.TCP, 80).allowed) allowed.push([s, d]);
        const flagsBefore = new Map(ips.map((ip) => [ip, e.localFlags(ip)]));
        e.upsertPolicy(extra);
        const after = new PolicyTable(e);
        for (const [s, d] of allowed)
          if (e.localFlags(s) === flagsBefore.get(s) && e.localFlags(d) === flagsBefore.get(d))
            assert.ok(evaluate(after, s, d, Protocol.TCP, 80).allowed, `${s} → ${d} lost`);
      }),
      { numRuns: 200 },
    );
  });

  it("deleting every policy leaves no entries and no enforcement flags", function () {
    fc.assert(
      fc.property(clusterArb, (c) => {
        const e = new PolicyEngine();
        feed(e, c);
        for (const np of c.policies)
          e.deletePolicy(np.metadata?.namespace as string, np.metadata?.name as string);
        assert.equal(e.desiredPolicy().size, 0);
        assert.equal(e.cidrPrefixes().size, 0);
        for (const ip of ALL_IPS) assert.equal(e.localFlags(ip), 0);
      }),
      { numRuns: 200 },
    );
  });
});
