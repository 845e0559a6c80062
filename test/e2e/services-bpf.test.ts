/**
 * Services load-balanced by Skein's datapath (lib/lb.h), on the lab with real packets: two node
 * namespaces joined by VXLAN, real agents, pods wired by the real skein-cni, and each node's
 * pinned Service maps filled from policy/lb-builder.ts's output by maps/lb-apply.ts (what the agent
 * will do; no kube-proxy rules anywhere). Pod → ClusterIP → pod on the same node and across nodes,
 * both backends over many connections, hairpin, a prompt reject without endpoints, a connected UDP
 * socket that moves to a live backend when its backend pod is deleted, and NetworkPolicy judged on
 * the backend with the client's identity.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { LbMapsWriter, PinnedLbMaps } from "../../maps/lb-apply.js";
import { LbFlowMap } from "../../maps/lb-flow.js";
import { LbIdAllocator, buildLb, type EndpointSliceView, type ServiceView } from "../../policy/lb-builder.js";
import { eventually, useLab } from "../helpers/lab.js";

const NS = "lbsvc";
const HAIRPIN_IP = "169.254.1.2";

interface TestService {
  name: string;
  clusterIP: string;
  backends: LabPod[];
}

/** TCP 80 → 8080 and UDP 53 → 5353 (the lab workload's ports). */
function views(services: readonly TestService[]): {
  services: ServiceView[];
  endpointSlices: EndpointSliceView[];
} {
  return {
    services: services.map((s) => ({
      namespace: NS,
      name: s.name,
      type: "ClusterIP",
      clusterIPs: [s.clusterIP],
      ports: [
        { name: "http", port: 80, protocol: "TCP" },
        { name: "dns", port: 53, protocol: "UDP" },
        // Nothing listens on 5354: the backend answers with an ICMP port unreachable.
        { name: "closed", port: 54, protocol: "UDP" },
      ],
    })),
    endpointSlices: services.map((s) => ({
      namespace: NS,
      serviceName: s.name,
      addressType: "IPv4",
      endpoints: s.backends.map((p) => ({ addresses: [p.ip], ready: true, nodeName: p.node })),
      ports: [
        { name: "http", port: 8080, protocol: "TCP" },
        { name: "dns", port: 5353, protocol: "UDP" },
        { name: "closed", port: 5354, protocol: "UDP" },
      ],
    })),
  };
}

/** Each node's maps, written as the agent will: its own allocator and writer over its pinned maps. */
class NodeLb {
  readonly maps: PinnedLbMaps;
  readonly writer: LbMapsWriter;
  readonly alloc = new LbIdAllocator();

  constructor(readonly node: LabNode) {
    this.maps = PinnedLbMaps.open(node.bpffsRoot);
    this.writer = new LbMapsWriter(this.maps);
    this.writer.resync();
  }

  apply(services: readonly TestService[]): void {
    const d = buildLb(
      { node: { nodeName: this.node.name, nodeAddresses: [this.node.ip] }, ...views(services) },
      this.alloc,
    );
    assert.deepEqual(d.problems, []);
    const r = this.writer.apply(d);
    for (const [name, x] of Object.entries(r)) assert.equal(x.failed, 0, `${name}: ${String(x.firstError)}`);
  }
}

interface UdpLogLine {
  t: number;
  name?: string;
  from?: string;
  error?: string;
}

/**
 * A DNS-like client in the pod's namespace: one connected UDP socket, a query every 50 ms for
 * `durationMs`, every answer (or error) logged with its wall-clock time.
 */
function udpClient(netns: string, host: string, port: number, durationMs: number): Promise<UdpLogLine[]> {
  const script = `
const s = require("node:dgram").createSocket("udp4");
const log = [];
s.on("error", (e) => log.push({ t: Date.now(), error: e.code || e.message }));
s.on("message", (m, r) => { try { log.push({ t: Date.now(), name: JSON.parse(m.toString()).name, from: r.address }); } catch { log.push({ t: Date.now(), error: "bad reply" }); } });
s.connect(${port}, ${JSON.stringify(host)}, () => setInterval(() => s.send("q", () => undefined), 50));
setTimeout(() => { process.stdout.write(JSON.stringify(log)); process.exit(0); }, ${durationMs});`;
  return new Promise((resolve, reject) => {
    execFile(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, process.execPath, "-e", script],
      (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}: ${stderr}`));
        else resolve(JSON.parse(stdout) as UdpLogLine[]);
      },
    );
  });
}

describe("e2e: Services load-balanced in BPF (lib/lb.h) through the lab", function () {
  this.timeout(180000);
  const fx = useLab(2);
  let n1: LabNode;
  let n2: LabNode;
  let a: LabPod; // n1
  let b: LabPod; // n1
  let c: LabPod; // n2
  let d: LabPod; // n2
  let lbs: NodeLb[] = [];
  let services: TestService[] = [];
  const svc = {
    toC: "10.96.1.10", // → c (n2)
    toB: "10.96.1.11", // → b (n1)
    toA: "10.96.1.12", // → a (n1): a's hairpin
    none: "10.96.1.13", // no endpoints
    both: "10.96.1.14", // → b (n1) and c (n2)
  };

  const tcp = (from: LabPod, host: string, port = 80, timeoutMs = 1500) =>
    fx.lab.probe(from, "TCP", host, port, timeoutMs);
  const applyAll = () => {
    for (const l of lbs) l.apply(services);
  };

  before(async function () {
    [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: NS, name: "b", node: n1, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c" } });
    d = await fx.lab.addPod({ namespace: NS, name: "d", node: n2, labels: { app: "d" } });
    lbs = [new NodeLb(n1), new NodeLb(n2)];
    services = [
      { name: "to-c", clusterIP: svc.toC, backends: [c] },
      { name: "to-b", clusterIP: svc.toB, backends: [b] },
      { name: "to-a", clusterIP: svc.toA, backends: [a] },
      { name: "none", clusterIP: svc.none, backends: [] },
      { name: "both", clusterIP: svc.both, backends: [b, c] },
    ];
    applyAll();
    await eventually("pods reach each other", async () => (await tcp(a, c.ip, 8080, 300)).ok, 15000);
  });

  after(function () {
    for (const l of lbs) l.maps.close();
  });

  it("ClusterIP from a pod: backend on the same node and on another node, both ways; the backend sees the client", async function () {
    for (const [from, host, backend] of [
      [a, svc.toC, c],
      [a, svc.toB, b],
      [c, svc.toB, b],
      [d, svc.toC, c],
    ] as const) {
      const r = await tcp(from, host);
      assert.ok(r.ok, `${from.name} → ${host} (${backend.name}): ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/${backend.name}`);
      assert.equal(r.reply.peer, from.ip, "the client's own address");
    }
    const t = await fx.lab.transfer(a, svc.toC, 80, 2 * 1024 * 1024, 1400);
    assert.ok(t.ok, `2 MB through the ClusterIP: ${t.error}`);
    for (const [from, host, backend] of [
      [a, svc.toC, c],
      [a, svc.toB, b],
    ] as const) {
      const u = await fx.lab.probe(from, "UDP", host, 53, 1500);
      assert.ok(u.ok, `udp ${from.name} → ${host}: ${u.error}`);
      assert.equal(u.reply?.name, `${NS}/${backend.name}`);
    }
  });

  it("both backends (one per node) answer over many connections", async function () {
    const seen = new Map<string, number>();
    for (let i = 0; i < 24; i++) {
      const r = await tcp(d, svc.both);
      assert.ok(r.ok, r.error);
      seen.set(r.reply?.name ?? "", (seen.get(r.reply?.name ?? "") ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), [`${NS}/b`, `${NS}/c`], JSON.stringify([...seen]));
  });

  it("hairpin: a pod reaches itself through its Service, seen from 169.254.1.2", async function () {
    const r = await tcp(a, svc.toA);
    assert.ok(r.ok, r.error);
    assert.equal(r.reply?.name, `${NS}/a`);
    assert.equal(r.reply.peer, HAIRPIN_IP);
    const u = await fx.lab.probe(a, "UDP", svc.toA, 53, 1500);
    assert.ok(u.ok, u.error);
  });

  it("a backend's port unreachable for a Service's UDP port reaches the client's connected socket (same node, cross node)", async function () {
    for (const host of [svc.toB, svc.toC]) {
      const log = await udpClient(a.netns, host, 54, 600);
      const refused = log.find((l) => l.error === "ECONNREFUSED");
      assert.ok(refused !== undefined, `${host}:54: ${JSON.stringify(log)}`);
    }
  });

  it("a Service without endpoints is refused at once (TCP, connected UDP)", async function () {
    const r = await tcp(a, svc.none, 80, 3000);
    assert.equal(r.error, "ECONNREFUSED");
    assert.ok(r.ms < 500, `refused after ${r.ms} ms`);
    const log = await udpClient(a.netns, svc.none, 53, 400);
    assert.ok(
      log.some((l) => l.error === "ECONNREFUSED"),
      JSON.stringify(log),
    );
  });

  describe("NetworkPolicy judged on the backend, with the client's identity", function () {
    const policies: string[] = [];
    async function policy(name: string, spec: V1NetworkPolicy["spec"]): Promise<void> {
      await fx.lab.applyPolicy({
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { namespace: NS, name },
        ...(spec === undefined ? {} : { spec }),
      });
      policies.push(name);
    }
    afterEach(async function () {
      for (const p of policies.splice(0)) await fx.lab.deletePolicy(NS, p).catch(() => undefined);
      await eventually("policies gone", async () => (await tcp(d, svc.toB, 80, 300)).ok, 10000);
    });

    it("ingress of the backend: only app=a may reach b through its ClusterIP", async function () {
      await policy("b-from-a", {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: "a" } } }], ports: [{ port: 8080 }] }],
      });
      await eventually("d denied", async () => !(await tcp(d, svc.toB, 80, 300)).ok, 10000);
      const ok = await tcp(a, svc.toB);
      assert.ok(ok.ok, `a → b's ClusterIP allowed by port 8080 (the backend's): ${ok.error}`);
    });

    it("egress of the client: a may reach app=c only, judged on the translated destination", async function () {
      await policy("a-to-c", {
        podSelector: { matchLabels: { app: "a" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: { matchLabels: { app: "c" } } }], ports: [{ port: 8080 }] }],
      });
      await eventually("a → b denied", async () => !(await tcp(a, svc.toB, 80, 300)).ok, 10000);
      const ok = await tcp(a, svc.toC);
      assert.ok(ok.ok, ok.error);
    });
  });

  // Last: it deletes a backend pod (mocha runs a suite's own tests before its nested suites).
  describe("backend pod deleted", function () {
    it("a connected UDP socket moves to a live backend within 1 s of its backend pod's deletion", async function () {
      const client = udpClient(d.netns, svc.both, 53, 5000);
      await new Promise((r) => setTimeout(r, 1200));
      // Which backend the socket's flow uses now: the datapath remembers it in skn_lb_flow.
      let first: string | undefined;
      {
        using flows = LbFlowMap.openPinned(n2.bpffsRoot);
        for (const [k, v] of flows.entries())
          if (k.client === d.ip && k.frontend === svc.both && k.proto === 17)
            first = lbs[1]!.maps.backend.get(v.backendId)?.addr;
      }
      assert.ok(first !== undefined, "the flow is remembered");
      const gone = first === b.ip ? b : c;
      const live = gone === b ? c : b;
      await fx.lab.deletePod(gone);
      const t0 = Date.now();
      services = services.map((s) => ({ ...s, backends: s.backends.filter((p) => p !== gone) }));
      applyAll();
      const log = await client;
      const before = log.filter((l) => l.t < t0 && l.name !== undefined);
      assert.ok(
        before.every((l) => l.name === `${NS}/${gone.name}`),
        "one backend while it lived",
      );
      const moved = log.find((l) => l.t >= t0 && l.name === `${NS}/${live.name}`);
      assert.ok(moved !== undefined, `never reached ${live.name}: ${JSON.stringify(log.slice(-5))}`);
      assert.ok(moved.t - t0 <= 1000, `moved after ${moved.t - t0} ms`);
      assert.equal(moved.from, svc.both, "answers still come from the ClusterIP");
      const after = log.filter((l) => l.t >= moved.t);
      assert.ok(
        after.every((l) => l.name === `${NS}/${live.name}`),
        "and stays there",
      );
    });
  });
});
