/**
 * Issue acceptance for the overlay, on the one-machine lab with real agents, real skein-cni, real
 * packets: cross-node traffic, what the underlay carries, MTU, masquerade, dynamics, restarts,
 * bad objects.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import parsePrometheus from "parse-prometheus-text-format";
import { IpcacheMap } from "../../maps/ipcache.js";
import { WORLD_IP, type LabPod } from "../../lab/lab.js";
import { eventually, useLab } from "../helpers/lab.js";

describe("e2e: pods on different nodes over Skein's VXLAN overlay", function () {
  this.timeout(120000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;
  let c: LabPod;

  before(async function () {
    a = await fx.lab.addPod({ namespace: "e2e", name: "a", node: fx.nodes[0]! });
    b = await fx.lab.addPod({ namespace: "e2e", name: "b", node: fx.nodes[1]! });
    c = await fx.lab.addPod({ namespace: "e2e", name: "c", node: fx.nodes[0]! });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 15000);
  });

  it("pings and connects across nodes, in both directions", async function () {
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      assert.ok((await fx.lab.probe(from, "ICMP", to.ip, 0)).ok, `ping ${from.name} → ${to.name}`);
      const tcp = await fx.lab.probe(from, "TCP", to.ip, 8080);
      assert.ok(tcp.ok, `tcp ${from.name} → ${to.name}: ${tcp.error}`);
      assert.equal(
        tcp.reply?.peer,
        from.ip,
        "the destination sees the pod's own address (no NAT inside the cluster)",
      );
      assert.ok((await fx.lab.probe(from, "UDP", to.ip, 5353)).ok, `udp ${from.name} → ${to.name}`);
    }
  });

  it("carries pod packets on the underlay as VXLAN (UDP 4789) with the pod addresses inside", async function () {
    const underlay = `/var/run/netns/${fx.lab.state.underlay}`;
    const dump = spawn(
      "nsenter",
      [`--net=${underlay}`, "tcpdump", "-i", "br0", "-nn", "-l", "-c", "4", "udp", "port", "4789"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    dump.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => dump.once("exit", r));
    try {
      await eventually("tcpdump listening", () => true, 10);
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 4 && !out.includes("VXLAN"); i++) await fx.lab.probe(a, "TCP", b.ip, 8080);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    } finally {
      dump.kill("SIGKILL");
    }
    assert.match(out, /VXLAN/);
    assert.match(
      out,
      new RegExp(`${fx.nodes[0]!.ip}\\.\\d+ > ${fx.nodes[1]!.ip}\\.4789`),
      "outer: node to node",
    );
    assert.match(
      out,
      new RegExp(`${a.ip.replaceAll(".", "\\.")}\\.\\d+ > ${b.ip.replaceAll(".", "\\.")}\\.8080`),
      "inner: pod to pod",
    );
  });

  it("moves 10 MB in 1,400-byte writes across nodes intact (pod MTU leaves room for VXLAN)", async function () {
    const r = await fx.lab.transfer(a, b.ip, 8080, 10 * 1024 * 1024, 1400);
    assert.ok(r.ok, `transfer: ${r.error ?? `${r.bytes} bytes, ${r.sent} vs ${r.received}`}`);
    assert.equal(r.bytes, 10 * 1024 * 1024);
  });

  it("masquerades pod traffic leaving the cluster to the node's address", async function () {
    const r = await fx.lab.probe(a, "TCP", WORLD_IP, 8080);
    assert.ok(r.ok, r.error);
    assert.equal(r.reply?.peer, fx.nodes[0]!.ip);
    const u = await fx.lab.probe(b, "UDP", WORLD_IP, 5353);
    assert.equal(u.reply?.peer, fx.nodes[1]!.ip);
  });

  it("reaches pods from nodes and nodes from pods, same node and across", async function () {
    for (const node of fx.nodes)
      for (const pod of [a, b])
        assert.ok((await fx.lab.probe(node, "TCP", pod.ip, 8080)).ok, `${node.name} → ${pod.name}`);
    for (const pod of [a, b])
      for (const node of fx.nodes)
        assert.ok((await fx.lab.probe(pod, "TCP", node.ip, 8080)).ok, `${pod.name} → ${node.name}`);
  });

  it("makes a node added through the API reachable without restarting any agent", async function () {
    const pids = fx.nodes.map((n) => n.agent?.pid);
    const n3 = await fx.lab.addNode();
    fx.nodes.push(n3);
    const d = await fx.lab.addPod({ namespace: "e2e", name: "d", node: n3 });
    await eventually(
      "a reaches d on the new node",
      async () => (await fx.lab.probe(a, "TCP", d.ip, 8080, 300)).ok,
      10000,
    );
    await eventually("d reaches b", async () => (await fx.lab.probe(d, "TCP", b.ip, 8080, 300)).ok, 10000);
    assert.deepEqual(
      fx.nodes.slice(0, 2).map((n) => n.agent?.pid),
      pids,
      "no agent restarted",
    );
  });

  it("removes a deleted pod's entries from every node's maps within 2 s", async function () {
    const maps = fx.nodes.map((n) => IpcacheMap.openPinned(n.bpffsRoot));
    try {
      const key = { ip: c.ip, length: 32 };
      for (const m of maps) assert.ok(m.getExact(key) !== undefined, "present everywhere first");
      await fx.lab.core().deleteNamespacedPod({ name: c.name, namespace: c.namespace });
      const ms = await eventually(
        "ipcache entries gone",
        () => maps.every((m) => m.getExact(key) === undefined),
        2000,
        5,
      );
      assert.ok(ms < 2000, `took ${ms} ms`);
      await fx.lab.deletePod(c);
    } finally {
      for (const m of maps) m.close();
    }
  });

  it("keeps a cross-node TCP stream flowing while agents are SIGKILLed and restarted; the restart adopts the maps without flushing", async function () {
    const [n1, n2] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
    const server = spawn("nsenter", [`--net=/var/run/netns/${b.netns}`, "iperf3", "-s", "-1", "-p", "5301"], {
      stdio: "ignore",
    });
    const maps = [IpcacheMap.openPinned(n1.bpffsRoot), IpcacheMap.openPinned(n2.bpffsRoot)];
    let minEntries = Infinity;
    const sampling = { on: true };
    const sampler = (async () => {
      while (sampling.on) {
        for (const m of maps) minEntries = Math.min(minEntries, m.count());
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const client = spawn(
        "nsenter",
        [`--net=/var/run/netns/${a.netns}`, "iperf3", "-c", b.ip, "-p", "5301", "-t", "6", "-i", "0.5", "-J"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let json = "";
      client.stdout.on("data", (d: Buffer) => (json += d.toString()));
      const done = new Promise<number>((r) =>
        client.once("exit", (code) => {
          r(code ?? 1);
        }),
      );
      await new Promise((r) => setTimeout(r, 1500));
      await fx.lab.signalAgent(n1, "SIGKILL");
      await fx.lab.signalAgent(n2, "SIGKILL");
      await new Promise((r) => setTimeout(r, 1000));
      fx.lab.startAgent(n1);
      fx.lab.startAgent(n2);
      await Promise.all([fx.lab.waitAgentReady(n1), fx.lab.waitAgentReady(n2)]);
      assert.equal(await done, 0, "iperf3 finished without error");
      const result = JSON.parse(json) as {
        intervals: { sum: { bits_per_second: number } }[];
        end: { sum_received: { bytes: number } };
      };
      const stalled = result.intervals.filter((i) => i.sum.bits_per_second < 1e6);
      assert.equal(
        stalled.length,
        0,
        `intervals without traffic: ${stalled.length} of ${result.intervals.length}`,
      );
      assert.ok(result.end.sum_received.bytes > 0);
    } finally {
      sampling.on = false;
      await sampler;
      server.kill("SIGKILL");
      for (const m of maps) m.close();
    }
    assert.ok(minEntries > 0, "the ipcache never emptied");
    const log = await import("node:fs").then((fs) => fs.readFileSync(n1.agent!.log, "utf8"));
    assert.match(log, /datapath ready .*adopted/, "restart adopted the pinned programs");
  });

  it("skips bad Kubernetes objects with a log line and a metric, and keeps working", async function () {
    const core = fx.lab.core();
    await core.createNode({
      body: {
        metadata: { name: "bad-no-cidr" },
        status: { addresses: [{ type: "InternalIP", address: "198.18.250.1" }] },
      },
    });
    await core.createNode({
      body: {
        metadata: { name: "bad-cidr" },
        spec: { podCIDR: "10.300.0.0/33" },
        status: { addresses: [{ type: "InternalIP", address: "198.18.250.2" }] },
      },
    });
    await core.createNamespacedPod({
      namespace: "e2e",
      body: {
        metadata: { name: "bad-ip", namespace: "e2e" },
        spec: { nodeName: fx.nodes[0]!.name, containers: [{ name: "x", image: "x" }] },
      },
    });
    await core.patchNamespacedPodStatus(
      { name: "bad-ip", namespace: "e2e", body: { status: { phase: "Running", podIP: "not-an-ip" } } },
      (await import("@kubernetes/client-node")).setHeaderOptions(
        "Content-Type",
        "application/merge-patch+json",
      ),
    );
    const node = fx.nodes[0]!;
    const skipped = async (kind: string, reason: string) => {
      const text = await (await fetch(fx.lab.agentUrl(node, "/metrics", 9878))).text();
      const family = parsePrometheus(text).find((f) => f.name === "skein_k8s_objects_skipped_total");
      return Number(
        family?.metrics.find((m) => m.labels?.kind === kind && m.labels.reason === reason)?.value ?? 0,
      );
    };
    await eventually(
      "metrics count the bad objects",
      async () =>
        (await skipped("Node", "no-pod-cidr")) >= 1 &&
        (await skipped("Node", "bad-pod-cidr")) >= 1 &&
        (await skipped("Pod", "bad-ip")) >= 1,
      5000,
    );
    const log = (await import("node:fs")).readFileSync(node.agent!.log, "utf8");
    assert.match(log, /object skipped .*bad-no-cidr/);
    assert.match(log, /object skipped .*bad-cidr/);
    assert.match(log, /object skipped .*bad-ip/);
    assert.ok((await fx.lab.probe(a, "TCP", b.ip, 8080)).ok, "traffic unaffected");
    const ready = await fetch(fx.lab.agentUrl(node, "/readyz"));
    assert.equal(ready.status, 200);
    for (const name of ["bad-no-cidr", "bad-cidr"]) await core.deleteNode({ name });
  });
});
