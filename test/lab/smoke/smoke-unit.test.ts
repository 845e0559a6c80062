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

/** The same, with Services resolved by name: `name.namespace` reaches the pods its selector picks. */
class FakeServiceCluster extends FakeCluster {
  services: string[] = [];
  /** A broken datapath: traffic through the Service skips the backend's policy. */
  serviceBypassesPolicy = false;
  #hosts = new Map<string, Record<string, string>>();
  createService(namespace: string, name: string, selector: Record<string, string>): Promise<string> {
    this.services.push(
      `${namespace}/${name} ${Object.entries(selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(",")}`,
    );
    this.#hosts.set(`${name}.${namespace}`, selector);
    return Promise.resolve(`${name}.${namespace}`);
  }
  override probe(from: string, toIp: string, port: number, protocol: SmokeProtocol): Promise<boolean> {
    const selector = this.#hosts.get(toIp);
    if (selector === undefined) return super.probe(from, toIp, port, protocol);
    const backend = this.pods.find((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v));
    if (backend === undefined) return Promise.resolve(false);
    if (this.serviceBypassesPolicy) {
      this.probes.push(`${from}>${toIp}:${port}/${protocol}`);
      return Promise.resolve(true);
    }
    return super.probe(from, backend.ip, port, protocol).then((r) => {
      this.probes.push(`${from}>${toIp}:${port}/${protocol}`);
      return r;
    });
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
    assert.deepEqual(
      lines.filter((l) => !/^(ok|FAIL) /.test(l)),
      ["Service checks left out: no Services and cluster DNS here"],
    );
    assert.equal(lines.length, report.checks.length + 1);
    assert.match(renderSmokeReport(report), /smoke passed: 12\/12 checks/);
  });

  it("with Services and cluster DNS: the Service by name, TCP and UDP, and the policy judged on its backend", async function () {
    const cluster = new FakeServiceCluster();
    const report = await runSmoke(cluster, () => undefined, { ...fast, namespace: "smk" });
    assert.equal(report.ok, true, renderSmokeReport(report));
    assert.deepEqual(cluster.services, ["smk/smoke-server app=smoke-server"]);
    assert.deepEqual(
      report.checks.map((c) => `${c.phase}: ${c.name}`).filter((n) => n.includes("Service")),
      [
        "setup: Service smoke-server in front of the server",
        "connectivity: TCP client → Service smoke-server by DNS name",
        "connectivity: UDP client → Service smoke-server by DNS name (connected socket)",
        "policy: policy denies TCP other → Service smoke-server (judged on the backend)",
        "policy: policy allows TCP client → Service smoke-server",
      ],
    );
    assert.ok(cluster.probes.includes("smk/client>smoke-server.smk:5353/UDP"));
    assert.match(renderSmokeReport(report), /smoke passed: 17\/17 checks/);
  });

  it("fails the Service checks when the Service is not judged on its backend", async function () {
    const cluster = new FakeServiceCluster();
    cluster.serviceBypassesPolicy = true;
    const report = await runSmoke(cluster, () => undefined, { ...fast, namespace: "smk" });
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.filter((c) => !c.ok).map((c) => c.name),
      ["policy denies TCP other → Service smoke-server (judged on the backend)"],
    );
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
