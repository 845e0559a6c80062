/**
 * Service load balancing in BPF for the paths that do not start in a pod, on the lab with real
 * packets (agents with --service-lb=bpf; the Service maps written straight into each node's pins,
 * the agent's Service wiring being tested elsewhere): node → ClusterIP (TCP and a connected UDP
 * socket, backend on the same node and on the other), a deleted backend replaced within 1 s for a
 * connected UDP socket, world → NodePort and externalIP with externalTrafficPolicy Cluster (the
 * backend sees the node) and Local (the client's address kept, only local backends), the same flow
 * through either node landing on the same backend, and NetworkPolicy on the backend for each path.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { V1NetworkPolicy, V1ServiceSpec } from "@kubernetes/client-node";
import { ip } from "../../loader/index.js";
import { WORLD_IP, type LabNode, type LabPod } from "../../lab/lab.js";
import { LbFlowMap } from "../../maps/lb-flow.js";
import { LbBackendMap } from "../../maps/lb-backend.js";
import type { ProbeResult } from "../../lab/workload/workload.js";
import { transfer } from "../../lab/workload/workload-client.js";
import { eventually, useLab } from "../helpers/lab.js";

const SERVICE_CIDR = "10.96.0.0/12";
const EXTERNAL_IP = "198.51.100.10";
const NS = "lbn";

/** Runs a Node.js script inside namespace `netns`; resolves with its stdout parsed as JSON. */
function runIn<T>(netns: string, script: string): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, process.execPath, "-e", script],
      (err, out, stderr) => {
        if (err !== null) reject(new Error(`${err.message}: ${stderr}`));
        else resolve(JSON.parse(out) as T);
      },
    );
  });
}

/** One connected UDP socket (as a resolver keeps), one request every `everyMs` for `forMs`: every
 * reply with its time (Date.now()), the server's name and the address it came from. */
interface UdpTimeline {
  replies: { t: number; name: string; from: string }[];
  errors: string[];
}
function udpTimeline(
  netns: string,
  host: string,
  port: number,
  forMs: number,
  everyMs = 50,
): Promise<UdpTimeline> {
  return runIn<UdpTimeline>(
    netns,
    `const s = require("node:dgram").createSocket("udp4");
const out = { replies: [], errors: [] };
s.on("error", (e) => out.errors.push(e.code || e.message));
s.on("message", (m, r) => { try { out.replies.push({ t: Date.now(), name: JSON.parse(m.toString()).name, from: r.address }); } catch {} });
s.connect(${port}, ${JSON.stringify(host)}, () => {
  const i = setInterval(() => s.send("q"), ${everyMs});
  setTimeout(() => { clearInterval(i); setTimeout(() => { process.stdout.write(JSON.stringify(out)); process.exit(0); }, 200); }, ${forMs});
});`,
  );
}

/** A TCP request from a fixed source port: which backend answered (null when none did). */
function tcpFrom(netns: string, host: string, port: number, localPort: number): Promise<ProbeResult> {
  return runIn<ProbeResult>(
    netns,
    `const t0 = Date.now();
const done = (r) => { process.stdout.write(JSON.stringify({ ...r, ms: Date.now() - t0 })); process.exit(0); };
setTimeout(() => done({ ok: false, error: "timeout" }), 1500);
const c = require("node:net").createConnection({ host: ${JSON.stringify(host)}, port: ${port}, localPort: ${localPort} });
let d = "";
c.on("connect", () => c.write("hello\\n"));
c.on("data", (b) => { d += b; if (d.includes("\\n")) { c.resetAndDestroy(); done({ ok: true, reply: JSON.parse(d.slice(0, d.indexOf("\\n"))) }); } });
c.on("error", (e) => done({ ok: false, error: e.code || e.message }));`,
  );
}

describe("e2e: Service load balancing in BPF from the node and from the world (--service-lb=bpf)", function () {
  this.timeout(240000);
  const fx = useLab(2, { agentArgs: [`--service-cidr=${SERVICE_CIDR}`, "--service-lb=bpf"] });
  let n1: LabNode;
  let n2: LabNode;
  let a: LabPod; // n1
  let b: LabPod; // n1
  let c: LabPod; // n2
  let e1: LabPod; // n1, behind the dns Service
  let e2: LabPod; // n2, behind the dns Service
  let world: string;
  /** ClusterIPs by Service name, as the API server allocated them. */
  const vip: Record<string, string> = {};

  const tcp = (from: LabPod | LabNode | "world", host: string, port: number, timeoutMs = 1500) =>
    fx.lab.probe(from, "TCP", host, port, timeoutMs);

  /** Creates Service `name` in the API; the agents program it from the EndpointSlices. */
  async function service(name: string, spec: V1ServiceSpec): Promise<void> {
    const svc = await fx.lab
      .core()
      .createNamespacedService({ namespace: NS, body: { metadata: { name }, spec } });
    vip[name] = svc.spec?.clusterIP ?? "";
  }
  const HTTP = { name: "http", port: 80, targetPort: 8080, protocol: "TCP" } as const;
  const DNS = { name: "dns", port: 53, targetPort: 5353, protocol: "UDP" } as const;

  before(async function () {
    [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: NS, name: "b", node: n1, labels: { app: "b", tier: "np" } });
    c = await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c", tier: "np" } });
    await fx.lab.addPod({ namespace: NS, name: "d", node: n2, labels: { app: "d", tier: "np" } });
    e1 = await fx.lab.addPod({ namespace: NS, name: "e1", node: n1, labels: { role: "dns" } });
    e2 = await fx.lab.addPod({ namespace: NS, name: "e2", node: n2, labels: { role: "dns" } });
    world = fx.lab.state.world?.netns ?? "";
    await service("to-c", { selector: { app: "c" }, ports: [HTTP, DNS] });
    await service("to-b", { selector: { app: "b" }, ports: [HTTP, DNS] });
    await service("dns", { selector: { role: "dns" }, ports: [DNS] });
    await service("none", { selector: { app: "nobody" }, ports: [HTTP, DNS] });
    await service("np-none", {
      type: "NodePort",
      selector: { app: "nobody" },
      ports: [{ ...HTTP, nodePort: 30085 }],
    });
    // Cluster, over b, c and d (a consistent table), also on an external IP.
    await service("np", {
      type: "NodePort",
      selector: { tier: "np" },
      externalIPs: [EXTERNAL_IP],
      ports: [{ ...HTTP, nodePort: 30080 }],
    });
    // Local: the backend b is on n1 only.
    await service("np-local", {
      type: "NodePort",
      externalTrafficPolicy: "Local",
      selector: { app: "b" },
      ports: [{ ...HTTP, nodePort: 30081 }],
    });
    // Cluster, the backend c is on n2 only.
    await service("np-c", {
      type: "NodePort",
      selector: { app: "c" },
      ports: [
        { ...HTTP, nodePort: 30083 },
        { ...DNS, nodePort: 30084 },
      ],
    });
    await ip(["-n", world, "route", "add", `${EXTERNAL_IP}/32`, "via", n1.ip, "src", WORLD_IP]);
    await eventually("pods reach each other", async () => (await tcp(a, c.ip, 8080, 300)).ok, 15000);
    await eventually(
      "the Services are programmed",
      async () =>
        (await tcp(n1, vip["to-c"]!, 80, 300)).ok &&
        (await tcp("world", n2.ip, 30080, 300)).ok &&
        (await tcp("world", n1.ip, 30081, 300)).ok,
      20000,
    );
  });

  it("node → ClusterIP over TCP: backend on the other node and on the same node; the backend sees the node", async function () {
    for (const [from, host, backend] of [
      [n1, vip["to-c"]!, c],
      [n1, vip["to-b"]!, b],
      [n2, vip["to-b"]!, b],
      [n2, vip["to-c"]!, c],
    ] as const) {
      const r = await tcp(from, host, 80);
      assert.ok(r.ok, `${from.name} → ${host}: ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/${backend.name}`);
      assert.equal(r.reply.peer, from.ip, "the node's own address");
    }
    const t = await fx.lab.transfer(n1, vip["to-c"]!, 80, 2 * 1024 * 1024, 1400);
    assert.ok(t.ok, `2 MB node → ClusterIP → other node: ${t.error}`);
  });

  it("node → ClusterIP over a connected UDP socket: replies come from the ClusterIP, local and remote backend", async function () {
    for (const [from, host, backend] of [
      [n1, vip["to-c"]!, c],
      [n1, vip["to-b"]!, b],
    ] as const) {
      const tl = await udpTimeline(from.netns, host, 53, 300);
      assert.deepEqual(tl.errors, []);
      assert.ok(tl.replies.length >= 3, `${from.name} → ${host}: ${tl.replies.length} replies`);
      for (const r of tl.replies) {
        assert.equal(r.name, `${NS}/${backend.name}`);
        assert.equal(r.from, host);
      }
    }
  });

  it("node → ClusterIP, connected UDP: the backend pod it uses is deleted, the next packets reach the other within 1 s", async function () {
    const dnsIp = vip.dns!;
    const running = udpTimeline(n1.netns, dnsIp, 53, 3000, 50);
    // The backend the socket's flow was given (at random), as the datapath recorded it.
    let usedAddr: string | undefined;
    await eventually(
      "the flow is recorded",
      () => {
        using flows = LbFlowMap.openPinned(n1.bpffsRoot);
        using backends = LbBackendMap.openPinned(n1.bpffsRoot);
        for (const [k, v] of flows.entries())
          if (k.frontend === dnsIp && k.frontendPort === 53 && k.client === n1.ip)
            usedAddr = backends.get(v.backendId)?.addr;
        return usedAddr !== undefined;
      },
      2000,
    );
    await new Promise((r) => setTimeout(r, 500));
    const [gone, other] = usedAddr === e1.ip ? [e1, e2] : [e2, e1];
    const deletedAt = Date.now();
    // The pod is deleted in the API: the EndpointSlice controller drops it, the agent its backend.
    // Its workload keeps answering, so a stale translation would show.
    await fx.lab.core().deleteNamespacedPod({ namespace: NS, name: gone.name });
    const tl = await running;
    assert.deepEqual(tl.errors, []);
    const before = tl.replies.filter((r) => r.t < deletedAt);
    assert.ok(before.length > 5, `replies before the deletion: ${before.length}`);
    assert.ok(
      before.every((r) => r.name === `${NS}/${gone.name}`),
      "one backend before: the flow's",
    );
    const after = tl.replies.filter((r) => r.t > deletedAt);
    const firstOther = after.findIndex((r) => r.name === `${NS}/${other.name}`);
    assert.ok(firstOther >= 0, `${other.name} answered after ${gone.name} was deleted`);
    const latency = after[firstOther]!.t - deletedAt;
    console.log(`      (connected UDP moved to ${other.name} ${latency} ms after ${gone.name}'s deletion)`);
    assert.ok(latency <= 1000, `${other.name} answered ${latency} ms after the deletion`);
    // Packets already on their way may still be answered by the old backend; none after the switch.
    assert.ok(after.slice(firstOther).every((r) => r.name === `${NS}/${other.name}` && r.from === dnsIp));
    assert.ok(after.length - firstOther > 10, `replies from ${other.name}: ${after.length - firstOther}`);
  });

  it("world → NodePort, externalTrafficPolicy Cluster: backend on the other node and on this one; the backend sees the node", async function () {
    for (const [via, backend] of [
      [n1, c],
      [n2, c],
    ] as const) {
      const r = await tcp("world", via.ip, 30083);
      assert.ok(r.ok, `world → ${via.name}:30083: ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/${backend.name}`);
      assert.equal(r.reply.peer, via.ip, "masqueraded to the node it came through");
    }
    const u = await fx.lab.probe("world", "UDP", n1.ip, 30084, 1500);
    assert.ok(u.ok, `UDP world → ${n1.name}:30084: ${u.error}`);
    assert.equal(u.reply?.name, `${NS}/c`);
    assert.equal(u.reply.peer, n1.ip);
    const t = await transfer(fx.lab.state.world?.control ?? "", {
      host: n1.ip,
      port: 30083,
      bytes: 2 * 1024 * 1024,
      writeSize: 1400,
      timeoutMs: 60000,
    });
    assert.ok(t.ok, `2 MB world → NodePort → other node: ${t.error}`);
  });

  it("world → NodePort, externalTrafficPolicy Local: the client's address reaches the backend; a node without one drops", async function () {
    const r = await tcp("world", n1.ip, 30081);
    assert.ok(r.ok, `world → ${n1.name}:30081: ${r.error}`);
    assert.equal(r.reply?.name, `${NS}/b`);
    assert.equal(r.reply.peer, WORLD_IP);
    const none = await tcp("world", n2.ip, 30081, 700);
    assert.equal(none.ok, false, `world → ${n2.name}:30081 (no local backend) must not connect`);
  });

  it("the same flow through either node lands on the same backend (consistent table), and flows spread", async function () {
    const base = 20000 + Math.floor(Math.random() * 20000);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const sport = base + i;
      const r1 = await tcpFrom(world, n1.ip, 30080, sport);
      const r2 = await tcpFrom(world, n2.ip, 30080, sport);
      assert.ok(r1.ok && r2.ok, `sport ${sport}: ${r1.error} ${r2.error}`);
      assert.equal(r1.reply?.name, r2.reply?.name, `sport ${sport}: n1 and n2 chose alike`);
      seen.add(r1.reply!.name);
    }
    assert.ok(seen.size >= 2, `8 flows over 3 backends: ${[...seen].join(",")}`);
    // An external IP moved from n1 to n2 (the route in front changes): the same 5-tuple, the same
    // backend, although n2 never saw the flow.
    const viaN1: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await tcpFrom(world, EXTERNAL_IP, 80, base + 100 + i);
      assert.ok(r.ok, `via n1: ${r.error}`);
      viaN1.push(r.reply!.name);
    }
    await ip(["-n", world, "route", "replace", `${EXTERNAL_IP}/32`, "via", n2.ip, "src", WORLD_IP]);
    try {
      for (let i = 0; i < 4; i++) {
        const r = await tcpFrom(world, EXTERNAL_IP, 80, base + 100 + i);
        assert.ok(r.ok, `via n2: ${r.error}`);
        assert.equal(r.reply?.name, viaN1[i], `sport ${base + 100 + i}: the same backend through n2`);
        assert.equal(r.reply?.peer, n2.ip);
      }
    } finally {
      await ip(["-n", world, "route", "replace", `${EXTERNAL_IP}/32`, "via", n1.ip, "src", WORLD_IP]);
    }
  });

  describe("NetworkPolicy on the backend", function () {
    const policies: [string, string][] = [];
    async function policy(name: string, spec: V1NetworkPolicy["spec"]): Promise<void> {
      await fx.lab.applyPolicy({
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { namespace: NS, name },
        ...(spec === undefined ? {} : { spec }),
      });
      policies.push([NS, name]);
    }
    afterEach(async function () {
      for (const [ns, name] of policies.splice(0)) await fx.lab.deletePolicy(ns, name).catch(() => undefined);
      await eventually("policies gone", async () => (await tcp("world", n1.ip, 30081, 500)).ok, 10000);
    });

    it("node → ClusterIP: its own node always passes, another node is 'remote node'; NodePort Cluster: the node; Local: the world's address", async function () {
      await policy("b-from-a", {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: "a" } } }] }],
      });
      await policy("c-from-a", {
        podSelector: { matchLabels: { app: "c" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: "a" } } }] }],
      });
      await eventually(
        "world → Local NodePort of b denied",
        async () => !(await tcp("world", n1.ip, 30081, 500)).ok,
        10000,
      );
      assert.ok((await tcp(a, b.ip, 8080)).ok, "a → b still allowed");
      assert.ok((await tcp(n1, vip["to-b"]!, 80)).ok, "n1 → ClusterIP of b: b's own node passes");
      assert.equal(
        (await tcp(n2, vip["to-b"]!, 80, 700)).ok,
        false,
        "n2 → ClusterIP of b: remote node denied",
      );
      assert.equal(
        (await tcp("world", n1.ip, 30083, 700)).ok,
        false,
        "world → n1 NodePort → c: seen as remote node",
      );
      assert.ok((await tcp("world", n2.ip, 30083)).ok, "world → n2 NodePort → c: seen as c's own node");
      // The world's address, allowed by an ipBlock: Local keeps it, so the rule applies.
      await policy("b-from-world", {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ ipBlock: { cidr: `${WORLD_IP}/32` } }] }],
      });
      await eventually(
        "world → Local NodePort of b allowed by its ipBlock",
        async () => (await tcp("world", n1.ip, 30081, 500)).ok,
        10000,
      );
    });
  });

  it("a Service without endpoints rejects at once: node → ClusterIP (TCP and connected UDP) and world → NodePort get ECONNREFUSED", async function () {
    const r = await tcp(n1, vip.none!, 80, 1500);
    assert.equal(r.error, "ECONNREFUSED", `node → ClusterIP without endpoints: ${JSON.stringify(r)}`);
    assert.ok(r.ms < 500, `refused after ${r.ms} ms`);
    const u = await udpTimeline(n1.netns, vip.none!, 53, 300);
    assert.ok(u.errors.includes("ECONNREFUSED"), `connected UDP: ${JSON.stringify(u)}`);
    const w = await tcp("world", n1.ip, 30085, 1500);
    assert.equal(w.error, "ECONNREFUSED", `world → NodePort without endpoints: ${JSON.stringify(w)}`);
  });
});
