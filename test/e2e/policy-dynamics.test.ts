/**
 * Policy over time, on the lab: established connections survive policy changes, a new denying
 * policy blocks new connections within a second of its creation in the API, forged source
 * addresses are dropped and counted, and a full policy map is reported instead of silently
 * dropping entries.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import parsePrometheus from "parse-prometheus-text-format";
import { MetricsMap } from "../../maps/metrics.js";
import { nsExec } from "../../bench/kernel-baseline.js";
import type { LabPod } from "../../lab/lab.js";
import { exchange, holdConnection, release } from "../../lab/workload/workload-client.js";
import { eventually, useLab } from "../helpers/lab.js";

function denyIngress(
  namespace: string,
  name: string,
  podLabels: Record<string, string>,
  allowFrom?: Record<string, string>,
): V1NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
    spec: {
      podSelector: { matchLabels: podLabels },
      policyTypes: ["Ingress"],
      ingress: allowFrom === undefined ? [] : [{ _from: [{ podSelector: { matchLabels: allowFrom } }] }],
    },
  };
}

describe("e2e: policy dynamics", function () {
  this.timeout(120000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;
  let c: LabPod;

  before(async function () {
    a = await fx.lab.addPod({ namespace: "dyn", name: "a", node: fx.nodes[0]!, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "dyn", name: "b", node: fx.nodes[1]!, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: "dyn", name: "c", node: fx.nodes[0]!, labels: { app: "c" } });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 15000);
    await eventually("a reaches c", async () => (await fx.lab.probe(a, "TCP", c.ip, 8080, 300)).ok, 15000);
  });

  afterEach(async function () {
    for (const name of ["unrelated", "deny-b", "deny-c"])
      await fx.lab.deletePolicy("dyn", name).catch(() => undefined);
  });

  it("keeps established connections through an unrelated policy change, and through a denying one", async function () {
    const conns: { from: LabPod; id: number }[] = [];
    for (const [from, to] of [
      [a, b],
      [a, c],
      [c, b],
    ] as const)
      for (let i = 0; i < 3; i++) {
        const h = await holdConnection(from.control, to.ip, 8080);
        assert.ok(h.ok && h.id !== undefined, `hold ${from.name} → ${to.name}: ${h.error}`);
        conns.push({ from, id: h.id });
      }
    try {
      const check = async (when: string) => {
        for (const cn of conns) {
          const r = await exchange(cn.from.control, cn.id);
          assert.ok(r.ok, `${when}: connection ${cn.id} from ${cn.from.name}: ${r.error}`);
        }
      };
      await check("before");
      await fx.lab.applyPolicy(denyIngress("dyn", "unrelated", { app: "nobody" }));
      await new Promise((r) => setTimeout(r, 1000));
      await check("after an unrelated policy");
      await fx.lab.applyPolicy(denyIngress("dyn", "deny-b", { app: "b" }));
      await eventually(
        "new connections to b denied",
        async () => !(await fx.lab.probe(a, "TCP", b.ip, 8080, 200)).ok,
        3000,
      );
      await check("after a policy denying new connections to b (conntrack keeps what was allowed)");
    } finally {
      for (const cn of conns) await release(cn.from.control, cn.id);
    }
  });

  it("blocks new connections of a flow within 1 s of a denying policy's creation in the API", async function () {
    assert.ok((await fx.lab.probe(a, "TCP", c.ip, 8080, 500)).ok, "allowed before");
    const created = Date.now();
    await fx.lab.applyPolicy(denyIngress("dyn", "deny-c", { app: "c" }, { app: "b" }));
    let blockedAt = 0;
    while (Date.now() - created < 3000) {
      const r = await fx.lab.probe(a, "TCP", c.ip, 8080, 100);
      if (!r.ok) {
        blockedAt = Date.now();
        break;
      }
    }
    assert.ok(blockedAt > 0, "never blocked");
    const ms = blockedAt - created;
    assert.ok(ms < 1000, `blocked after ${ms} ms`);
    this.test!.title += ` (${ms} ms)`;
    for (let i = 0; i < 5; i++)
      assert.ok(!(await fx.lab.probe(a, "TCP", c.ip, 8080, 200)).ok, "stays blocked");
    assert.ok((await fx.lab.probe(b, "TCP", c.ip, 8080, 1000)).ok, "the allowed peer still gets in");
  });

  it("drops packets from a pod that forges another pod's address, and counts them", async function () {
    const node = fx.nodes[0]!;
    using metrics = MetricsMap.openPinned(node.bpffsRoot);
    const before = metrics.get("drop_spoofed", "egress").packets;
    const pod = `/var/run/netns/${a.netns}`;
    await nsExec(a.netns, ["ip", "addr", "add", `${b.ip}/32`, "dev", "eth0"]);
    try {
      // ping from a with b's address as source: must not get anywhere.
      const spoofed = await nsExec(a.netns, [
        "ping",
        "-n",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        b.ip,
        c.ip,
      ]).then(
        () => true,
        () => false,
      );
      assert.equal(spoofed, false, "a spoofed ping got an answer");
    } finally {
      await nsExec(a.netns, ["ip", "addr", "del", `${b.ip}/32`, "dev", "eth0"]);
    }
    const after = metrics.get("drop_spoofed", "egress").packets;
    assert.ok(after - before >= 3n, `drop_spoofed went from ${before} to ${after}`);
    const text = await (await fetch(fx.lab.agentUrl(node, "/metrics", 9878))).text();
    const fam = parsePrometheus(text).find((f) => f.name === "skein_datapath_packets_total");
    const sample = fam?.metrics.find(
      (m) => m.labels?.reason === "drop_spoofed" && m.labels.direction === "egress",
    );
    assert.ok(Number(sample?.value ?? 0) >= 3, "exported to Prometheus");
    assert.ok((await fx.lab.probe(a, "TCP", c.ip, 8080)).ok, "honest traffic still flows");
    pod;
  });
});

describe("e2e: a full policy map is reported, not silently truncated", function () {
  this.timeout(120000);
  const fx = useLab(1, { agentArgs: ["--policy-map-entries=8"] });

  it("logs an error and sets skein_policy_map_overflow_entries", async function () {
    const node = fx.nodes[0]!;
    const target = await fx.lab.addPod({ namespace: "full", name: "t", node, labels: { app: "t" } });
    for (let i = 0; i < 4; i++)
      await fx.lab.addPod({ namespace: "full", name: `p${i}`, node, labels: { app: `p${i}` } });
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "many", namespace: "full" },
      spec: {
        podSelector: {},
        policyTypes: ["Ingress"],
        ingress: [
          {
            _from: [{ podSelector: {} }],
            ports: Array.from({ length: 6 }, (_v, i) => ({ port: 1000 + i, protocol: "TCP" })),
          },
        ],
      },
    });
    const overflow = async () => {
      const text = await (await fetch(fx.lab.agentUrl(node, "/metrics", 9878))).text();
      return Number(
        parsePrometheus(text).find((f) => f.name === "skein_policy_map_overflow_entries")?.metrics[0]
          ?.value ?? 0,
      );
    };
    await eventually("overflow reported", async () => (await overflow()) > 0, 5000);
    assert.match(readFileSync(node.agent!.log, "utf8"), /policy map full/);
    target;
  });
});
