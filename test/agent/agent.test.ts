/**
 * The agent's reconcile loop with a fake NodeDatapath and the real @kubernetes/client-node
 * informers against the lab API server (in process): what the cluster says ends up in the maps,
 * readiness waits for the programming, a failing step is retried and not marked applied, a full
 * resync applies again. No privileges; the real-kernel side is in test/e2e.
 */
import assert from "node:assert/strict";
import { CoreV1Api, KubeConfig, NetworkingV1Api } from "@kubernetes/client-node";
import { Agent, type AgentOptions } from "../../agent/agent.js";
import { createLogger } from "../../agent/log.js";
import { SysError } from "../../loader/errors.js";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../lab/apiserver/json.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import { ConfigFlag } from "../../maps/config.js";
import { Identity } from "../../maps/identities.js";
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

function pod(name: string, nodeName: string, ip: string, app: string): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "demo", labels: { app } },
    spec: {
      nodeName,
      containers: [{ name: "c", image: "x", ports: [{ name: "http", containerPort: 8080 }] }],
    },
    status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
  };
}

const allowBToA: JsonObject = {
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "a-from-b", namespace: "demo" },
  spec: {
    podSelector: { matchLabels: { app: "a" } },
    policyTypes: ["Ingress"],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "b" } } }], ports: [{ port: 8080 }] }],
  },
};

describe("agent: the reconcile loop against a fake datapath and the lab API server", function () {
  this.timeout(20_000);
  let server: LabApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let net: NetworkingV1Api;
  let fake: FakeNodeDatapath;
  let engine: PolicyEngine;
  let logs: string[];
  const agents: Agent[] = [];

  beforeEach(async function () {
    server = await startLabApiServer({
      log: () => undefined,
      seedObjects: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } },
        node(N1),
        node(N2),
        pod("a", "n1", "10.244.0.2", "a"),
        pod("b", "n2", "10.244.1.2", "b"),
      ],
    });
    kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    core = kc.makeApiClient(CoreV1Api);
    net = kc.makeApiClient(NetworkingV1Api);
    fake = new FakeNodeDatapath({ addresses: [N1.ip] });
    logs = [];
  });

  afterEach(async function () {
    for (const a of agents.splice(0)) await a.stop();
    await server.close();
  });

  function makeAgent(options: Partial<AgentOptions> = {}): Agent {
    engine = new PolicyEngine({ nodeName: options.nodeName ?? N1.name });
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
      datapath: {},
      verdictEvents: false,
      resyncIntervalMs: 3_600_000,
      debounceMs: 5,
      policy: engine,
      log: createLogger("debug", (l) => logs.push(l)),
      nodeDatapath: fake,
      ...options,
    });
    fake.ready = () => agent.ready;
    agents.push(agent);
    return agent;
  }

  /** Log lines with `msg`. */
  const lines = (msg: string): string[] => logs.filter((l) => l.includes(` ${msg}`));

  it("programs the node from the cluster: pods and nodes in the ipcache, then ready, then the conflist", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();

    const a = fake.ipcache.get("10.244.0.2/32");
    const b = fake.ipcache.get("10.244.1.2/32");
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.identity, engine.podIdentity("demo", "a"));
    assert.equal(a.tunnelIp, null, "a local pod is reached without the tunnel");
    assert.equal(a.flags, engine.localFlags("10.244.0.2"));
    assert.equal(b.identity, engine.podIdentity("demo", "b"));
    assert.equal(b.tunnelIp, N2.ip, "a remote pod is reached through its node");
    assert.equal(fake.ipcache.get(`${N2.ip}/32`)?.identity, Identity.remoteNode);
    assert.equal(fake.ipcache.get(`${N1.ip}/32`)?.identity, Identity.host);
    assert.equal(fake.ipcache.get(N2.cidr)?.tunnelIp, N2.ip);

    // The node's plumbing, in today's order, and nothing before the maps were open.
    const order = [
      "load",
      "moveAttachments",
      "openMaps",
      `uplinkFor ${N1.ip}`,
      `ensureOverlayDevice skn_vxlan ${N1.ip}`,
      "attachOverlayPrograms skn_vxlan",
      "ensureForwardingSysctls skn_vxlan",
      "attachUplinkPrograms eth0",
      "writeConfig flags=0 uplink=2",
      `syncOverlayRoutes skn_vxlan ${N1.ip} ${N2.cidr}`,
      `tunnelEndpointsOnLink eth0 ${N2.ip}`,
      `writeConfig flags=${ConfigFlag.tunnelOnLink} uplink=2`,
      `ensureMasquerade ${N1.cidr} ${N1.cidr},${N2.cidr} skn_vxlan 4789`,
      "localAddresses",
      "ipcache set",
      "writeConflist",
    ];
    const at = order.map((p) => fake.first(p));
    assert.ok(
      at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1]!)),
      `calls out of order: ${JSON.stringify(fake.calls.map((c) => c.what))}`,
    );
    assert.equal(fake.named("detachUplinkPrograms").length, 0);

    // Readiness: false for every write of the first programming, the conflist last.
    const conflist = fake.first("writeConflist");
    assert.ok(fake.calls.slice(0, conflist + 1).every((c) => !c.ready));
    assert.ok(fake.last("ipcache set") < conflist);
    assert.deepEqual(fake.conflists, [{ podCidr: N1.cidr, bpffsRoot: "/fake/bpffs", mtu: 1450 }]);
    assert.equal(fake.config?.nodeIp, N1.ip);
    assert.equal(fake.config.vxlanIfindex, 7);

    const status = agent.status();
    assert.equal(status.ready, true);
    assert.equal(status.reason, "");
    assert.deepEqual(status.encap, { mode: "bpf", uplink: "eth0" });
    assert.equal(status.overlay?.mtu, 1450);
    assert.equal(status.maps.find((m) => m.name === "skn_ipcache")?.entries, fake.ipcache.entriesByKey.size);
    assert.equal(lines("node ready").length, 1);
    assert.equal(lines("CNI configuration written").length, 1);
  });

  it("follows pod and NetworkPolicy events into the ipcache and policy ports, by diff", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    assert.equal(fake.policy.entriesByKey.size, 0, "no policy, no entries");
    const overlayCalls = fake.named("ensureOverlayDevice").length;

    await core.createNamespacedPod({ namespace: "demo", body: pod("c", "n1", "10.244.0.3", "c") });
    await waitFor(() => fake.ipcache.get("10.244.0.3/32") !== undefined, "pod c in the ipcache");
    assert.equal(fake.ipcache.get("10.244.0.3/32")?.identity, engine.podIdentity("demo", "c"));

    await net.createNamespacedNetworkPolicy({ namespace: "demo", body: allowBToA });
    await waitFor(() => fake.policy.entriesByKey.size > 0, "policy entries");
    await waitFor(
      () => fake.policy.entriesByKey.size === engine.desiredPolicy().size,
      "the policy port equal to the compiler's output",
    );
    for (const [k, { entry }] of engine.desiredPolicy())
      assert.deepEqual(fake.policy.get(k), entry, `policy entry ${k}`);
    assert.ok(
      (fake.ipcache.get("10.244.0.2/32")?.flags ?? 0) !== 0,
      "a, now selected for ingress, carries an enforcement flag",
    );

    await core.deleteNamespacedPod({ namespace: "demo", name: "c" });
    await waitFor(() => fake.ipcache.get("10.244.0.3/32") === undefined, "pod c gone from the ipcache");
    await net.deleteNamespacedNetworkPolicy({ namespace: "demo", name: "a-from-b" });
    await waitFor(() => fake.policy.entriesByKey.size === 0, "policy entries removed");

    // Pods and policies never touch the node's plumbing.
    assert.equal(fake.named("ensureOverlayDevice").length, overlayCalls);
    assert.equal(fake.named("writeConflist").length, 1);
    assert.equal(fake.named("ipcache delete 10.244.0.3/32").length, 1, "one delete, no flush-and-refill");
  });

  it("writes only the entries an event changed: a pod's add, relabel and delete touch its own address", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    await net.createNamespacedNetworkPolicy({ namespace: "demo", body: allowBToA });
    await waitFor(
      () =>
        fake.policy.entriesByKey.size === engine.desiredPolicy().size && fake.policy.entriesByKey.size > 0,
      "policy",
    );
    const before = fake.calls.length;
    const localAddressReads = fake.named("localAddresses").length;

    await core.createNamespacedPod({ namespace: "demo", body: pod("d", "n2", "10.244.1.9", "d") });
    await waitFor(() => fake.ipcache.get("10.244.1.9/32") !== undefined, "pod d in the ipcache");
    const d = await core.readNamespacedPod({ namespace: "demo", name: "d" });
    (d.metadata ??= {}).labels = { app: "b" }; // now a peer of a's policy
    await core.replaceNamespacedPod({ namespace: "demo", name: "d", body: d });
    await waitFor(
      () => fake.ipcache.get("10.244.1.9/32")?.identity === engine.podIdentity("demo", "b"),
      "d relabelled",
    );
    await core.deleteNamespacedPod({ namespace: "demo", name: "d" });
    await waitFor(() => fake.ipcache.get("10.244.1.9/32") === undefined, "d gone");

    const writes = fake.calls.slice(before).map((c) => c.what);
    assert.deepEqual(
      writes.filter((w) => w.startsWith("ipcache ")),
      ["ipcache set 10.244.1.9/32", "ipcache set 10.244.1.9/32", "ipcache delete 10.244.1.9/32"],
      "the ipcache writes are d's own, nothing else rewritten",
    );
    // d as b is one more identity allowed into a: the policy writes are those keys, then their removal.
    assert.equal(
      writes.filter((w) => w.startsWith("policy set")).length,
      writes.filter((w) => w.startsWith("policy delete")).length,
    );
    assert.equal(fake.policy.entriesByKey.size, engine.desiredPolicy().size);
    assert.equal(fake.named("localAddresses").length, localAddressReads, "no address read per pod event");
  });

  it("pods sharing an address (stale objects): the smallest namespace/name owns it, the other takes over", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    const ip = "10.244.1.7";
    await core.createNamespacedPod({ namespace: "demo", body: pod("y", "n2", ip, "c") });
    await waitFor(() => fake.ipcache.get(`${ip}/32`)?.identity === engine.podIdentity("demo", "y"), "y");
    await core.createNamespacedPod({ namespace: "demo", body: pod("x", "n2", ip, "b") });
    await waitFor(
      () => fake.ipcache.get(`${ip}/32`)?.identity === engine.podIdentity("demo", "x"),
      "x owns it",
    );
    assert.notEqual(engine.podIdentity("demo", "x"), engine.podIdentity("demo", "y"));
    assert.deepEqual(agent.podsByIp().get(ip), { namespace: "demo", name: "x", node: "n2" });
    await core.deleteNamespacedPod({ namespace: "demo", name: "x" });
    await waitFor(
      () => fake.ipcache.get(`${ip}/32`)?.identity === engine.podIdentity("demo", "y"),
      "y again",
    );
    assert.deepEqual(agent.podsByIp().get(ip), { namespace: "demo", name: "y", node: "n2" });
    await core.createNamespacedPod({ namespace: "demo", body: pod("z", "n2", ip, "b") });
    await core.deleteNamespacedPod({ namespace: "demo", name: "y" });
    await waitFor(() => agent.podsByIp().get(ip)?.name === "z", "z, the last one");
    await waitFor(
      () => fake.ipcache.get(`${ip}/32`)?.identity === engine.podIdentity("demo", "z"),
      "z's identity",
    );
    await core.deleteNamespacedPod({ namespace: "demo", name: "z" });
    await waitFor(() => fake.ipcache.get(`${ip}/32`) === undefined, "the address gone");
    assert.equal(agent.podsByIp().has(ip), false);
  });

  it("logs a failing step with its errno, code and cause, keeps it unapplied and retries it; ready only after", async function () {
    const cause = new SysError("netlink send", 1, "nft");
    fake.failNext("ensureMasquerade", new Error("nft: cannot apply the table", { cause }), 3);
    const agent = makeAgent();
    await agent.start();
    await waitFor(() => fake.named("ensureMasquerade").length === 4, "three failures and a retry");
    await agent.whenReady();

    const failed = lines("reconcile failed");
    assert.equal(failed.length, 3);
    assert.match(failed[0]!, /step=masquerade/);
    assert.match(failed[0]!, /error="nft: cannot apply the table"/);
    assert.match(failed[0]!, /errno=1 code=EPERM/);
    assert.match(failed[0]!, /cause="netlink send on nft: EPERM \(Operation not permitted\)"/);

    // The steps before it applied once; it ran again each pass; nothing after it ran until it worked.
    assert.equal(fake.named("ensureOverlayDevice").length, 1);
    assert.equal(fake.named("syncOverlayRoutes").length, 1);
    const masq = fake.calls
      .map((c, i) => [c, i] as const)
      .filter(([c]) => c.what.startsWith("ensureMasquerade"));
    assert.ok(fake.first("localAddresses") > masq[3]![1], "the ipcache waits for the failing step");
    assert.ok(fake.first("writeConflist") > masq[3]![1]);
    assert.ok(
      masq.every(([c]) => !c.ready),
      "not ready while the step failed",
    );
    assert.equal(agent.ready, true);
  });

  it("leaves the policy step unapplied when map writes fail, and writes it on the next pass", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    fake.policy.failing = new SysError("map update", 7, "skn_policy");
    await net.createNamespacedNetworkPolicy({ namespace: "demo", body: allowBToA });
    await waitFor(() => lines("map writes failed").length > 0, "the failed writes logged");
    assert.match(lines("map writes failed")[0]!, /map=skn_policy failed=\d+ error=.* errno=7 code=E2BIG/);
    assert.equal(fake.policy.entriesByKey.size, 0);
    const version = engine.version;

    // Any later pass writes them, though the compiler's output did not change: a Node event here.
    fake.policy.failing = undefined;
    const n2 = await core.readNode({ name: "n2" });
    (n2.metadata ??= {}).labels = { touched: "yes" };
    await core.replaceNode({ name: "n2", body: n2 });
    await waitFor(
      () => fake.policy.entriesByKey.size === engine.desiredPolicy().size,
      "the policy entries written",
    );
    assert.equal(engine.version, version);
  });

  it("applies every step again on a full resync (but the conflist), restoring what drifted", async function () {
    const agent = makeAgent({ resyncIntervalMs: 300 });
    await agent.start();
    await agent.whenReady();
    const before = {
      overlay: fake.named("ensureOverlayDevice").length,
      routes: fake.named("syncOverlayRoutes").length,
      masq: fake.named("ensureMasquerade").length,
      onLink: fake.named("tunnelEndpointsOnLink").length,
    };
    // Someone deletes an entry behind the agent's back: only a resync (re-reading the map) sees it.
    fake.ipcache.entriesByKey.delete("10.244.1.2/32");
    await waitFor(() => fake.ipcache.get("10.244.1.2/32") !== undefined, "the entry restored", 5000);
    assert.ok(fake.named("ensureOverlayDevice").length > before.overlay);
    assert.ok(fake.named("syncOverlayRoutes").length > before.routes);
    assert.ok(fake.named("ensureMasquerade").length > before.masq);
    assert.ok(fake.named("tunnelEndpointsOnLink").length > before.onLink);
    assert.equal(fake.named("writeConflist").length, 1, "the conflist is written once");
  });

  it("runs a full resync's plumbing in its own lane: events are programmed meanwhile, then the maps are audited", async function () {
    this.timeout(30_000);
    const agent = makeAgent({ resyncIntervalMs: 300 });
    await agent.start();
    await agent.whenReady();
    // Every child process now takes 3 s: a resync's plumbing lane is busy for many seconds.
    fake.asyncDelayMs = 3000;
    await new Promise((r) => setTimeout(r, 700));
    const asked = performance.now();
    await core.createNamespacedPod({ namespace: "demo", body: pod("lane", "n2", "10.244.1.77", "a") });
    await waitFor(
      () => fake.ipcache.get("10.244.1.77/32") !== undefined,
      "the pod's entry while the lane waits",
      2500,
    );
    const ms = performance.now() - asked;
    assert.ok(ms < 2500, `programmed after ${ms.toFixed(0)} ms`);
    fake.asyncDelayMs = 0;
    // The lane ends with the audit of both maps (nothing drifted here).
    await waitFor(() => lines("map audited").length >= 2, "both maps audited", 15_000);
    assert.ok(lines("map audited").some((l) => l.includes("map=skn_ipcache")));
    assert.ok(lines("map audited").some((l) => l.includes("map=skn_policy")));
  });

  it("is not ready without its Node, and becomes ready when it appears", async function () {
    const agent = makeAgent({ nodeName: "n3" });
    fake.addresses = ["198.18.0.13"];
    await agent.start();
    await waitFor(() => lines("node not ready").length > 0, "not ready logged");
    assert.equal(agent.status().reason, "node n3 not found in the cluster");
    assert.equal(agent.ready, false);
    assert.equal(fake.first("uplinkFor"), -1, "nothing done to the node");

    await core.createNode({ body: node({ name: "n3", ip: "198.18.0.13", cidr: "10.244.2.0/24" }) });
    await agent.whenReady();
    assert.deepEqual(
      fake.conflists.map((c) => c.podCidr),
      ["10.244.2.0/24"],
    );
    assert.equal(fake.ipcache.get("10.244.0.2/32")?.tunnelIp, N1.ip);
  });

  it("with --encap device and Service load balancing: the uplink keeps its programs (NodePort), the config no uplink", async function () {
    fake.uplinkHooksAlways = true;
    const agent = makeAgent({ encap: "device" });
    await agent.start();
    await agent.whenReady();
    assert.deepEqual(
      fake.named("attachUplinkPrograms").map((c) => c.what),
      ["attachUplinkPrograms eth0"],
    );
    assert.equal(fake.named("detachUplinkPrograms").length, 0);
    assert.equal(fake.config?.uplinkIfindex, 0);
    await agent.stop();
  });

  it("with --encap device: no uplink program, no uplink in the config, no on-link check", async function () {
    const agent = makeAgent({ encap: "device" });
    await agent.start();
    await agent.whenReady();
    assert.equal(fake.named("attachUplinkPrograms").length, 0);
    assert.deepEqual(
      fake.named("detachUplinkPrograms").map((c) => c.what),
      ["detachUplinkPrograms eth0"],
    );
    assert.ok(fake.first("writeConfig") < fake.first("detachUplinkPrograms"), "removed after the config");
    assert.equal(fake.config?.uplinkIfindex, 0);
    assert.equal(fake.named("tunnelEndpointsOnLink").length, 0);
    assert.deepEqual(agent.status().encap, { mode: "device", uplink: null });

    await agent.stop();
    assert.equal(fake.mapsOpen, false, "stop closes the maps");
    assert.equal(fake.named("detachUplinkPrograms").length, 1, "and leaves the datapath as it is");
  });

  it("with --routing native: uplink programs both ways, direct routes for nodes on the uplink's segment, BGP's for the others, pods at the uplink's MTU", async function () {
    fake.connected = ["198.18.0.0/24"];
    const agent = makeAgent({ routing: "native" });
    await agent.start();
    await agent.whenReady();
    assert.deepEqual(
      fake.named("attachUplinkPrograms").map((c) => c.what),
      ["attachUplinkPrograms eth0 native"],
    );
    assert.ok(fake.config !== undefined && fake.config.uplinkIfindex > 0);
    assert.deepEqual(
      fake.named("syncNativeRoutes").map((c) => c.what),
      [`syncNativeRoutes eth0 ${N1.ip} ${N2.cidr}>${N2.ip} `],
    );
    assert.ok(
      fake
        .named("syncOverlayRoutes skn_vxlan")
        .every((c) => c.what === `syncOverlayRoutes skn_vxlan ${N1.ip} `),
      "no route through the VXLAN device",
    );
    assert.deepEqual(
      fake.conflists.map((c) => c.mtu),
      [1500],
      "pods get the uplink's MTU, not the overlay's 1450",
    );
    assert.equal(agent.status().routing, "native");

    // A node in another subnet: no direct route; left to BGP.
    await core.createNode({ body: node({ name: "n3", ip: "198.19.0.13", cidr: "10.244.2.0/24" }) });
    await waitFor(() => fake.named("syncNativeRoutes").length === 2, "routes synced again");
    assert.equal(
      fake.named("syncNativeRoutes")[1]?.what,
      `syncNativeRoutes eth0 ${N1.ip} ${N2.cidr}>${N2.ip} ${N2.ip}`,
      "n3 is not direct; the managed neighbour of n2 is kept",
    );
  });

  it("with --routing vxlan: the VXLAN routes, native routes removed, pods at the overlay's MTU", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    assert.deepEqual(
      fake.named("attachUplinkPrograms").map((c) => c.what),
      ["attachUplinkPrograms eth0"],
    );
    assert.equal(fake.named("syncNativeRoutes").length, 0);
    assert.ok(fake.named("removeNativeRoutes").length > 0);
    assert.deepEqual(
      fake.conflists.map((c) => c.mtu),
      [1450],
    );
    assert.equal(agent.status().routing, "vxlan");
  });

  it("decides the on-link flag again after the node moved, and when remote nodes change", async function () {
    const agent = makeAgent();
    await agent.start();
    await agent.whenReady();
    assert.equal((fake.config?.flags ?? 0) & ConfigFlag.tunnelOnLink, ConfigFlag.tunnelOnLink);

    // A third node behind a router: the shortcut goes.
    fake.onLink = false;
    await core.createNode({ body: node({ name: "n3", ip: "198.19.0.13", cidr: "10.244.2.0/24" }) });
    await waitFor(() => ((fake.config?.flags ?? 0) & ConfigFlag.tunnelOnLink) === 0, "on-link cleared");
    assert.ok(fake.named(`tunnelEndpointsOnLink eth0 ${N2.ip},198.19.0.13`).length > 0);

    // The node's address moves to another interface: skn_config written anew, flag decided again.
    fake.onLink = true;
    fake.addresses = ["198.18.0.21"];
    fake.uplink = { ifname: "eth1", ifindex: 3, mtu: 9000 };
    const checks = fake.named("tunnelEndpointsOnLink").length;
    const n1 = await core.readNode({ name: "n1" });
    n1.status = { addresses: [{ type: "InternalIP", address: "198.18.0.21" }] };
    await core.replaceNodeStatus({ name: "n1", body: n1 });
    await waitFor(() => fake.config?.nodeIp === "198.18.0.21", "config for the new address");
    await waitFor(() => fake.named("tunnelEndpointsOnLink").length > checks, "on-link decided again");
    await waitFor(() => ((fake.config?.flags ?? 0) & ConfigFlag.tunnelOnLink) !== 0, "on-link set");
    assert.ok(fake.named("detachUplinkPrograms eth0").length > 0, "the old uplink's program removed");
    assert.deepEqual(agent.status().encap, { mode: "bpf", uplink: "eth1" });
    await waitFor(() => fake.conflists.length === 2, "conflist for the new MTU");
    assert.equal(fake.conflists[1]?.mtu, 8950);
    // The overlay routes' `src` follows the new address at once, not at the next full resync.
    await waitFor(
      () => fake.named("syncOverlayRoutes").some((c) => c.what.includes(" 198.18.0.21 ")),
      "routes with the new source address",
    );
  });
});
