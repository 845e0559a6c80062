/**
 * The real @kubernetes/client-node 1.4 code (informers, typed API clients, KubernetesObjectApi)
 * against the lab API server.
 */
import { strict as assert } from "node:assert";
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubernetesListObject,
  type ObjectCache,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { kubeconfigYaml } from "../../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../../lab/apiserver/json.js";
import type { ResourceName } from "../../../lab/apiserver/resources.js";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import { waitFor } from "./helpers.js";

interface Recorder {
  events: string[];
  errors: unknown[];
  connects: number;
  informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  names(): string[];
}

function record(informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>): Recorder {
  const r: Recorder = {
    events: [],
    errors: [],
    connects: 0,
    informer,
    names: () =>
      informer
        .list()
        .map((o) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`)
        .sort(),
  };
  const name = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
  informer.on("add", (o) => r.events.push(`add ${name(o)}`));
  informer.on("update", (o) => r.events.push(`update ${name(o)}`));
  informer.on("delete", (o) => r.events.push(`delete ${name(o)}`));
  informer.on("error", (err) => r.errors.push(err));
  informer.on("connect", () => r.connects++);
  return r;
}

async function expectApiError(code: number, p: Promise<unknown>): Promise<ApiException<unknown>> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiException, `ApiException expected, got ${String(err)}`);
    assert.equal(err.code, code, String(err.body));
    return err;
  }
  assert.fail(`expected HTTP ${code}`);
}

describe("lab apiserver: @kubernetes/client-node", function () {
  this.timeout(20_000);
  let server: LabApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let net: NetworkingV1Api;
  const logs: string[] = [];
  const informers: Informer<KubernetesObject>[] = [];

  async function start(
    informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>,
  ): Promise<Recorder> {
    const r = record(informer);
    informers.push(informer);
    await informer.start();
    return r;
  }

  beforeEach(async () => {
    logs.length = 0;
    server = await startLabApiServer({
      history: 4,
      log: (l) => logs.push(l),
      seedObjects: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "team" } },
        { apiVersion: "v1", kind: "Node", metadata: { name: "n1", labels: { role: "worker" } } },
        { apiVersion: "v1", kind: "Node", metadata: { name: "n2" } },
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "a", namespace: "team" },
          spec: { nodeName: "n1" },
        },
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name: "deny", namespace: "team" },
          spec: { podSelector: {} },
        },
      ],
    });
    kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    core = kc.makeApiClient(CoreV1Api);
    net = kc.makeApiClient(NetworkingV1Api);
  });

  afterEach(async () => {
    for (const i of informers.splice(0)) await i.stop();
    await server.close();
  });

  const cases: {
    resource: ResourceName;
    path: string;
    list: () => Promise<KubernetesListObject<KubernetesObject>>;
    initial: string[];
    make: (name: string) => JsonObject;
    ns: string | undefined;
  }[] = [
    {
      resource: "nodes",
      path: "/api/v1/nodes",
      list: () => core.listNode(),
      initial: ["/n1", "/n2"],
      make: (name) => ({ metadata: { name } }),
      ns: undefined,
    },
    {
      resource: "namespaces",
      path: "/api/v1/namespaces",
      list: () => core.listNamespace(),
      initial: ["/default", "/kube-node-lease", "/kube-public", "/kube-system", "/team"],
      make: (name) => ({ metadata: { name } }),
      ns: undefined,
    },
    {
      resource: "pods",
      path: "/api/v1/pods",
      list: () => core.listPodForAllNamespaces(),
      initial: ["team/a"],
      make: (name) => ({ metadata: { name }, spec: { containers: [{ name: "c", image: "i" }] } }),
      ns: "team",
    },
    {
      resource: "networkpolicies",
      path: "/apis/networking.k8s.io/v1/networkpolicies",
      list: () => net.listNetworkPolicyForAllNamespaces(),
      initial: ["team/deny"],
      make: (name) => ({ metadata: { name }, spec: { podSelector: { matchLabels: { app: name } } } }),
      ns: "team",
    },
  ];

  for (const c of cases) {
    it(`informer on ${c.resource}: initial list, then ADDED/MODIFIED/DELETED`, async () => {
      const r = await start(makeInformer(kc, c.path, c.list));
      await waitFor(() => r.events.length === c.initial.length, "initial adds");
      assert.deepEqual(r.names(), c.initial);
      assert.deepEqual(r.events.sort(), c.initial.map((n) => `add ${n}`).sort());
      r.events.length = 0;
      const ref = { namespace: c.ns };
      const key = `${c.ns ?? ""}/new-one`;
      server.store.create(c.resource, c.make("new-one"), ref);
      await waitFor(() => r.events.length === 1, "add");
      server.store.patch(c.resource, "new-one", { metadata: { labels: { changed: "yes" } } }, "merge", ref);
      await waitFor(() => r.events.length === 2, "update");
      assert.equal(r.informer.get("new-one", c.ns)?.metadata?.labels?.changed, "yes");
      server.store.delete(c.resource, "new-one", ref);
      await waitFor(() => r.events.length === 3, "delete");
      assert.deepEqual(r.events, [`add ${key}`, `update ${key}`, `delete ${key}`]);
      assert.deepEqual(r.names(), c.initial);
      assert.deepEqual(r.errors, []);
    });
  }

  it("a watch resumed from an expired resourceVersion gets 410; the informer relists and converges", async () => {
    const r = await start(makeInformer(kc, "/api/v1/pods", () => core.listPodForAllNamespaces()));
    await waitFor(() => r.names().length === 1, "initial list");
    const connectsBefore = r.connects;
    // In one turn: drop the watch stream, then change more than the history (4 events) holds.
    assert.equal(server.closeWatches(), 1);
    for (let i = 0; i < 6; i++)
      server.store.create("pods", { metadata: { name: `p${i}` } }, { namespace: "team" });
    server.store.delete("pods", "a", { namespace: "team" });
    server.store.patch("pods", "p0", { metadata: { labels: { v: "2" } } }, "merge", { namespace: "team" });
    await waitFor(
      () => r.names().length === 6 && !r.names().includes("team/a"),
      "convergence after relist",
      10_000,
    );
    assert.deepEqual(r.names(), ["team/p0", "team/p1", "team/p2", "team/p3", "team/p4", "team/p5"]);
    assert.equal(r.informer.get("p0", "team")?.metadata?.labels?.v, "2");
    assert.ok(r.events.includes("delete team/a"), "the relist reported the deletion it missed");
    assert.ok(
      logs.some((l) => l.includes("watch expired") && l.includes("resource=pods")),
      "the server answered 410",
    );
    assert.ok(r.connects >= connectsBefore + 2, "re-watch, then relist");
    assert.deepEqual(r.errors, []);
    // And it keeps following changes afterwards.
    server.store.create("pods", { metadata: { name: "later" } }, { namespace: "team" });
    await waitFor(() => r.names().includes("team/later"), "events after the relist");
  });

  it("a label-selector-scoped informer sees objects enter and leave its selection", async () => {
    const sel = "role=worker";
    const r = await start(
      makeInformer(kc, "/api/v1/nodes", () => core.listNode({ labelSelector: sel }), sel),
    );
    await waitFor(() => r.events.length === 1, "initial add");
    assert.deepEqual(r.names(), ["/n1"]);
    server.store.patch("nodes", "n2", { metadata: { labels: { role: "worker" } } }, "merge");
    server.store.patch("nodes", "n1", { metadata: { labels: { role: null } } }, "merge");
    server.store.create("nodes", { metadata: { name: "n3", labels: { role: "control" } } });
    await waitFor(() => r.events.length === 3, "two transitions");
    assert.deepEqual(r.events, ["add /n1", "add /n2", "delete /n1"]);
    assert.deepEqual(r.names(), ["/n2"]);
  });

  it("CoreV1Api: CRUD round-trips for namespaces, pods (with status) and nodes", async () => {
    await core.createNamespace({ body: { metadata: { name: "apps", labels: { env: "lab" } } } });
    const ns = await core.readNamespace({ name: "apps" });
    assert.equal(ns.status?.phase, "Active");
    assert.equal(ns.metadata?.labels?.["kubernetes.io/metadata.name"], "apps");

    const created = await core.createNamespacedPod({
      namespace: "apps",
      body: {
        metadata: { name: "web", labels: { app: "web" } },
        spec: {
          nodeName: "n1",
          containers: [{ name: "c", image: "nginx", ports: [{ name: "http", containerPort: 80 }] }],
        },
      },
    });
    assert.ok(created.metadata?.creationTimestamp instanceof Date, "typed client parses the timestamp");
    assert.equal(created.status?.phase, "Pending");
    await expectApiError(
      409,
      core.createNamespacedPod({ namespace: "apps", body: { metadata: { name: "web" } } }),
    );
    await expectApiError(404, core.readNamespacedPod({ namespace: "apps", name: "ghost" }));
    await expectApiError(
      404,
      core.createNamespacedPod({ namespace: "ghost", body: { metadata: { name: "x" } } }),
    );

    const read = await core.readNamespacedPod({ namespace: "apps", name: "web" });
    assert.ok(read.metadata);
    read.metadata.labels = { app: "web", tier: "fe" };
    const replaced = await core.replaceNamespacedPod({ namespace: "apps", name: "web", body: read });
    assert.equal(replaced.metadata?.labels?.tier, "fe");
    await expectApiError(409, core.replaceNamespacedPod({ namespace: "apps", name: "web", body: read }));

    // client-node's default patch type is application/json-patch+json.
    const jp = await core.patchNamespacedPod({
      namespace: "apps",
      name: "web",
      body: [{ op: "add", path: "/metadata/annotations", value: { a: "b" } }],
    });
    assert.deepEqual(jp.metadata?.annotations, { a: "b" });
    const mp = await core.patchNamespacedPod(
      { namespace: "apps", name: "web", body: { metadata: { annotations: { a: null, c: "d" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    assert.deepEqual(mp.metadata?.annotations, { c: "d" });

    const st = await core.readNamespacedPodStatus({ namespace: "apps", name: "web" });
    st.status = { phase: "Running", podIP: "10.0.1.7", podIPs: [{ ip: "10.0.1.7" }] };
    const withStatus = await core.replaceNamespacedPodStatus({ namespace: "apps", name: "web", body: st });
    assert.equal(withStatus.status?.podIP, "10.0.1.7");
    const sp = await core.patchNamespacedPodStatus(
      {
        namespace: "apps",
        name: "web",
        body: { status: { conditions: [{ type: "Ready", status: "True" }] } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    assert.equal(sp.status?.conditions?.[0]?.type, "Ready");
    assert.equal(sp.status.podIP, "10.0.1.7");

    const list = await core.listNamespacedPod({ namespace: "apps", fieldSelector: "status.podIP=10.0.1.7" });
    assert.deepEqual(
      list.items.map((p) => p.metadata?.name),
      ["web"],
    );
    const byNode = await core.listPodForAllNamespaces({
      fieldSelector: "spec.nodeName=n1",
      labelSelector: "app in (web)",
    });
    assert.deepEqual(
      byNode.items.map((p) => p.metadata?.name),
      ["web"],
    );

    const node = await core.patchNode(
      { name: "n2", body: { spec: { podCIDR: "10.0.2.0/24", podCIDRs: ["10.0.2.0/24"] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    assert.equal(node.spec?.podCIDR, "10.0.2.0/24");
    const nodeStatus = await core.patchNodeStatus(
      { name: "n2", body: { status: { addresses: [{ type: "InternalIP", address: "192.0.2.2" }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    assert.equal(nodeStatus.status?.addresses?.[0]?.address, "192.0.2.2");

    const deleted = await core.deleteNamespacedPod({ namespace: "apps", name: "web" });
    assert.equal(deleted.metadata?.name, "web");
    await core.deleteNamespace({ name: "apps" });
    await expectApiError(404, core.readNamespace({ name: "apps" }));
    await expectApiError(403, core.deleteNamespace({ name: "default" }));
  });

  it("NetworkingV1Api: CRUD round-trips for NetworkPolicies", async () => {
    const body = {
      metadata: { name: "allow-web" },
      spec: {
        podSelector: { matchLabels: { app: "web" } },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "team" } } }],
            ports: [{ protocol: "TCP", port: 80, endPort: 90 }],
          },
        ],
      },
    };
    const created = await net.createNamespacedNetworkPolicy({ namespace: "team", body });
    assert.equal(created.metadata?.generation, 1);
    assert.equal(created.spec?.ingress?.[0]?.ports?.[0]?.endPort, 90);
    const patched = await net.patchNamespacedNetworkPolicy({
      namespace: "team",
      name: "allow-web",
      body: [{ op: "replace", path: "/spec/policyTypes", value: ["Ingress", "Egress"] }],
    });
    assert.deepEqual(patched.spec?.policyTypes, ["Ingress", "Egress"]);
    assert.equal(patched.metadata?.generation, 2);
    const list = await net.listNamespacedNetworkPolicy({ namespace: "team" });
    assert.deepEqual(list.items.map((p) => p.metadata?.name).sort(), ["allow-web", "deny"]);
    await net.deleteNamespacedNetworkPolicy({ namespace: "team", name: "allow-web" });
    await expectApiError(404, net.readNamespacedNetworkPolicy({ namespace: "team", name: "allow-web" }));
  });

  it("KubernetesObjectApi (discovery-driven) creates, reads, patches and deletes", async () => {
    const client = KubernetesObjectApi.makeApiClient(kc);
    const spec = {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "generic", namespace: "team" },
      spec: { podSelector: {} },
    };
    await client.create(spec);
    const read = await client.read({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "generic", namespace: "team" },
    });
    assert.equal(read.metadata?.name, "generic");
    const patched = await client.patch(
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "generic", namespace: "team", labels: { x: "y" } },
      },
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
    assert.equal(patched.metadata.labels.x, "y");
    const listed = await client.list("v1", "Node");
    assert.deepEqual(
      listed.items.map((n) => n.metadata?.name),
      ["n1", "n2"],
    );
    await client.delete({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "generic", namespace: "team" },
    });
    assert.equal(server.store.get("networkpolicies", "generic", { namespace: "team" }), undefined);
  });
});
