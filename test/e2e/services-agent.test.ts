/**
 * The agent with --service-lb bpf on lab nodes: real informers against the lab API server, the
 * real pinned skn_lb_* maps, real packets. A Service created in the API is in every node's
 * skn_lb_svc within 1 s; an EndpointSlice update changes the slots; a pod reaches the ClusterIP
 * and sees both backends; a deleted Service's entries are gone. With --service-lb off the maps stay
 * empty.
 */
import assert from "node:assert/strict";
import { DiscoveryV1Api, type V1EndpointSlice } from "@kubernetes/client-node";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { LbSlotMap } from "../../maps/lb-slot.js";
import { LbSvcMap } from "../../maps/lb-svc.js";
import { eventually, useLab } from "../helpers/lab.js";

const NS = "svc-e2e";

function svcEntry(node: LabNode, addr: string, port: number) {
  using m = LbSvcMap.openPinned(node.bpffsRoot);
  return m.get({ addr, port, proto: 6 });
}

function slotCount(node: LabNode, svcId: number): number {
  using m = LbSlotMap.openPinned(node.bpffsRoot);
  let n = 0;
  for (const [k] of m.entries()) if (k.svcId === svcId) n++;
  return n;
}

function slice(name: string, pods: readonly LabPod[]): V1EndpointSlice {
  return {
    metadata: { name: `${name}-x`, namespace: NS, labels: { "kubernetes.io/service-name": name } },
    addressType: "IPv4",
    endpoints: pods.map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true } })),
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

describe("e2e: the agent programs Services into the pinned maps (--service-lb bpf)", function () {
  this.timeout(120000);
  const fx = useLab(2, { agentArgs: ["--service-lb=bpf"] });
  const pods: LabPod[] = [];

  before(async function () {
    this.timeout(120000);
    const [n1, n2] = fx.nodes as [LabNode, LabNode];
    await fx.lab.ensureNamespace(NS);
    pods.push(await fx.lab.addPod({ namespace: NS, name: "client", node: n1 }));
    pods.push(await fx.lab.addPod({ namespace: NS, name: "web-a", node: n1 }));
    pods.push(await fx.lab.addPod({ namespace: NS, name: "web-b", node: n2 }));
  });

  it("Service + EndpointSlice → skn_lb_svc on every node within 1 s; slice update → slots; both backends answer; delete → gone", async function () {
    const [client, a, b] = pods as [LabPod, LabPod, LabPod];
    const core = fx.lab.core();
    const discovery = fx.lab.kubeConfig().makeApiClient(DiscoveryV1Api);
    const t0 = Date.now();
    const svc = await core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: "web" },
        spec: { ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }] },
      },
    });
    const ip = svc.spec?.clusterIP ?? "";
    await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice("web", [a]) });
    for (const n of fx.nodes)
      await eventually(
        `${n.name}: ${ip}:80 with one backend`,
        () => svcEntry(n, ip, 80)?.count === 1,
        5000,
        5,
      );
    const ms = Date.now() - t0;
    assert.ok(ms < 1000, `programmed on both nodes ${ms} ms after the Service was created`);

    await discovery.replaceNamespacedEndpointSlice({
      namespace: NS,
      name: "web-x",
      body: slice("web", [a, b]),
    });
    for (const n of fx.nodes) {
      await eventually(`${n.name}: two backends`, () => svcEntry(n, ip, 80)?.count === 2, 5000, 5);
      assert.equal(slotCount(n, svcEntry(n, ip, 80)?.svcId ?? 0), 2);
    }
    const n1 = fx.nodes[0]!;
    assert.equal(svcEntry(n1, ip, 80)?.localCount, 1, "web-a is local to n1");

    // Real packets: the client reaches the ClusterIP and, over some connections, both backends.
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await fx.lab.probe(client, "TCP", ip, 80, 2000);
      assert.ok(r.ok, `connection ${i} to ${ip}:80: ${r.error ?? ""}`);
      if (r.reply) seen.add(r.reply.name);
    }
    assert.deepEqual([...seen].sort(), [`${NS}/web-a`, `${NS}/web-b`]);

    await core.deleteNamespacedService({ namespace: NS, name: "web" });
    for (const n of fx.nodes)
      await eventually(`${n.name}: ${ip}:80 removed`, () => svcEntry(n, ip, 80) === undefined, 5000, 5);
    await discovery.deleteNamespacedEndpointSlice({ namespace: NS, name: "web-x" });
  });

  it("the agent's metrics count the Services and the programming latency", async function () {
    const n1 = fx.nodes[0]!;
    const text = await (await fetch(fx.lab.agentUrl(n1, "/metrics", 9878))).text();
    assert.match(text, /^skein_service_programming_latency_seconds_count [1-9]/m);
    assert.match(text, /^skein_services 0$/m, "the Service was deleted");
  });
});
