/**
 * The real @kubernetes/client-node 1.4 against Services and EndpointSlices: informers (what the
 * agent's Service load balancing will run), the typed CoreV1Api/DiscoveryV1Api clients, and the
 * EndpointSlice controller's output as a client sees it.
 */
import { strict as assert } from "node:assert";
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  type Informer,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Service,
} from "@kubernetes/client-node";
import { kubeconfigYaml } from "../../../lab/apiserver/kubeconfig.js";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import {
  startEndpointSliceController,
  type EndpointSliceController,
} from "../../../lab/endpointslice-controller.js";
import { waitFor } from "./helpers.js";

describe("lab apiserver: client-node on Services and EndpointSlices", function () {
  this.timeout(20_000);
  let server: LabApiServer;
  let controller: EndpointSliceController;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;
  let kc: KubeConfig;
  const informers: Informer<never>[] = [];
  const logs: string[] = [];

  beforeEach(async () => {
    logs.length = 0;
    server = await startLabApiServer({
      log: (l) => logs.push(l),
      history: 4,
      seedObjects: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "team" } },
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "web-1", namespace: "team", labels: { app: "web" } },
          spec: {
            nodeName: "n1",
            containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }] }],
          },
          status: { podIP: "10.244.0.5", conditions: [{ type: "Ready", status: "True" }] },
        },
      ],
    });
    controller = startEndpointSliceController(server.store, { log: (l) => assert.fail(l) });
    kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server.url));
    core = kc.makeApiClient(CoreV1Api);
    discovery = kc.makeApiClient(DiscoveryV1Api);
  });

  afterEach(async () => {
    for (const i of informers.splice(0)) await i.stop();
    controller.close();
    await server.close();
  });

  it("informers on services and endpointslices follow create, pod changes, 410 relists and delete", async () => {
    const services = makeInformer(kc, "/api/v1/services", () => core.listServiceForAllNamespaces());
    const slices = makeInformer(kc, "/apis/discovery.k8s.io/v1/endpointslices", () =>
      discovery.listEndpointSliceForAllNamespaces(),
    );
    const errors: unknown[] = [];
    for (const i of [services, slices] as (Informer<V1Service | V1EndpointSlice> &
      ObjectCache<V1Service | V1EndpointSlice>)[]) {
      i.on("error", (e) => errors.push(e));
      informers.push(i as unknown as Informer<never>);
      await i.start();
    }
    const created = await core.createNamespacedService({
      namespace: "team",
      body: {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      },
    });
    assert.match(created.spec?.clusterIP ?? "", /^10\.96\./);
    assert.deepEqual(created.spec?.ipFamilies, ["IPv4"]);
    await waitFor(() => services.get("web", "team") !== undefined, "service in the informer");
    const sliceOf = (): V1EndpointSlice | undefined =>
      slices.list("team").find((s) => s.metadata?.labels?.["kubernetes.io/service-name"] === "web");
    await waitFor(() => sliceOf()?.endpoints.length === 1, "the controller's slice in the informer");
    const slice = sliceOf();
    assert.ok(slice);
    assert.equal(slice.addressType, "IPv4");
    assert.deepEqual(slice.endpoints[0]?.addresses, ["10.244.0.5"]);
    assert.equal(slice.endpoints[0].conditions?.ready, true);
    assert.equal(slice.endpoints[0].nodeName, "n1");
    assert.equal(slice.endpoints[0].targetRef?.name, "web-1");
    assert.deepEqual(slice.ports, [{ name: "http", port: 8080, protocol: "TCP" }]);

    // Drop the watches and change more than the history holds: both informers relist and converge.
    server.closeWatches();
    for (let i = 2; i <= 6; i++)
      server.store.create(
        "pods",
        {
          metadata: { name: `web-${i}`, labels: { app: "web" } },
          spec: { containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }] }] },
          status: { podIP: `10.244.0.${10 + i}` },
        },
        { namespace: "team" },
      );
    // More Service events than the history (4) holds: the services informer's re-watch gets 410.
    for (let i = 0; i < 5; i++)
      server.store.create(
        "services",
        { metadata: { name: `extra-${i}` }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
        { namespace: "team" },
      );
    await controller.idle();
    await waitFor(() => sliceOf()?.endpoints.length === 6, "slice with six endpoints after relist", 10_000);
    await waitFor(() => services.list("team").length === 6, "services informer relisted", 10_000);
    assert.ok(logs.some((l) => l.includes("watch expired") && l.includes("resource=services")));
    assert.equal(sliceOf()?.endpoints.find((e) => e.targetRef?.name === "web-2")?.conditions?.ready, false);

    await core.deleteNamespacedService({ namespace: "team", name: "web" });
    await waitFor(() => services.get("web", "team") === undefined && sliceOf() === undefined, "both gone");
    assert.deepEqual(errors, []);
  });

  it("typed clients: 422 Invalid with causes, immutable clusterIP, EndpointSlice CRUD, KubernetesObjectApi", async () => {
    try {
      await core.createNamespacedService({
        namespace: "team",
        body: { metadata: { name: "bad" }, spec: { ports: [{ port: 80 }, { port: 81 }] } },
      });
      assert.fail("expected 422");
    } catch (err) {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 422);
      const body = JSON.parse(String(err.body)) as { details: { causes: { field: string }[] } };
      assert.deepEqual(
        body.details.causes.map((c) => c.field),
        ["spec.ports[0].name", "spec.ports[1].name"],
      );
    }
    const svc = await core.createNamespacedService({
      namespace: "team",
      body: { metadata: { name: "np" }, spec: { type: "NodePort", ports: [{ port: 80, nodePort: 30100 }] } },
    });
    assert.equal(svc.spec?.ports?.[0]?.nodePort, 30100);
    assert.ok(svc.spec);
    svc.spec.clusterIP = "10.96.0.77";
    svc.spec.clusterIPs = ["10.96.0.77"];
    try {
      await core.replaceNamespacedService({ namespace: "team", name: "np", body: svc });
      assert.fail("expected 422");
    } catch (err) {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 422);
    }

    const slice = await discovery.createNamespacedEndpointSlice({
      namespace: "team",
      body: {
        metadata: { name: "ext-1", labels: { "kubernetes.io/service-name": "ext" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["192.0.2.1"], conditions: { ready: true } }],
        ports: [{ port: 443 }],
      },
    });
    assert.equal(slice.ports?.[0]?.protocol, "TCP");
    const read = await discovery.readNamespacedEndpointSlice({ namespace: "team", name: "ext-1" });
    assert.equal(read.endpoints[0]?.conditions?.ready, true);
    await discovery.deleteNamespacedEndpointSlice({ namespace: "team", name: "ext-1" });

    const objects = KubernetesObjectApi.makeApiClient(kc);
    const applied = await objects.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "generic", namespace: "team" },
      spec: { clusterIP: "None", selector: { app: "web" }, ports: [{ port: 80 }] },
    });
    assert.equal(applied.spec.clusterIP, "None");
  });
});
