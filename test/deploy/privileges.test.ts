/**
 * The agent container of deploy/skein.yaml, run the way the kubelet would run it: under runc
 * (podman), with exactly the DaemonSet's securityContext (drop ALL, add its capabilities, not
 * privileged, read-only root, the runtime's default seccomp profile), its command, its settings
 * file, its mounts, and NODE_NAME, in a lab node's network namespace (standing in for
 * hostNetwork). The root filesystem is this machine's /usr plus the build's dist/ (the image test
 * covers the image's layout). Then:
 * - both lab nodes' agents become ready as the readiness probe sees it (127.0.0.1 from the node's
 *   network namespace, where the kubelet lives), and the shared smoke test passes through them;
 * - a restarted agent adopts its pinned programs (what CAP_SYS_ADMIN's *_GET_FD_BY_ID buys);
 * - negative controls, one privilege removed at a time, fail the way docs/deploy.md says.
 * Deviations from a cluster, on purpose: the settings' bpffsRoot and cniDataDir point into the
 * lab, and KUBECONFIG names the lab's API server instead of in-cluster config.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IContainer } from "kubernetes-models/v1/Container";
import { stringify } from "yaml";
import { Lab, type LabNode } from "../../lab/lab.js";
import { LabSmokeDriver } from "../../lab/smoke-driver.js";
import { renderSmokeReport, runSmoke } from "../../lab/smoke/smoke.js";
import { unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { ip } from "../../loader/index.js";
import { inCi, requireRoot } from "../helpers/privileged.js";
import {
  Podman,
  REPO,
  agentDaemonSet,
  agentSettings,
  exec,
  have,
  skeletonRootfs,
  usrMounts,
} from "./helpers.js";

const { agent } = agentDaemonSet();
const settings = agentSettings().values;

/** podman flags for the DaemonSet's agent securityContext. */
function securityFlags(c: IContainer, change: { caps?: string[]; seccomp?: "unconfined" } = {}): string[] {
  const sc = c.securityContext!;
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
  const caps = change.caps ?? sc.capabilities.add ?? [];
  return [
    "--cap-drop",
    "all",
    ...(caps.length > 0 ? ["--cap-add", caps.map((x) => x.toLowerCase()).join(",")] : []),
    ...(sc.readOnlyRootFilesystem === true ? ["--read-only"] : []),
    // RuntimeDefault: podman's default profile (gates bpf(2) and mount(2) on CAP_SYS_ADMIN, as containerd's does).
    ...(change.seccomp === "unconfined" ? ["--security-opt", "seccomp=unconfined"] : []),
  ];
}

describe("deploy: the agent container's privileges, under runc in a lab", function () {
  this.timeout(300000);
  let lab: Lab | undefined;
  let nodes: LabNode[] = [];
  let podman: Podman | undefined;
  let work = "";
  let rootfs = "";
  let usrLocal = "";
  const extraRoots: string[] = [];

  before(async function () {
    requireRoot(this);
    if (!(await have("podman")) || !(await have("runc"))) {
      if (inCi()) throw new Error("podman and runc are required (scripts/setup.sh installs them)");
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), "skein-privs-"));
    podman = new Podman(join(work, "podman"));
    ({ rootfs, usrLocal } = skeletonRootfs(work));
    // The image's entrypoint, as the Containerfile links it.
    await exec("ln", ["-s", "/opt/skein/dist/bin/skein-agent", join(usrLocal, "bin", "skein-agent")]);
    lab = await Lab.create({});
    // The lab's own agents exit at once (no kubeconfig): the containers below take their place.
    for (let i = 0; i < 2; i++)
      nodes.push(await lab.addNode({ waitReady: false, agentArgs: ["--kubeconfig=/nonexistent"] }));
  });

  after(async function () {
    this.timeout(120000);
    const problems: string[] = [];
    if (podman !== undefined) await podman.dispose();
    // Before the lab's teardown, which removes its bpffs directory only when empty.
    for (const root of extraRoots) if (existsSync(root)) unloadPinnedDatapath(root);
    if (lab !== undefined) problems.push(...(await lab.teardown()));
    if (work !== "") rmSync(work, { recursive: true, force: true });
    lab = undefined;
    nodes = [];
    if (problems.length > 0) throw new Error(`teardown: ${problems.join("; ")}`);
  });

  /** Settings file for `node`: the ConfigMap's, with the lab's pin root and IPAM dir. */
  function settingsFor(node: LabNode, bpffsRoot = node.bpffsRoot): string {
    const dir = join(work, `settings-${node.name}-${extraRoots.length}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "agent.yaml"), stringify({ ...settings, bpffsRoot, cniDataDir: node.ipamDir }));
    return dir;
  }

  /** podman run arguments for the agent container on `node` (its command unless `command` is given). */
  function agentRun(
    node: LabNode,
    name: string,
    opts: {
      caps?: string[];
      seccomp?: "unconfined";
      command?: string[];
      bpffsRoot?: string;
      detach?: boolean;
    } = {},
  ): string[] {
    mkdirSync(node.confDir, { recursive: true });
    const mountFor = (volume: string) => agent.volumeMounts?.find((m) => m.name === volume);
    const bpffs = mountFor("bpffs")!;
    assert.equal(bpffs.mountPropagation, "HostToContainer");
    return [
      "run",
      ...(opts.detach === false ? ["--rm"] : ["--detach"]),
      "--name",
      name,
      "--network",
      `ns:/var/run/netns/${node.netns}`,
      ...securityFlags(agent, opts),
      ...usrMounts(usrLocal),
      "-v",
      `${join(REPO, "dist")}:/opt/skein/dist:ro`,
      "-v",
      `${join(REPO, "node_modules")}:/opt/skein/node_modules:ro`,
      "-v",
      `${join(REPO, "package.json")}:/opt/skein/package.json:ro`,
      "-v",
      `${settingsFor(node, opts.bpffsRoot)}:${mountFor("config")!.mountPath}:ro`,
      "-v",
      `/sys/fs/bpf:${bpffs.mountPath}:rslave`,
      "-v",
      `${node.confDir}:${mountFor("cni-conf")!.mountPath}`,
      "--tmpfs",
      mountFor("tmp")!.mountPath,
      "-v",
      `${lab!.kubeconfigPath}:/etc/skein-lab/kubeconfig:ro`,
      "-e",
      "KUBECONFIG=/etc/skein-lab/kubeconfig",
      "-e",
      `NODE_NAME=${node.name}`,
      "--rootfs",
      rootfs,
      ...(opts.command ?? agent.command ?? []),
    ];
  }

  /** GET http://host:port/path from inside the node's network namespace, as the kubelet's probe. */
  async function probeFromNode(node: LabNode, probe: "readinessProbe" | "livenessProbe"): Promise<number> {
    const get = agent[probe]?.httpGet;
    assert.ok(get !== undefined);
    const url = `http://${get.host ?? node.ip}:${String(get.port)}${get.path ?? "/"}`;
    const script = `fetch(${JSON.stringify(url)}).then((r) => process.stdout.write(String(r.status)), () => process.stdout.write("0"))`;
    const r = await exec("nsenter", [`--net=/var/run/netns/${node.netns}`, process.execPath, "-e", script]);
    return Number(r.stdout.trim() || "0");
  }

  async function waitReady(node: LabNode, name: string): Promise<void> {
    const deadline = Date.now() + 60000;
    while ((await probeFromNode(node, "readinessProbe")) !== 200) {
      if (Date.now() > deadline) {
        const logs = await podman!.run(["logs", name]);
        assert.fail(`agent ${name} not ready within 60 s:\n${logs.stdout}${logs.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it("with exactly the DaemonSet's securityContext, both agents load the datapath and pass the readiness probe from the node's namespace", async function () {
    for (const n of nodes) {
      const r = await podman!.run(agentRun(n, `skein-privs-${n.name}`));
      assert.equal(r.code, 0, r.stderr);
    }
    for (const n of nodes) await waitReady(n, `skein-privs-${n.name}`);
    for (const n of nodes) assert.equal(await probeFromNode(n, "livenessProbe"), 200);
    // The node address does not serve the health port: that is why the probes name 127.0.0.1.
    const viaNodeIp = await exec("nsenter", [
      `--net=/var/run/netns/${nodes[0]!.netns}`,
      process.execPath,
      "-e",
      `fetch("http://${nodes[0]!.ip}:${String(agent.readinessProbe?.httpGet?.port)}/readyz").then(() => process.stdout.write("open"), () => process.stdout.write("closed"))`,
    ]);
    assert.equal(viaNodeIp.stdout, "closed");
    for (const n of nodes)
      assert.ok(existsSync(join(n.confDir, "10-skein.conflist")), `${n.name}: CNI configuration written`);
  });

  it("the shared smoke test passes through the containerized agents", async function () {
    const report = await runSmoke(new LabSmokeDriver(lab!), undefined, {
      convergeTimeoutMs: 20000,
      namespace: "privs",
    });
    assert.equal(report.ok, true, renderSmokeReport(report));
  });

  it("a restarted agent adopts its pinned programs (CAP_SYS_ADMIN: BPF_*_GET_FD_BY_ID)", async function () {
    const name = `skein-privs-${nodes[0]!.name}`;
    const r = await podman!.run(["restart", "--time", "5", name]);
    assert.equal(r.code, 0, r.stderr);
    await waitReady(nodes[0]!, name);
    const logs = await podman!.run(["logs", name]);
    const loads = (logs.stdout + logs.stderr).split("\n").filter((l) => l.includes("datapath ready"));
    assert.equal(loads.length, 2, loads.join("\n"));
    assert.match(
      loads[1]!,
      /programs=skn_from_pod:adopted,skn_to_pod:adopted,skn_from_vxlan:adopted,skn_to_vxlan:adopted/,
    );
  });

  describe("negative controls: one privilege less", function () {
    /** Runs the agent briefly (a fresh pin root) and returns its output. */
    async function briefly(
      node: LabNode,
      opts: { caps?: string[]; seccomp?: "unconfined"; command?: string[] },
    ): Promise<string> {
      const root = `${node.bpffsRoot}-neg${extraRoots.length}`;
      extraRoots.push(root);
      const script = opts.command ?? agent.command ?? [];
      const bounded = [
        ...script.slice(0, -1),
        (script.at(-1) ?? "").replace("exec skein-agent", "exec timeout 6 skein-agent"),
      ];
      const r = await podman!.run(
        agentRun(node, `skein-privs-neg-${extraRoots.length}`, {
          ...opts,
          bpffsRoot: root,
          detach: false,
          command: bounded,
        }),
        { timeoutMs: 60000 },
      );
      return r.stdout + r.stderr;
    }
    // A second agent beside the running one: ports of its own.
    const NEG = "exec skein-agent --config /etc/skein/agent.yaml --health-addr 127.0.0.1:0 --metrics-addr ''";
    const without = (cap: string) =>
      (agent.securityContext?.capabilities?.add ?? []).filter((c) => c !== cap);

    it("without SYS_ADMIN, the runtime's default seccomp profile refuses bpf(2): EPERM at load", async function () {
      const out = await briefly(nodes[0]!, { caps: without("SYS_ADMIN"), command: ["/bin/sh", "-ec", NEG] });
      // The first bpf(2) call of a load: the pinned maps' check (an existing node) or the load itself.
      assert.match(out, /(load object on .*skein\.bpf\.o|open pinned map on .*\/skn_\w+): EPERM/);
    });

    it("without PERFMON (and SYS_ADMIN, which implies it), the verifier rejects the programs", async function () {
      const out = await briefly(nodes[0]!, {
        caps: without("SYS_ADMIN").filter((c) => c !== "PERFMON"),
        seccomp: "unconfined",
        command: ["/bin/sh", "-ec", NEG],
      });
      // Unprivileged BPF forbids pointer arithmetic and spilling pointers; which check trips first
      // depends on the program, the refusal does not.
      assert.match(
        out,
        /load object on .*skein\.bpf\.o: EACCES.*verifier: .*(prohibited for !root|corrupt spilled pointer)/s,
      );
    });

    it("without the /proc/sys remount, a fresh VXLAN device's sysctls fail with EROFS", async function () {
      // Node 2's agent is stopped and its VXLAN device removed, so the next agent must create it anew.
      const n = nodes[1]!;
      await podman!.run(["stop", "--time", "5", `skein-privs-${n.name}`]);
      await ip(["-n", n.netns, "link", "del", String(settings.vxlanDevice)]);
      const out = await briefly(n, { command: ["/bin/sh", "-ec", NEG] });
      assert.match(
        out,
        /EROFS: read-only file system, open '\/proc\/sys\/net\/ipv6\/conf\/skn_vxlan\/disable_ipv6'/,
      );
    });
  });
});
