/**
 * Kubernetes Services beside kube-proxy, on the lab with real packets: kube-proxy's rules (the model
 * in lab/kube-proxy.ts, iptables and nftables modes) in each node's namespace translate Service
 * traffic, and Skein's datapath must carry it: ClusterIP from a pod to a backend on the same node,
 * on another node and to itself (hairpin), from a node, NodePort and externalIPs from the world with
 * externalTrafficPolicy Cluster and Local, TCP and UDP (also a connected UDP socket, as resolvers
 * use), a prompt reject for a Service without endpoints; and NetworkPolicy judged after
 * translation (egress by the backend's labels, the backend's ingress seeing the client pod).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { ip } from "../../loader/index.js";
import { WORLD_IP, type LabNode, type LabPod } from "../../lab/lab.js";
import {
  PROXY_MODES,
  applyKubeProxy,
  removeKubeProxy,
  type ProxiedService,
  type ProxyMode,
} from "../../lab/kube-proxy.js";
import type { ProbeResult } from "../../lab/workload/workload.js";
import { eventually, useLab } from "../helpers/lab.js";

const SERVICE_CIDR = "10.96.0.0/12";
const CLUSTER_CIDR = "10.244.0.0/16";
const EXTERNAL_IP = "198.51.100.10";
const EXTERNAL_IP_LOCAL = "198.51.100.11";
const NS = "svc";

/** TCP 80 → 8080 and UDP 53 → 5353 (the lab workload's ports), UDP 54 → 5354 (closed). */
function service(
  name: string,
  clusterIP: string,
  backends: LabPod[],
  extra: Partial<ProxiedService> & { nodePort?: number } = {},
): ProxiedService {
  const { nodePort, ...rest } = extra;
  return {
    name,
    namespace: NS,
    clusterIP,
    ports: [
      {
        name: "http",
        port: 80,
        protocol: "TCP",
        targetPort: 8080,
        ...(nodePort === undefined ? {} : { nodePort }),
      },
      { name: "dns", port: 53, protocol: "UDP", targetPort: 5353 },
      // Nothing listens on 5354: the backend answers with an ICMP port unreachable.
      { name: "closed", port: 54, protocol: "UDP", targetPort: 5354 },
    ],
    endpoints: backends.map((p) => ({ ip: p.ip, nodeName: p.node, ready: true })),
    externalTrafficPolicy: "Cluster",
    ...rest,
  };
}

/**
 * A connected UDP socket in the pod's namespace (connect(2), then send/recv, as a resolver does):
 * the reply must come from the address connected to, and an ICMP port unreachable surfaces as
 * ECONNREFUSED.
 */
function connectedUdp(netns: string, host: string, port: number, timeoutMs = 1500): Promise<ProbeResult> {
  const script = `
const s = require("node:dgram").createSocket("udp4");
const t0 = Date.now();
const done = (r) => { process.stdout.write(JSON.stringify({ ...r, ms: Date.now() - t0 })); process.exit(0); };
setTimeout(() => done({ ok: false, error: "timeout" }), ${timeoutMs});
s.on("error", (e) => done({ ok: false, error: e.code || e.message }));
s.on("message", (m, rinfo) => done({ ok: true, reply: { ...JSON.parse(m.toString()), from: rinfo.address } }));
s.connect(${port}, ${JSON.stringify(host)}, () => { s.send("hello"); setInterval(() => s.send("hello"), 200); });`;
  return new Promise((resolve, reject) => {
    execFile(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, process.execPath, "-e", script],
      (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`${err.message}: ${stderr}`));
        else resolve(JSON.parse(stdout) as ProbeResult);
      },
    );
  });
}

describe("e2e: Services translated by kube-proxy (lab/kube-proxy.ts) through Skein's datapath", function () {
  this.timeout(180000);
  const fx = useLab(2, { agentArgs: [`--service-cidr=${SERVICE_CIDR}`] });
  let n1: LabNode;
  let n2: LabNode;
  let a: LabPod; // n1
  let b: LabPod; // n1
  let c: LabPod; // n2
  let d: LabPod; // n2
  let services: ProxiedService[];
  const svc = {
    toC: "10.96.0.10", // → c (n2)
    toB: "10.96.0.11", // → b (n1)
    toA: "10.96.0.12", // → a (n1): a's hairpin
    none: "10.96.0.13", // no endpoints
    nodePort: "10.96.0.14", // NodePort 30080 + externalIP, Cluster → c (n2)
    local: "10.96.0.15", // NodePort 30081 + externalIP, Local → b (n1)
  };

  const tcp = (from: LabPod | LabNode | "world", host: string, port = 80, timeoutMs = 1500) =>
    fx.lab.probe(from, "TCP", host, port, timeoutMs);
  const reaches = async (from: LabPod | LabNode | "world", host: string, port = 80) =>
    (await tcp(from, host, port, 700)).ok;

  async function apply(mode: ProxyMode): Promise<void> {
    for (const n of [n1, n2])
      await applyKubeProxy(n.netns, mode, services, { nodeName: n.name, clusterCidr: CLUSTER_CIDR });
  }

  before(async function () {
    [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: NS, name: "b", node: n1, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c" } });
    d = await fx.lab.addPod({ namespace: NS, name: "d", node: n2, labels: { app: "d" } });
    services = [
      service("to-c", svc.toC, [c]),
      service("to-b", svc.toB, [b]),
      service("to-a", svc.toA, [a]),
      service("none", svc.none, []),
      service("nodeport", svc.nodePort, [c], { nodePort: 30080, externalIPs: [EXTERNAL_IP] }),
      service("local", svc.local, [b], {
        nodePort: 30081,
        externalIPs: [EXTERNAL_IP_LOCAL],
        externalTrafficPolicy: "Local",
      }),
    ];
    // The world reaches the external IPs through n1 (as a router or a load balancer would send them).
    const world = fx.lab.state.world?.netns ?? "";
    for (const ext of [EXTERNAL_IP, EXTERNAL_IP_LOCAL])
      await ip(["-n", world, "route", "add", `${ext}/32`, "via", n1.ip, "src", WORLD_IP]);
    await eventually("pods reach each other", async () => (await tcp(a, c.ip, 8080, 300)).ok, 15000);
  });

  after(async function () {
    if ((n1 as LabNode | undefined) === undefined) return;
    for (const n of [n1, n2]) await removeKubeProxy(n.netns).catch(() => undefined);
  });

  for (const mode of PROXY_MODES)
    describe(`kube-proxy ${mode} mode`, function () {
      before(async function () {
        await apply(mode);
      });

      it("ClusterIP from a pod: backend on another node, on the same node, and back the other way; the backend sees the client", async function () {
        for (const [from, host, backend] of [
          [a, svc.toC, c],
          [a, svc.toB, b],
          [c, svc.toB, b],
          [d, svc.toC, c],
        ] as const) {
          const r = await tcp(from, host);
          assert.ok(r.ok, `${from.name} → ${host} (${backend.name}): ${r.error}`);
          assert.equal(r.reply?.name, `${NS}/${backend.name}`);
          assert.equal(r.reply.peer, from.ip, "no masquerade for a pod client");
        }
        const t = await fx.lab.transfer(a, svc.toC, 80, 2 * 1024 * 1024, 1400);
        assert.ok(t.ok, `2 MB through the ClusterIP: ${t.error}`);
      });

      it("hairpin: a pod reaches itself through its Service (masqueraded to the node)", async function () {
        const r = await tcp(a, svc.toA);
        assert.ok(r.ok, r.error);
        assert.equal(r.reply?.name, `${NS}/a`);
        assert.notEqual(r.reply.peer, a.ip);
      });

      it("ClusterIP from the nodes, to a backend on the other node and on the same node", async function () {
        for (const [from, host, backend] of [
          [n1, svc.toC, c],
          [n2, svc.toB, b],
          [n1, svc.toB, b],
        ] as const) {
          const r = await tcp(from, host);
          assert.ok(r.ok, `${from.name} → ${host}: ${r.error}`);
          assert.equal(r.reply?.name, `${NS}/${backend.name}`);
        }
      });

      it("UDP to a ClusterIP, unconnected and through a connected socket, same node and cross node", async function () {
        for (const [from, host, backend] of [
          [a, svc.toC, c],
          [a, svc.toB, b],
          [c, svc.toB, b],
        ] as const) {
          const u = await fx.lab.probe(from, "UDP", host, 53, 1500);
          assert.ok(u.ok, `udp ${from.name} → ${host}: ${u.error}`);
          assert.equal(u.reply?.name, `${NS}/${backend.name}`);
          const cu = await connectedUdp(from.netns, host, 53);
          assert.ok(cu.ok, `connected udp ${from.name} → ${host}: ${cu.error}`);
          assert.equal(cu.reply?.name, `${NS}/${backend.name}`);
        }
      });

      it("a backend's port unreachable for a Service's UDP port reaches the client's connected socket (same node, cross node)", async function () {
        for (const [from, host] of [
          [a, svc.toB],
          [a, svc.toC],
        ] as const) {
          const r = await connectedUdp(from.netns, host, 54, 3000);
          assert.equal(r.error, "ECONNREFUSED", `${from.name} → ${host}:54`);
          assert.ok(r.ms < 1000, `refused after ${r.ms} ms`);
        }
      });

      it("a Service without endpoints is rejected at once (TCP refused, connected UDP refused)", async function () {
        // ECONNREFUSED is the reject itself (a black hole would end in the 3 s timeout). Within 2.5 s,
        // not 1 s: the kernel rate-limits ICMP errors per peer (icmp_ratelimit, 1 s), so when an
        // earlier probe took the token, the reject answers the client's retransmission after ~1 s.
        const r = await tcp(a, svc.none, 80, 3000);
        assert.equal(r.ok, false);
        assert.equal(r.error, "ECONNREFUSED");
        assert.ok(r.ms < 2500, `refused after ${r.ms} ms`);
        const u = await connectedUdp(a.netns, svc.none, 53, 3000);
        assert.equal(u.error, "ECONNREFUSED");
        assert.ok(u.ms < 2500, `refused after ${u.ms} ms`);
        const fromNode = await tcp(n1, svc.none, 80, 3000);
        assert.equal(fromNode.error, "ECONNREFUSED");
      });

      it("NodePort and externalIP from the world, externalTrafficPolicy Cluster: either node, masqueraded", async function () {
        for (const [host, port] of [
          [n1.ip, 30080],
          [n2.ip, 30080],
          [EXTERNAL_IP, 80],
        ] as const) {
          const r = await tcp("world", host, port);
          assert.ok(r.ok, `world → ${host}:${port}: ${r.error}`);
          assert.equal(r.reply?.name, `${NS}/c`);
          assert.notEqual(r.reply.peer, WORLD_IP, "masqueraded");
        }
        const u = await fx.lab.probe("world", "UDP", EXTERNAL_IP, 53, 1500);
        assert.ok(u.ok, `udp world → ${EXTERNAL_IP}: ${u.error}`);
      });

      it("externalTrafficPolicy Local: the node with the backend keeps the client's address, the other drops", async function () {
        for (const [host, port] of [
          [n1.ip, 30081],
          [EXTERNAL_IP_LOCAL, 80],
        ] as const) {
          const r = await tcp("world", host, port);
          assert.ok(r.ok, `world → ${host}:${port}: ${r.error}`);
          assert.equal(r.reply?.name, `${NS}/b`);
          assert.equal(r.reply.peer, WORLD_IP, "the client's address is kept");
        }
        const r = await tcp("world", n2.ip, 30081, 700);
        assert.equal(r.ok, false, "n2 has no local endpoint");
        assert.equal(r.error, "timeout", "dropped, not rejected");
        // Pods still use every endpoint of a Local service, through its ClusterIP.
        const p = await tcp(d, svc.local);
        assert.ok(p.ok, p.error);
        assert.equal(p.reply?.peer, d.ip);
      });
    });

  describe("NetworkPolicy after translation (iptables mode)", function () {
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

    before(async function () {
      await apply("iptables");
    });

    afterEach(async function () {
      for (const [ns, name] of policies.splice(0)) await fx.lab.deletePolicy(ns, name).catch(() => undefined);
      await eventually(
        "policies gone",
        async () => (await reaches(a, svc.toB)) && (await reaches(d, svc.toC)),
        10000,
      );
    });

    it("egress by the backend's labels: allowed to a ClusterIP backed by an allowed pod, denied to one that is not; world egress still enforced", async function () {
      await policy("a-egress-to-c", {
        podSelector: { matchLabels: { app: "a" } },
        policyTypes: ["Egress"],
        egress: [
          {
            to: [{ podSelector: { matchLabels: { app: "c" } } }],
            ports: [
              { protocol: "TCP", port: 8080 },
              { protocol: "UDP", port: 5353 },
            ],
          },
        ],
      });
      await eventually("a → svc-b denied", async () => !(await reaches(a, svc.toB)), 10000);
      assert.ok((await tcp(a, svc.toC)).ok, "a → ClusterIP of c (allowed backend)");
      assert.ok((await connectedUdp(a.netns, svc.toC, 53)).ok, "a → ClusterIP of c, UDP");
      assert.ok((await tcp(a, c.ip, 8080)).ok, "a → c directly");
      assert.equal((await tcp(a, svc.toB, 80, 700)).ok, false, "a → ClusterIP of b (same node)");
      assert.equal((await tcp(a, b.ip, 8080, 700)).ok, false, "a → b directly");
      assert.equal((await tcp(a, WORLD_IP, 8080, 700)).ok, false, "a → the world");
      await policy("d-egress-to-b", {
        podSelector: { matchLabels: { app: "d" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: { matchLabels: { app: "b" } } }] }],
      });
      await eventually("d → svc-c denied", async () => !(await reaches(d, svc.toC)), 10000);
      assert.ok((await tcp(d, svc.toB)).ok, "d → ClusterIP of b (allowed backend, cross node)");
    });

    it("the backend's ingress sees the client pod, same node and cross node", async function () {
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
      await eventually("d → svc-c denied", async () => !(await reaches(d, svc.toC)), 10000);
      await eventually("c → svc-b denied", async () => !(await reaches(c, svc.toB)), 10000);
      const same = await tcp(a, svc.toB);
      assert.ok(same.ok, `a → ClusterIP of b (same node): ${same.error}`);
      const cross = await tcp(a, svc.toC);
      assert.ok(cross.ok, `a → ClusterIP of c (cross node): ${cross.error}`);
      assert.equal((await tcp(d, svc.toC, 80, 700)).ok, false, "d → ClusterIP of c (same node as c)");
      assert.equal((await tcp(c, svc.toB, 80, 700)).ok, false, "c → ClusterIP of b (cross node)");
      assert.ok((await tcp(n1, svc.toB)).ok, "b's own node is always allowed");
    });
  });
});

describe("e2e: Services translated by kube-proxy, pods encapsulated through the VXLAN device (--encap device)", function () {
  this.timeout(180000);
  const fx = useLab(2, { agentArgs: [`--service-cidr=${SERVICE_CIDR}`, "--encap=device"] });
  let a: LabPod;
  let c: LabPod;

  before(async function () {
    const [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    c = await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c" } });
    const services = [service("to-c", "10.96.0.10", [c]), service("to-a", "10.96.0.12", [a])];
    for (const n of [n1, n2])
      await applyKubeProxy(n.netns, "iptables", services, { nodeName: n.name, clusterCidr: CLUSTER_CIDR });
    await eventually(
      "pods reach each other",
      async () => (await fx.lab.probe(a, "TCP", c.ip, 8080, 300)).ok,
      15000,
    );
  });

  it("ClusterIP across nodes both ways, TCP and connected UDP; the backend sees the client", async function () {
    for (const [from, host, backend] of [
      [a, "10.96.0.10", c],
      [c, "10.96.0.12", a],
    ] as const) {
      const r = await fx.lab.probe(from, "TCP", host, 80, 1500);
      assert.ok(r.ok, `${from.name} → ${host}: ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/${backend.name}`);
      assert.equal(r.reply.peer, from.ip);
      const u = await connectedUdp(from.netns, host, 53);
      assert.ok(u.ok, `connected udp ${from.name} → ${host}: ${u.error}`);
      const closed = await connectedUdp(from.netns, host, 54, 3000);
      assert.equal(closed.error, "ECONNREFUSED");
    }
  });
});
