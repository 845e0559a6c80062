/**
 * Both ways of encapsulating pod traffic, on the lab with real packets: --encap device (through the
 * VXLAN device, skn_from_vxlan enforcing ingress) and switching a node between the modes by
 * restarting its agent, with a TCP stream running, without breaking it. The default mode (--encap
 * bpf) is what every other lab test runs on.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { ConfigFlag, ConfigMap } from "../../maps/config.js";
import { ip } from "../../loader/index.js";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { exchange, holdConnection, release } from "../../lab/workload/workload-client.js";
import { hooksIn } from "../helpers/hooks.js";
import { eventually, useLab } from "../helpers/lab.js";

/** The uplink in the node's config map, and whether the node's eth0 runs skn_from_uplink. */
function uplinkState(node: LabNode): { uplinkIfindex: number; filter: boolean } {
  using config = ConfigMap.openPinned(node.bpffsRoot);
  return {
    uplinkIfindex: config.read().uplinkIfindex,
    filter: hooksIn(node.netns).get("eth0 ingress")?.program === "skn_from_uplink",
  };
}

describe("e2e: --encap device (pod traffic through the VXLAN device)", function () {
  this.timeout(120000);
  const fx = useLab(2, { agentArgs: ["--encap=device"] });
  let a: LabPod;
  let b: LabPod;

  before(async function () {
    a = await fx.lab.addPod({ namespace: "dev", name: "a", node: fx.nodes[0]!, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "dev", name: "b", node: fx.nodes[1]!, labels: { app: "b" } });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 15000);
  });

  it("has no program on the uplink and no uplink in the config", function () {
    for (const n of fx.nodes) assert.deepEqual(uplinkState(n), { uplinkIfindex: 0, filter: false });
  });

  it("pings, connects and moves 10 MB across nodes in both directions; nodes and pods reach each other", async function () {
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      assert.ok((await fx.lab.probe(from, "ICMP", to.ip, 0)).ok, `ping ${from.name} → ${to.name}`);
      const tcp = await fx.lab.probe(from, "TCP", to.ip, 8080);
      assert.ok(tcp.ok, tcp.error);
      assert.equal(tcp.reply?.peer, from.ip);
      assert.ok((await fx.lab.probe(from, "UDP", to.ip, 5353)).ok, `udp ${from.name} → ${to.name}`);
    }
    const r = await fx.lab.transfer(a, b.ip, 8080, 10 * 1024 * 1024, 1400);
    assert.ok(r.ok, r.error);
    for (const node of fx.nodes)
      for (const pod of [a, b]) {
        assert.ok((await fx.lab.probe(node, "TCP", pod.ip, 8080)).ok, `${node.name} → ${pod.name}`);
        assert.ok((await fx.lab.probe(pod, "TCP", node.ip, 8080)).ok, `${pod.name} → ${node.name}`);
      }
  });

  it("the receiving device's program enforces ingress policy (a deny-all on b blocks a, allows nothing new)", async function () {
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { namespace: "dev", name: "deny-b" },
      spec: { podSelector: { matchLabels: { app: "b" } }, policyTypes: ["Ingress"] },
    });
    try {
      await eventually("a → b denied", async () => !(await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 5000);
      assert.ok((await fx.lab.probe(b, "TCP", a.ip, 8080)).ok, "b's egress is not restricted");
    } finally {
      await fx.lab.deletePolicy("dev", "deny-b");
    }
    await eventually(
      "a → b allowed again",
      async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok,
      5000,
    );
  });
});

describe("e2e: switching a node between --encap bpf and --encap device under traffic", function () {
  this.timeout(120000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;

  before(async function () {
    a = await fx.lab.addPod({ namespace: "sw", name: "a", node: fx.nodes[0]! });
    b = await fx.lab.addPod({ namespace: "sw", name: "b", node: fx.nodes[1]! });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 15000);
  });

  it("restarting the agent in the other mode moves the uplink program and config; held connections survive both moves", async function () {
    const n1 = fx.nodes[0]!;
    const before = uplinkState(n1);
    assert.ok(before.uplinkIfindex > 0 && before.filter, "bpf mode by default");
    const held: { from: LabPod; id: number }[] = [];
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const h = await holdConnection(from.control, to.ip, 8080);
      assert.ok(h.ok && h.id !== undefined, h.error);
      held.push({ from, id: h.id });
    }
    const exchangeAll = async (when: string) => {
      for (const h of held) {
        const r = await exchange(h.from.control, h.id, 2000);
        assert.ok(r.ok, `held connection from ${h.from.name} ${when}: ${r.error ?? ""}`);
      }
    };
    try {
      await exchangeAll("before the switch");
      await fx.lab.signalAgent(n1, "SIGTERM");
      fx.lab.startAgent(n1, ["--encap=device"]);
      await fx.lab.waitAgentReady(n1);
      await eventually("uplink released", () => !uplinkState(n1).filter, 5000);
      assert.equal(uplinkState(n1).uplinkIfindex, 0);
      await exchangeAll("after switching to device");
      assert.ok((await fx.lab.probe(a, "TCP", b.ip, 8080)).ok, "new connections from the device-mode node");
      assert.ok((await fx.lab.probe(b, "TCP", a.ip, 8080)).ok, "and towards it");

      await fx.lab.signalAgent(n1, "SIGTERM");
      fx.lab.startAgent(n1);
      await fx.lab.waitAgentReady(n1);
      await eventually("uplink taken again", () => uplinkState(n1).filter, 5000);
      assert.ok(uplinkState(n1).uplinkIfindex > 0);
      await exchangeAll("after switching back to bpf");
      assert.ok((await fx.lab.probe(a, "TCP", b.ip, 8080)).ok, "new connections in bpf mode");
    } finally {
      for (const h of held) await release(h.from.control, h.id);
    }
  });

  it("names the remote node as next hop while every node is a neighbour on the uplink; a gateway route to a node turns that off; traffic flows either way", async function () {
    const [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    const onLink = (n: LabNode) => {
      using config = ConfigMap.openPinned(n.bpffsRoot);
      return (config.read().flags & ConfigFlag.tunnelOnLink) !== 0;
    };
    const traffic = async (when: string) => {
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        const r = await fx.lab.probe(from, "TCP", to.ip, 8080);
        assert.ok(r.ok, `${from.name} → ${to.name} ${when}: ${r.error ?? ""}`);
      }
      const t = await fx.lab.transfer(a, b.ip, 8080, 1024 * 1024, 1400);
      assert.ok(t.ok, `1 MB a → b ${when}: ${t.error ?? ""}`);
    };
    await eventually("both nodes take the shortcut", () => onLink(n1) && onLink(n2), 5000);
    await traffic("with the shortcut");

    // A route through a gateway (here the node itself, so packets still arrive): n1 must let the
    // kernel route. The agent reads the routes again when the set of nodes changes, so a Node
    // object (never started) is added to make it look.
    const route = [`${n2.ip}/32`, "via", n2.ip, "dev", "eth0", "onlink"];
    const ghost = { name: `ghost-${fx.lab.id}`, ip: n1.ip.replace(/\.\d+$/, ".199") };
    const core = fx.lab.core();
    await ip(["-n", n1.netns, "route", "add", ...route]);
    try {
      await core.createNode({
        body: {
          metadata: { name: ghost.name },
          spec: { podCIDR: "10.244.199.0/24" },
          status: { addresses: [{ type: "InternalIP", address: ghost.ip }] },
        },
      });
      await eventually("n1 leaves the shortcut", () => !onLink(n1), 5000);
      assert.ok(onLink(n2), "n2 has no gateway route and keeps the shortcut");
      await traffic("with the kernel's route lookup on n1");
    } finally {
      await ip(["-n", n1.netns, "route", "del", ...route]).catch(() => undefined);
      await core.deleteNode({ name: ghost.name }).catch(() => undefined);
    }
    await eventually("n1 takes the shortcut again", () => onLink(n1), 5000);
    await traffic("with the shortcut again");
  });

  it("skeinctl datapath detach (uninstalling a drained node) removes every Skein program from the node's hooks", async function () {
    const n2 = fx.nodes[1]!;
    await fx.lab.signalAgent(n2, "SIGTERM");
    assert.equal(hooksIn(n2.netns).size, 5, "pod veth × 2, overlay × 2, uplink");
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const p = spawn(
        "nsenter",
        [`--net=/var/run/netns/${n2.netns}`, process.execPath, "dist/ctl/main.js", "datapath", "detach"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let stdout = "";
      p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      p.on("close", (code) => {
        resolve({ code, stdout });
      });
    });
    assert.equal(out.code, 0);
    assert.match(out.stdout, /^removed Skein's programs from .*eth0 ingress/);
    assert.equal(hooksIn(n2.netns).size, 0);
  });

  it("refuses an unknown mode with a clear error and does not start", async function () {
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        ["dist/agent/main.js", "--encap=vxlan", "--kubeconfig=/nonexistent"],
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let stderr = "";
      p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      p.on("close", (code) => {
        resolve({ code, stderr });
      });
    });
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /--encap: expected one of bpf, device, got vxlan/);
  });
});
