/**
 * The NetworkPolicy conformance catalogue (test/netpol: upstream's e2e suite plus Skein's cases)
 * played through the engine and the datapath-order evaluator, without kernel or cluster: pods spread
 * over three nodes, each node's engine enforcing its own pods, identities computed independently.
 */
import assert from "node:assert/strict";
import type { V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { Protocol } from "../../maps/policy.js";
import { PolicyEngine } from "../../policy/engine.js";
import {
  ALL_PODS,
  formatMatrix,
  modelObjects,
  scenarios,
  type Matrix,
  type Scenario,
} from "../netpol/scenarios.js";
import { PolicyTable, evaluate } from "./evaluator.js";
import { model } from "./fixtures.js";

const NODES = ["node-1", "node-2", "node-3"];
const ipOf = (key: string): string => `10.244.${ALL_PODS.indexOf(key) % 3}.${10 + ALL_PODS.indexOf(key)}`;
const PROTO = { TCP: Protocol.TCP, UDP: Protocol.UDP, SCTP: Protocol.SCTP } as const;

function play(s: Scenario): string[] {
  const engines = new Map(NODES.map((n) => [n, new PolicyEngine({ nodeName: n })]));
  const all = (f: (e: PolicyEngine) => void): void => {
    engines.forEach(f);
  };
  const { namespaces, pods } = modelObjects({ nodeNames: NODES });
  const podByKey = new Map<string, V1Pod>();
  for (const p of pods) {
    const key = `${p.metadata?.namespace}/${p.metadata?.name}`;
    p.status = model<V1PodStatus>({ phase: "Running", podIP: ipOf(key), podIPs: [{ ip: ipOf(key) }] });
    podByKey.set(key, p);
  }
  const nsByName = new Map(namespaces.map((n) => [n.metadata?.name as string, n]));
  all((e) => {
    namespaces.forEach((n) => {
      e.upsertNamespace(n);
    });
  });
  all((e) => {
    pods.forEach((p) => {
      e.upsertPod(p);
    });
  });
  const problems: string[] = [];
  s.steps.forEach((step, si) => {
    for (const d of step.delete ?? [])
      all((e) => {
        e.deletePolicy(d.namespace, d.name);
      });
    for (const np of step.apply ?? [])
      all((e) => {
        e.upsertPolicy(np);
      });
    for (const l of step.labelNamespace ?? []) {
      const n = nsByName.get(l.name);
      assert.ok(n?.metadata !== undefined);
      n.metadata.labels = { ...n.metadata.labels, ...l.labels };
      all((e) => {
        e.upsertNamespace(n);
      });
    }
    for (const l of step.labelPod ?? []) {
      const p = podByKey.get(`${l.namespace}/${l.name}`);
      assert.ok(p?.metadata !== undefined);
      p.metadata.labels = { ...p.metadata.labels, ...l.labels };
      all((e) => {
        e.upsertPod(p);
      });
    }
    for (const e of engines.values()) assert.deepEqual(e.errors(), [], `${s.name} step ${si}`);
    const tables = new Map([...engines].map(([n, e]) => [n, new PolicyTable(e)]));
    const nodeOf = (key: string): PolicyTable =>
      tables.get(podByKey.get(key)?.spec?.nodeName as string) as PolicyTable;
    for (const { probe, expected } of step.probes) {
      const got: Matrix = {};
      let bad = false;
      for (const from of ALL_PODS) {
        got[from] = {};
        for (const to of ALL_PODS) {
          const v = evaluate(
            { src: nodeOf(from), dst: nodeOf(to) },
            ipOf(from),
            ipOf(to),
            PROTO[probe.protocol],
            probe.port,
          ).allowed;
          got[from][to] = v;
          if (v !== expected[from]?.[to] && !(from === to && s.ignoreLoopback === true)) bad = true;
        }
      }
      if (bad)
        problems.push(
          `${s.name}, step ${si} (${step.description}), ${probe.protocol}/${probe.port}\nexpected:\n${formatMatrix(expected)}\ngot:\n${formatMatrix(got)}`,
        );
    }
  });
  return problems;
}

describe("policy engine: NetworkPolicy conformance catalogue (simulated datapath)", function () {
  const list = scenarios(ipOf);
  it("has scenarios to play", function () {
    assert.ok(list.length > 40);
  });
  for (const s of list) {
    const title = `${s.name}${s.skip !== undefined ? " (skipped by the catalogue)" : ""}`;
    it(title, function () {
      if (s.skip !== undefined) this.skip();
      const problems = play(s);
      assert.deepEqual(problems, [], problems.join("\n\n"));
    });
  }
});
