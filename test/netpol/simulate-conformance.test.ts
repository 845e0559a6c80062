/**
 * The conformance catalogue through `skeinctl policy simulate`'s engine: the agent's compiler into a
 * private datapath, every probe through the real programs (BPF_PROG_TEST_RUN). SCTP included.
 */
import assert from "node:assert/strict";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { Simulator } from "../../ctl/simulate/simulator.js";
import { requireRoot } from "../helpers/privileged.js";
import { ALL_PODS, modelObjects, splitPodKey } from "./model.js";
import type { Matrix } from "./reachability.js";
import { describeMismatches, playScenario, type ScenarioCluster } from "./player.js";
import { scenarios } from "./scenarios.js";

/** x/a → 10.244.0.10, x/b → 10.244.1.10, ... spread like the lab's two nodes. */
export function simulatedIps(): Map<string, string> {
  return new Map(ALL_PODS.map((k, i) => [k, `10.244.${i % 2}.${10 + i}`]));
}

class SimCluster implements ScenarioCluster {
  readonly sim = new Simulator();
  readonly namespaces = new Map<string, V1Namespace>();
  readonly pods = new Map<string, V1Pod>();

  constructor(ips: Map<string, string>) {
    const model = modelObjects({ nodeNames: ["n1", "n2"] });
    for (const ns of model.namespaces) this.namespaces.set(ns.metadata!.name!, ns);
    for (const p of model.pods) {
      const key = `${p.metadata!.namespace}/${p.metadata!.name}`;
      p.status = { phase: "Running", podIP: ips.get(key)! };
      this.pods.set(key, p);
    }
    this.sim.apply([...this.namespaces.values(), ...this.pods.values()]);
  }

  applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    this.sim.apply([
      Object.assign({}, policy, { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy" }),
    ]);
    return Promise.resolve();
  }

  deletePolicy(namespace: string, name: string): Promise<void> {
    this.sim.delete("NetworkPolicy", namespace, name);
    return Promise.resolve();
  }

  setNamespaceLabels(name: string, labels: Record<string, string>): Promise<void> {
    const ns = this.namespaces.get(name)!;
    ns.metadata = { name, labels };
    this.sim.apply([ns]);
    return Promise.resolve();
  }

  setPodLabels(namespace: string, name: string, labels: Record<string, string>): Promise<void> {
    const p = this.pods.get(`${namespace}/${name}`)!;
    p.metadata = { name, namespace, labels };
    this.sim.apply([p]);
    return Promise.resolve();
  }

  probeMatrix(probe: { port: number; protocol: "TCP" | "UDP" | "SCTP" }): Promise<Matrix> {
    const m: Matrix = {};
    for (const from of ALL_PODS) {
      m[from] = {};
      for (const to of ALL_PODS)
        m[from][to] = this.sim.probe({ from, to, port: probe.port, protocol: probe.protocol }).allowed;
    }
    return Promise.resolve(m);
  }
}

describe("netpol conformance through policy simulate (real programs, BPF_PROG_TEST_RUN)", function () {
  this.timeout(120000);
  const ips = simulatedIps();
  const all = scenarios((k) => ips.get(k) ?? "10.255.255.255");
  let cluster: SimCluster;

  before(function () {
    requireRoot(this);
    cluster = new SimCluster(ips);
  });
  after(function () {
    (cluster as SimCluster | undefined)?.sim.close();
  });

  for (const scenario of all) {
    const title = `${scenario.name}${scenario.upstream === "" ? "" : ` — ${scenario.upstream}`}`;
    if (scenario.skip !== undefined) {
      it.skip(`${title} (${scenario.skip})`);
      continue;
    }
    it(title, async function () {
      const mismatches = await playScenario(cluster, scenario, { convergeMs: 0 });
      const real = mismatches.filter((m) => !(m.loopback && scenario.ignoreLoopback === true));
      assert.equal(real.length, 0, `\n${describeMismatches(scenario, real)}`);
      splitPodKey;
    });
  }
});
