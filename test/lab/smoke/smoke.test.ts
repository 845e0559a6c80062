/**
 * The shared smoke test on the one-machine lab, for real: two nodes with their agents, pods wired
 * by skein-cni, probes through VXLAN, the NetworkPolicy enforced by the datapath, and cleanup
 * (CNI DEL, Pod and Namespace objects gone). Also the probe CLI the kubectl driver execs in pods,
 * run against a lab pod's workload, and the kubectl driver's policy apply through a real kubectl
 * into the lab's API server.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIST, Lab, type LabNode } from "../../../lab/lab.js";
import { LabSmokeDriver } from "../../../lab/smoke-driver.js";
import { KubectlDriver } from "../../../lab/smoke/kubectl-driver.js";
import {
  SMOKE_PORTS,
  renderSmokeReport,
  runSmoke,
  smokePolicy,
  type SmokeReport,
} from "../../../lab/smoke/smoke.js";
import { debianKubectl } from "../apiserver/helpers.js";
import { requireRoot } from "../../helpers/privileged.js";

function runNode(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

describe("smoke: the shared smoke test on the lab (LabSmokeDriver)", function () {
  this.timeout(240000);
  let lab: Lab | undefined;
  let nodes: LabNode[] = [];
  let report: SmokeReport | undefined;

  before(async function () {
    requireRoot(this);
    lab = await Lab.create({});
    for (let i = 0; i < 2; i++) nodes.push(await lab.addNode({ waitReady: false }));
    await Promise.all(nodes.map((n) => lab!.waitAgentReady(n)));
  });

  after(async function () {
    if (lab === undefined) return;
    const problems = await lab.teardown();
    lab = undefined;
    nodes = [];
    if (problems.length > 0) throw new Error(`lab teardown: ${problems.join("; ")}`);
  });

  it("passes every check: cross-node TCP/UDP both ways, the policy denies two flows and allows two", async function () {
    const lines: string[] = [];
    report = await runSmoke(new LabSmokeDriver(lab!), (l) => lines.push(l), {
      convergeTimeoutMs: 20000,
      namespace: "smoke-lab",
    });
    assert.equal(report.ok, true, renderSmokeReport(report) + lines.join("\n"));
    assert.equal(report.checks.length, 12);
    assert.deepEqual(
      report.nodes,
      nodes.map((n) => n.name),
    );
    for (const c of report.checks) assert.ok(c.ms >= 0 && Number.isFinite(c.ms));
    const denials = report.checks.filter((c) => c.name.startsWith("policy denies"));
    assert.equal(denials.length, 2);
    for (const d of denials) assert.ok(d.attempts >= 2, `${d.name}: ${d.attempts} probes`);
  });

  it("left nothing behind: no lab pod, no Pod, no NetworkPolicy, no Namespace smoke-lab", async function () {
    assert.ok(report !== undefined, "the smoke test ran");
    assert.deepEqual(
      lab!.state.pods.filter((p) => p.namespace === "smoke-lab"),
      [],
    );
    const pods = await lab!.core().listNamespacedPod({ namespace: "smoke-lab" });
    assert.equal(pods.items.length, 0);
    const pols = await lab!.networking().listNamespacedNetworkPolicy({ namespace: "smoke-lab" });
    assert.equal(pols.items.length, 0);
    await assert.rejects(lab!.core().readNamespace({ name: "smoke-lab" }));
  });

  describe("probe-cli (what the kubectl driver execs inside a pod)", function () {
    before(async function () {
      await new LabSmokeDriver(lab!).createPods("probecli", [
        { name: "a", node: nodes[0]!.name, labels: { app: "a" } },
        { name: "b", node: nodes[1]!.name, labels: { app: "b" } },
      ]);
    });
    after(async function () {
      if (lab !== undefined) await new LabSmokeDriver(lab).deleteNamespace("probecli");
    });
    const cli = join(DIST, "lab", "workload", "probe-cli.js");

    it("exit 0 and the workload's answer when the target answers (cross-node TCP)", async function () {
      const a = lab!.pod("probecli/a");
      const b = lab!.pod("probecli/b");
      const args = [
        cli,
        "--control",
        a.control,
        "--protocol",
        "TCP",
        "--host",
        b.ip,
        "--port",
        String(SMOKE_PORTS.tcp),
        "--timeout-ms",
        "2000",
      ];
      let r = await runNode(args);
      for (let i = 0; i < 20 && r.code !== 0; i++) r = await runNode(args);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const answer = JSON.parse(r.stdout) as { ok: boolean; reply?: { name: string; peer: string } };
      assert.equal(answer.ok, true);
      assert.equal(answer.reply?.name, "probecli/b");
      assert.equal(answer.reply.peer, a.ip);
    });

    it("exit 1 with ok:false when nothing answers; exit 2 for usage errors and a missing workload", async function () {
      const a = lab!.pod("probecli/a");
      const b = lab!.pod("probecli/b");
      const miss = await runNode([
        cli,
        "--control",
        a.control,
        "--protocol",
        "UDP",
        "--host",
        b.ip,
        "--port",
        "9",
        "--timeout-ms",
        "300",
      ]);
      assert.equal(miss.code, 1, miss.stderr);
      assert.equal((JSON.parse(miss.stdout) as { ok: boolean }).ok, false);
      assert.equal(
        (await runNode([cli, "--control", a.control, "--protocol", "GRE", "--host", b.ip, "--port", "1"]))
          .code,
        2,
      );
      assert.equal((await runNode([cli, "--protocol", "TCP", "--host", b.ip, "--port", "1"])).code, 2);
      const gone = await runNode([
        cli,
        "--control",
        "/nonexistent/skein.sock",
        "--protocol",
        "TCP",
        "--host",
        b.ip,
        "--port",
        "80",
      ]);
      assert.equal(gone.code, 2);
      assert.match(gone.stderr, /nonexistent/);
      const ping = await runNode([cli, "--control", a.control, "--ping"]);
      assert.equal(ping.code, 0);
    });
  });

  describe("KubectlDriver.applyPolicy through Debian's kubectl into the lab API server", function () {
    let home = "";
    after(() => {
      if (home !== "") rmSync(home, { recursive: true, force: true });
    });

    it("the API server receives the ingress peers under `from` (not client-node's `_from`)", async function () {
      const kubectl = await debianKubectl(this);
      home = mkdtempSync(join(tmpdir(), "skein-smoke-kubectl-"));
      await lab!.ensureNamespace("kdrv");
      // A private HOME: kubectl's discovery cache must not outlive this lab's API server.
      const driver = new KubectlDriver({
        image: "unused",
        kubectl: "env",
        kubeconfig: lab!.kubeconfigPath,
        exec: (file, args, opts) =>
          new Promise((resolve) => {
            const child = execFile(
              file,
              [`HOME=${home}`, kubectl, ...args],
              { timeout: opts.timeoutMs },
              (err, stdout, stderr) => {
                resolve({
                  code: err === null ? 0 : typeof err.code === "number" ? err.code : 1,
                  stdout,
                  stderr,
                });
              },
            );
            child.stdin?.end(opts.input ?? "");
          }),
      });
      await driver.applyPolicy(smokePolicy("kdrv"));
      const got = await lab!
        .networking()
        .readNamespacedNetworkPolicy({ name: "smoke-server-ingress", namespace: "kdrv" });
      const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
      assert.deepEqual(
        plain(got.spec?.ingress?.[0]?._from),
        plain(smokePolicy("kdrv").spec?.ingress?.[0]?._from),
      );
      assert.deepEqual(plain(got.spec?.ingress?.[0]?.ports), [{ protocol: "TCP", port: SMOKE_PORTS.tcp }]);
      await lab!
        .networking()
        .deleteNamespacedNetworkPolicy({ name: "smoke-server-ingress", namespace: "kdrv" });
    });
  });
});
