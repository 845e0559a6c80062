/**
 * runSmoke's logic against scripted drivers (no privileges): which checks it makes and in what
 * order, that a driver error is never mistaken for a denial, that it waits for a policy to take
 * effect, and that it always cleans up.
 */
import assert from "node:assert/strict";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import {
  SMOKE_APPS,
  SMOKE_PORTS,
  renderSmokeReport,
  runSmoke,
  smokePolicy,
  type SmokeDriver,
  type SmokePod,
  type SmokePodSpec,
  type SmokeProtocol,
} from "../../../lab/smoke/smoke.js";

/** An in-memory cluster with NetworkPolicy semantics for the smoke policy only. */
class FakeCluster implements SmokeDriver {
  pods: (SmokePod & { labels: Record<string, string>; namespace: string })[] = [];
  policies: V1NetworkPolicy[] = [];
  deleted: string[] = [];
  probes: string[] = [];
  /** Probes answered as before the policy for this many calls after applyPolicy (propagation delay). */
  lag = 0;
  #sinceApply = 0;
  constructor(
    readonly nodeNames: string[] = ["n1", "n2", "n3"],
    readonly failProbe?: (from: string) => boolean,
  ) {}
  nodes(): Promise<string[]> {
    return Promise.resolve(this.nodeNames);
  }
  createPods(namespace: string, pods: SmokePodSpec[]): Promise<SmokePod[]> {
    const made = pods.map((p, i) => ({
      ...p,
      namespace,
      ip: `10.0.${this.nodeNames.indexOf(p.node)}.${i + 2}`,
    }));
    this.pods.push(...made);
    return Promise.resolve(made.map(({ name, ip, node }) => ({ name, ip, node })));
  }
  probe(from: string, toIp: string, port: number, protocol: SmokeProtocol): Promise<boolean> {
    this.probes.push(`${from}>${toIp}:${port}/${protocol}`);
    if (this.failProbe?.(from) === true) return Promise.reject(new Error("exec failed"));
    const src = this.pods.find((p) => `${p.namespace}/${p.name}` === from);
    const dst = this.pods.find((p) => p.ip === toIp);
    if (src === undefined || dst === undefined) return Promise.resolve(false);
    const enforced = this.policies.length > 0 && this.#sinceApply++ >= this.lag;
    if (!enforced || dst.labels.app !== SMOKE_APPS.server) return Promise.resolve(true);
    return Promise.resolve(
      src.labels.app === SMOKE_APPS.client && protocol === "TCP" && port === SMOKE_PORTS.tcp,
    );
  }
  applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    this.policies.push(policy);
    return Promise.resolve();
  }
  deleteNamespace(namespace: string): Promise<void> {
    this.deleted.push(namespace);
    this.pods = this.pods.filter((p) => p.namespace !== namespace);
    return Promise.resolve();
  }
}

const fast = { convergeTimeoutMs: 2000, retryIntervalMs: 1, probeTimeoutMs: 10 };

describe("smoke: runSmoke logic with a scripted driver", function () {
  it("passes on a cluster that enforces the policy: four connectivity checks, four policy checks, cleanup", async function () {
    const cluster = new FakeCluster();
    const lines: string[] = [];
    const report = await runSmoke(cluster, (l) => lines.push(l), { ...fast, namespace: "smk" });
    assert.equal(report.ok, true, renderSmokeReport(report));
    assert.deepEqual(report.nodes, ["n1", "n2"]);
    assert.deepEqual(
      report.checks.map((c) => `${c.phase}: ${c.name}`),
      [
        "setup: two nodes to place pods on",
        "setup: pods in smk",
        "connectivity: cross-node TCP client → server",
        "connectivity: cross-node UDP client → server",
        "connectivity: cross-node TCP server → client",
        "connectivity: cross-node TCP other → server (no policy yet)",
        "policy: NetworkPolicy smoke-server-ingress applied",
        "policy: policy denies TCP other → server",
        "policy: policy denies UDP client → server (port not allowed)",
        "policy: policy allows TCP client → server",
        "policy: unselected pod still reachable: TCP server → client",
        "cleanup: namespace smk deleted",
      ],
    );
    // server on the first node, client and other on the second: every probe crosses nodes.
    assert.deepEqual(
      report.pods.map((p) => `${p.name}@${p.node}`),
      ["server@n1", "client@n2", "other@n2"],
    );
    assert.deepEqual(cluster.deleted, ["smk"]);
    assert.equal(lines.length, report.checks.length);
    assert.match(renderSmokeReport(report), /smoke passed: 12\/12 checks/);
  });

  it("the policy it applies selects the server and allows only TCP 8080 from the client", function () {
    const p = smokePolicy("ns1");
    assert.equal(p.metadata?.namespace, "ns1");
    assert.deepEqual(p.spec?.podSelector?.matchLabels, { app: SMOKE_APPS.server });
    assert.deepEqual(p.spec.policyTypes, ["Ingress"]);
    const rules = p.spec.ingress ?? [];
    assert.equal(rules.length, 1);
    const rule = rules[0];
    assert.ok(rule !== undefined);
    assert.deepEqual(rule._from, [{ podSelector: { matchLabels: { app: SMOKE_APPS.client } } }]);
    assert.deepEqual(rule.ports, [{ protocol: "TCP", port: SMOKE_PORTS.tcp }]);
  });

  it("waits for the policy to propagate before it calls a flow denied", async function () {
    const cluster = new FakeCluster();
    cluster.lag = 5;
    const report = await runSmoke(cluster, undefined, fast);
    assert.equal(report.ok, true, renderSmokeReport(report));
    const denied = report.checks.find((c) => c.name === "policy denies TCP other → server");
    assert.ok(denied !== undefined && denied.attempts > 2, `attempts ${denied?.attempts}`);
  });

  it("fails, and still cleans up, when the policy is never enforced", async function () {
    const cluster = new FakeCluster();
    cluster.lag = Number.MAX_SAFE_INTEGER;
    const report = await runSmoke(cluster, undefined, { ...fast, convergeTimeoutMs: 50 });
    assert.equal(report.ok, false);
    const denied = report.checks.find((c) => c.name === "policy denies TCP other → server");
    assert.equal(denied?.ok, false);
    assert.match(denied.detail, /still reaches .* \(expected: denied\)/);
    assert.equal(cluster.deleted.length, 1);
    assert.equal(report.checks.at(-1)?.phase, "cleanup");
  });

  it("a driver error during a probe fails the check instead of counting as a denial", async function () {
    const cluster = new FakeCluster(["n1", "n2"], (from) => from.endsWith("/other"));
    const report = await runSmoke(cluster, undefined, fast);
    assert.equal(report.ok, false);
    const denied = report.checks.find((c) => c.name === "policy denies TCP other → server");
    assert.equal(denied?.ok, false);
    assert.match(denied.detail, /probe failed: exec failed/);
  });

  it("needs two nodes: with one it fails at setup and creates nothing", async function () {
    const cluster = new FakeCluster(["solo"]);
    const report = await runSmoke(cluster, undefined, fast);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((c) => [c.name, c.ok]),
      [["two nodes to place pods on", false]],
    );
    assert.match(report.checks[0]?.detail ?? "", /need two nodes, found 1 \(solo\)/);
    assert.deepEqual(cluster.deleted, []);
  });

  it("deletes the namespace even when pod creation fails", async function () {
    const cluster = new FakeCluster();
    cluster.createPods = () => Promise.reject(new Error("quota exceeded"));
    const report = await runSmoke(cluster, undefined, { ...fast, namespace: "smk2" });
    assert.equal(report.ok, false);
    assert.match(report.checks.find((c) => c.name === "pods in smk2")?.detail ?? "", /quota exceeded/);
    assert.deepEqual(cluster.deleted, ["smk2"]);
  });
});
