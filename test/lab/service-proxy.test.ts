/**
 * lab/service-proxy.ts: what it takes from Services and EndpointSlices (pure), and the running
 * proxy against the lab API server with its EndpointSlice controller, rules written through a fake
 * (the rules themselves meet the kernel in test/lab/kube-proxy.test.ts and the lab e2e tests).
 */
import { strict as assert } from "node:assert";
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import {
  startEndpointSliceController,
  type EndpointSliceController,
} from "../../lab/endpointslice-controller.js";
import type { ProxiedService } from "../../lab/kube-proxy.js";
import { ServiceProxy, proxiedServices, type ProxyNode } from "../../lab/service-proxy.js";

function svc(name: string, spec: NonNullable<V1Service["spec"]>): V1Service {
  return { metadata: { name, namespace: "team" }, spec };
}

function slice(
  service: string,
  endpoints: V1EndpointSlice["endpoints"],
  port = 8080,
  namespace = "team",
): V1EndpointSlice {
  return {
    metadata: {
      name: `${service}-abcde`,
      namespace,
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    endpoints,
    ports: [{ name: "http", port, protocol: "TCP" }],
  };
}

describe("lab service proxy: Services and EndpointSlices to kube-proxy's input", () => {
  it("takes ready endpoints with the slices' resolved port, node ports, the traffic policy and externalIPs", () => {
    const out = proxiedServices(
      [
        svc("web", {
          type: "NodePort",
          clusterIP: "10.96.0.10",
          externalTrafficPolicy: "Local",
          externalIPs: ["198.51.100.10"],
          ports: [{ name: "http", port: 80, targetPort: "http", nodePort: 30080, protocol: "TCP" }],
        }),
      ],
      [
        slice("web", [
          { addresses: ["10.244.0.2"], nodeName: "n1", conditions: { ready: true } },
          { addresses: ["10.244.1.2"], nodeName: "n2", conditions: { ready: false, serving: false } },
          { addresses: ["10.244.1.3"], nodeName: "n2" },
          {
            addresses: ["10.244.1.4"],
            nodeName: "n2",
            conditions: { ready: false, serving: true, terminating: true },
          },
        ]),
      ],
    );
    assert.deepEqual(out, [
      {
        name: "web",
        namespace: "team",
        clusterIP: "10.96.0.10",
        ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080, nodePort: 30080 }],
        endpoints: [
          { ip: "10.244.0.2", nodeName: "n1", ready: true },
          { ip: "10.244.1.3", nodeName: "n2", ready: true },
        ],
        externalTrafficPolicy: "Local",
        externalIPs: ["198.51.100.10"],
      },
    ] satisfies ProxiedService[]);
  });

  it("falls back to serving terminating endpoints only when none is ready", () => {
    const [web] = proxiedServices(
      [svc("web", { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }] })],
      [
        slice("web", [
          { addresses: ["10.244.1.2"], nodeName: "n2", conditions: { ready: false, serving: false } },
          {
            addresses: ["10.244.1.4"],
            nodeName: "n2",
            conditions: { ready: false, serving: true, terminating: true },
          },
        ]),
      ],
    );
    assert.deepEqual(web?.endpoints, [{ ip: "10.244.1.4", nodeName: "n2", ready: true }]);
    assert.equal(web.externalTrafficPolicy, "Cluster");
  });

  it("skips headless and ExternalName Services and other Services' or namespaces' slices; no slice, no endpoints", () => {
    const out = proxiedServices(
      [
        svc("headless", { clusterIP: "None", ports: [{ port: 80 }] }),
        svc("ext", { type: "ExternalName", externalName: "example.org" }),
        svc("lonely", { clusterIP: "10.96.0.11", ports: [{ port: 53, protocol: "UDP", targetPort: 5353 }] }),
      ],
      [
        slice("other", [{ addresses: ["10.244.0.9"] }]),
        slice("lonely", [{ addresses: ["10.244.0.8"] }], 8080, "elsewhere"),
      ],
    );
    assert.deepEqual(out, [
      {
        name: "lonely",
        namespace: "team",
        clusterIP: "10.96.0.11",
        ports: [{ port: 53, protocol: "UDP", targetPort: 5353 }],
        endpoints: [],
        externalTrafficPolicy: "Cluster",
      },
    ]);
  });
});

describe("lab service proxy: watching the lab API server", function () {
  this.timeout(20_000);
  let server: LabApiServer;
  let controller: EndpointSliceController;
  let proxy: ServiceProxy | undefined;
  const nodes: ProxyNode[] = [
    { name: "n1", netns: "ns-n1" },
    { name: "n2", netns: "ns-n2" },
  ];
  const writes: { node: string; services: readonly ProxiedService[] }[] = [];

  beforeEach(async () => {
    writes.length = 0;
    server = await startLabApiServer({
      log: () => undefined,
      serviceCidr: "10.97.0.0/16",
      seedObjects: [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "team" } }],
    });
    controller = startEndpointSliceController(server.store, { log: (l) => assert.fail(l) });
  });

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    controller.close();
    await server.close();
  });

  it("programs every node on start and after Service and pod changes, debounced", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    proxy = await ServiceProxy.start(
      kc,
      { mode: "iptables", nodes: () => nodes, debounceMs: 50 },
      (node, mode, services) => {
        assert.equal(mode, "iptables");
        writes.push({ node: node.name, services });
        return Promise.resolve();
      },
    );
    assert.deepEqual(
      writes.map((w) => [w.node, w.services.length]),
      [
        ["n1", 0],
        ["n2", 0],
      ],
    );
    const core = kc.makeApiClient(CoreV1Api);
    const created = await core.createNamespacedService({
      namespace: "team",
      body: {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
      },
    });
    assert.match(created.spec?.clusterIP ?? "", /^10\.97\./);
    await proxy.waitFor("web without endpoints", (s) => s.some((x) => x.name === "web"));
    for (const [name, ip, node] of [
      ["web-1", "10.244.0.5", "n1"],
      ["web-2", "10.244.1.5", "n2"],
    ] as const) {
      await core.createNamespacedPod({
        namespace: "team",
        body: {
          metadata: { name, labels: { app: "web" } },
          spec: { nodeName: node, containers: [{ name: "c", image: "x" }] },
        },
      });
      await core.patchNamespacedPodStatus(
        {
          name,
          namespace: "team",
          body: { status: { podIP: ip, conditions: [{ type: "Ready", status: "True" }] } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    }
    await proxy.waitFor(
      "web with two endpoints",
      (s) => s.find((x) => x.name === "web")?.endpoints.length === 2,
    );
    const last = writes.slice(-2);
    assert.deepEqual(
      last.map((w) => w.node),
      ["n1", "n2"],
    );
    assert.deepEqual(last[0]?.services[0]?.endpoints.map((e) => e.ip).sort(), ["10.244.0.5", "10.244.1.5"]);
    // Debounced: far fewer writes than events (a Service, two pods, their statuses, the slices).
    assert.ok(writes.length <= 12, `${writes.length} writes`);
    await core.deleteNamespacedService({ name: "web", namespace: "team" });
    await proxy.waitFor("web gone", (s) => s.length === 0);
  });
  it("fails to start when the first rules cannot be written, leaving no watch behind; waitFor times out", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    await assert.rejects(
      ServiceProxy.start(kc, { mode: "nftables", nodes: () => nodes }, () =>
        Promise.reject(new Error("nft: no such netns")),
      ),
      /no such netns/,
    );
    proxy = await ServiceProxy.start(kc, { mode: "nftables", nodes: () => [] }, () => Promise.resolve());
    await assert.rejects(
      proxy.waitFor("never", () => false, 100),
      /never not programmed within 100 ms/,
    );
  });
});
