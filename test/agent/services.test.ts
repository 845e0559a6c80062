/**
 * The agent's Service step: the real informers against the lab API server (in process), the maps
 * through the fake datapath's recording ports. Services and EndpointSlices end up in skn_lb_*, an
 * event writes only its Service's entries, "off" keeps the maps empty. No privileges; the pinned
 * maps are in test/e2e/services-agent.test.ts.
 */
import assert from "node:assert/strict";
import { CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice } from "@kubernetes/client-node";
import { Agent, type AgentOptions } from "../../agent/agent.js";
import { createLogger } from "../../agent/log.js";
import { ServiceLbState } from "../../agent/services.js";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../lab/apiserver/json.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import { LbSvcFlag } from "../../maps/lb-svc.js";
import { PolicyEngine } from "../../policy/engine.js";
import { waitFor } from "../lab/apiserver/helpers.js";
import { FakeNodeDatapath } from "./fake-node-datapath.js";

const N1 = { name: "n1", ip: "198.18.0.11", cidr: "10.244.0.0/24" };
const N2 = { name: "n2", ip: "198.18.0.12", cidr: "10.244.1.0/24" };

function node(n: { name: string; ip: string; cidr: string }): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: n.name },
    spec: { podCIDR: n.cidr },
    status: { addresses: [{ type: "InternalIP", address: n.ip }] },
  };
}

function service(name: string, clusterIP: string, nodePort?: number): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "demo" },
    spec: {
      ...(nodePort === undefined ? {} : { type: "NodePort" }),
      clusterIP,
      clusterIPs: [clusterIP],
      selector: { app: name },
      ports: [
        {
          name: "http",
          port: 80,
          targetPort: 8080,
          protocol: "TCP",
          ...(nodePort === undefined ? {} : { nodePort }),
        },
      ],
    },
  };
}

function slice(svc: string, endpoints: { ip: string; node: string; ready?: boolean }[]): V1EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${svc}-abc`, namespace: "demo", labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node,
      conditions: { ready: e.ready ?? true },
    })),
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

describe("agent: Services and EndpointSlices into the Service maps (fake datapath, lab API server)", function () {
  this.timeout(20_000);
  let server: LabApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;
  let fake: FakeNodeDatapath;
  const agents: Agent[] = [];

  beforeEach(async function () {
    server = await startLabApiServer({
      log: () => undefined,
      seedObjects: [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } }, node(N1), node(N2)],
    });
    kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    core = kc.makeApiClient(CoreV1Api);
    discovery = kc.makeApiClient(DiscoveryV1Api);
    fake = new FakeNodeDatapath({ addresses: [N1.ip] });
  });

  afterEach(async function () {
    for (const a of agents.splice(0)) await a.stop();
    await server.close();
  });

  function makeAgent(options: Partial<AgentOptions> = {}): Agent {
    const agent = new Agent({
      nodeName: N1.name,
      kubeconfig: kc,
      bpffsRoot: "/fake/bpffs",
      cniConfDir: "/fake/net.d",
      vxlanDevice: "skn_vxlan",
      vxlanPort: 4789,
      encap: "bpf",
      routing: "vxlan",
      clusterCidrs: [],
      datapath: { serviceLb: "bpf" },
      verdictEvents: false,
      resyncIntervalMs: 3_600_000,
      debounceMs: 5,
      policy: new PolicyEngine({ nodeName: N1.name }),
      log: createLogger("error", () => undefined),
      nodeDatapath: fake,
      ...options,
    });
    fake.ready = () => agent.ready;
    agents.push(agent);
    return agent;
  }

  const svcEntry = (key: string) => fake.lb.svc.get(key);

  it("programs a Service's ClusterIP and NodePort frontends, local backends first, and follows slice updates and deletion", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    await core.createNamespacedService({ namespace: "demo", body: service("web", "10.96.0.10", 30080) });
    await discovery.createNamespacedEndpointSlice({
      namespace: "demo",
      body: slice("web", [
        { ip: "10.244.1.2", node: "n2" },
        { ip: "10.244.0.2", node: "n1" },
      ]),
    });
    await waitFor(() => svcEntry("10.96.0.10:80/6")?.count === 2, "ClusterIP with two backends");
    const cip = svcEntry("10.96.0.10:80/6")!;
    assert.equal(cip.localCount, 1);
    const first = fake.lb.slot.get(`${cip.svcId}#0`)!.backendId;
    assert.equal(fake.lb.backend.get(String(first))?.addr, "10.244.0.2", "the local backend in slot 0");
    assert.equal(fake.lb.backend.get(String(first))?.port, 8080);
    const np = svcEntry(`${N1.ip}:30080/6`);
    assert.ok(np !== undefined, "a NodePort frontend on the node's InternalIP");
    assert.ok((np.flags & LbSvcFlag.nodePort) !== 0);
    assert.deepEqual(fake.lb.revnat.get(String(cip.svcId)), { addr: "10.96.0.10", port: 80, proto: 6 });

    // One endpoint not ready: the slots shrink to one.
    const s = await discovery.readNamespacedEndpointSlice({ namespace: "demo", name: "web-abc" });
    s.endpoints[0]!.conditions = { ready: false };
    await discovery.replaceNamespacedEndpointSlice({ namespace: "demo", name: "web-abc", body: s });
    await waitFor(() => svcEntry("10.96.0.10:80/6")?.count === 1, "one backend left");
    assert.equal(fake.lb.slot.get(`${cip.svcId}#1`), undefined, "slot 1 removed");
    const text = await agent.metrics.text();
    assert.match(text, /^skein_services 1$/m);
    assert.match(text, /^skein_service_frontends 2$/m);
    assert.match(text, /^skein_service_programming_latency_seconds_count [1-9]/m);

    await core.deleteNamespacedService({ namespace: "demo", name: "web" });
    await waitFor(() => fake.lb.svc.entriesByKey.size === 0, "frontends removed");
    await discovery.deleteNamespacedEndpointSlice({ namespace: "demo", name: "web-abc" });
    await waitFor(() => fake.lb.backend.entriesByKey.size === 0, "backends removed");
    assert.equal(fake.lb.slot.entriesByKey.size, 0);
    assert.equal(fake.lb.revnat.entriesByKey.size, 0);
    assert.equal(fake.lb.maglev.entriesByKey.size, 0);
  });

  it("writes only the changed Service's entries: 50 Services exist, one slice update touches that Service alone", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    for (let i = 0; i < 50; i++) {
      await core.createNamespacedService({ namespace: "demo", body: service(`s${i}`, `10.96.1.${i + 1}`) });
      await discovery.createNamespacedEndpointSlice({
        namespace: "demo",
        body: slice(`s${i}`, [
          { ip: `10.244.0.${i + 2}`, node: "n1" },
          { ip: `10.244.1.${i + 2}`, node: "n2" },
        ]),
      });
    }
    await waitFor(
      () => [...fake.lb.svc.entriesByKey.values()].filter(([, v]) => v.count === 2).length === 50,
      "50 Services with two backends",
      10_000,
    );
    const before = fake.calls.length;
    const s = await discovery.readNamespacedEndpointSlice({ namespace: "demo", name: "s7-abc" });
    s.endpoints.push({ addresses: ["10.244.1.200"], nodeName: "n2", conditions: { ready: true } });
    await discovery.replaceNamespacedEndpointSlice({ namespace: "demo", name: "s7-abc", body: s });
    await waitFor(() => svcEntry("10.96.1.8:80/6")?.count === 3, "s7 with three backends");
    const writes = fake.calls
      .slice(before)
      .map((c) => c.what)
      .filter((w) => w.startsWith("lb_"));
    const id = svcEntry("10.96.1.8:80/6")!.svcId;
    // The new backend, its slot, and the frontend's count: nothing of the 49 others.
    assert.deepEqual(
      writes.filter((w) => !w.startsWith("lb_backend")),
      [`lb_slot set ${id}#2`, "lb_svc set 10.96.1.8:80/6"],
      writes.join("\n"),
    );
    assert.equal(writes.filter((w) => w.startsWith("lb_backend set")).length, 1);
  });

  it("with serviceLb off: no Service watch, and what an earlier agent left in the maps is removed", async function () {
    fake.lb.svc.set(
      { addr: "10.96.0.99", port: 53, proto: 17 },
      {
        svcId: 7,
        count: 0,
        localCount: 0,
        flags: 0,
        affinityTimeoutS: 0,
      },
    );
    fake.lb.revnat.set(7, { addr: "10.96.0.99", port: 53, proto: 17 });
    await core.createNamespacedService({ namespace: "demo", body: service("web", "10.96.0.10") });
    const agent = makeAgent({ datapath: { serviceLb: "off" } });
    await agent.start();
    await agent.whenReady();
    assert.equal(fake.lb.svc.entriesByKey.size, 0, "frontends of the earlier agent removed");
    assert.equal(fake.lb.revnat.entriesByKey.size, 0);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.lb.svc.entriesByKey.size, 0, "the Service is not programmed");
  });

  it("adopts the ids in the pinned maps after a restart: an unchanged Service keeps its svc_id and backend ids, nothing rewritten", async function () {
    await core.createNamespacedService({ namespace: "demo", body: service("web", "10.96.0.10") });
    await discovery.createNamespacedEndpointSlice({
      namespace: "demo",
      body: slice("web", [{ ip: "10.244.1.2", node: "n2" }]),
    });
    const first = makeAgent();
    await first.start();
    await waitFor(() => svcEntry("10.96.0.10:80/6")?.count === 1, "programmed");
    const id = svcEntry("10.96.0.10:80/6")!.svcId;
    await first.stop();
    agents.splice(agents.indexOf(first), 1);
    const before = fake.calls.length;
    const second = makeAgent();
    await second.start();
    await second.whenReady();
    assert.equal(svcEntry("10.96.0.10:80/6")?.svcId, id);
    assert.deepEqual(
      fake.calls.slice(before).filter((c) => c.what.startsWith("lb_")),
      [],
      "no Service map write after the restart",
    );
  });
});

describe("agent: ServiceLbState without an API server", function () {
  it("a frontend claimed by two Services (an externalIP) goes to the first; the second gets it when the first lets go", function () {
    const fake = new FakeNodeDatapath({ addresses: [N1.ip] });
    const state = new ServiceLbState("n1", fake.lb);
    state.adopt(fake.lb);
    const svc = (name: string, cip: string) => ({
      namespace: "demo",
      name,
      clusterIPs: [cip],
      externalIPs: ["203.0.113.7"],
      ports: [{ name: "http", port: 80, protocol: "TCP" as const }],
    });
    state.upsertService(svc("a", "10.96.0.1"));
    state.upsertService(svc("b", "10.96.0.2"));
    state.apply();
    const ext = fake.lb.svc.get("203.0.113.7:80/6");
    assert.ok(ext !== undefined);
    const owner = (id: number) => state.origins().find((o) => o.svcId === id)?.name;
    assert.equal(owner(ext.svcId), "a");
    assert.equal(state.problems().length, 1);
    assert.match(state.problems()[0]!, /demo\/b: ExternalIP 203\.0\.113\.7:80\/6 is already demo\/a's/);
    state.deleteService("demo", "a");
    state.apply();
    assert.equal(fake.lb.svc.get("10.96.0.1:80/6"), undefined);
    const now = fake.lb.svc.get("203.0.113.7:80/6");
    assert.ok(now !== undefined);
    assert.equal(owner(now.svcId), "b", "b holds the externalIP now");
    assert.deepEqual(state.problems(), []);
  });
});

describe("agent: ServiceLbState at 10,000 Services (fake maps)", function () {
  this.timeout(60_000);

  it("one EndpointSlice event rebuilds and writes only its Service: cost independent of the other 9,999", function () {
    const fake = new FakeNodeDatapath({ addresses: [N1.ip] });
    const state = new ServiceLbState("n1", fake.lb);
    state.adopt(fake.lb);
    const slice = (i: number, extra = 0) => ({
      namespace: "demo",
      serviceName: `s${i}`,
      addressType: "IPv4" as const,
      endpoints: [
        { addresses: [`10.244.${i % 200}.${2 + (i % 250)}`], nodeName: "n1" },
        { addresses: [`10.245.${i % 200}.${2 + (i % 250)}`], nodeName: "n2" },
        ...Array.from({ length: extra }, (_v, k) => ({ addresses: [`10.246.0.${k + 2}`], nodeName: "n2" })),
      ],
      ports: [{ name: "http", port: 8080, protocol: "TCP" as const }],
    });
    for (let i = 0; i < 10_000; i++) {
      state.upsertService({
        namespace: "demo",
        name: `s${i}`,
        clusterIPs: [`10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
      });
      state.upsertSlice(`s${i}-x`, slice(i));
    }
    const t0 = performance.now();
    const first = state.apply();
    const fullMs = performance.now() - t0;
    assert.equal(first.failed, 0);
    assert.equal(fake.lb.svc.entriesByKey.size, 10_000);
    const times: number[] = [];
    for (let k = 0; k < 20; k++) {
      const writes = fake.lb.svc.writes + fake.lb.slot.writes + fake.lb.backend.writes;
      const t = performance.now();
      state.upsertSlice("s77-x", slice(77, (k % 2) + 1));
      const r = state.apply();
      times.push(performance.now() - t);
      assert.equal(r.rebuilt, 1);
      const after = fake.lb.svc.writes + fake.lb.slot.writes + fake.lb.backend.writes;
      assert.ok(after - writes <= 4, `one endpoint more or less: ${after - writes} writes`);
    }
    times.sort((a, b) => a - b);
    const median = times[10] ?? 0;
    // Printed for the record; bounded loosely (the machine is shared).
    process.stdout.write(
      `      10,000 Services: first whole pass ${fullMs.toFixed(0)} ms; one slice event ${median.toFixed(2)} ms (median of 20)\n`,
    );
    assert.ok(median < 20, `one event took ${median} ms`);
  });
});
