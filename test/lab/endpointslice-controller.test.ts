/**
 * The lab's EndpointSlice controller: the pure "Service + pods → slices" function, then the
 * running controller on a real LabStore (the same store and watches the API server serves).
 */
import { strict as assert } from "node:assert";
import type { JsonObject } from "../../lab/apiserver/json.js";
import { LabStore } from "../../lab/apiserver/store.js";
import {
  CONTROLLER_NAME,
  desiredSlices,
  MANAGED_BY_LABEL,
  SERVICE_NAME_LABEL,
  startEndpointSliceController,
  type EndpointSliceController,
} from "../../lab/endpointslice-controller.js";

function service(name: string, spec: JsonObject, labels: Record<string, string> = {}): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default", uid: `uid-${name}`, labels },
    spec,
  };
}

function pod(
  name: string,
  labels: Record<string, string>,
  opts: {
    ip?: string;
    node?: string;
    ready?: boolean;
    ports?: JsonObject[];
    deleting?: boolean;
    phase?: string;
    hostname?: string;
    subdomain?: string;
  } = {},
): JsonObject {
  const status: JsonObject = { phase: opts.phase ?? "Running" };
  if (opts.ip !== undefined) status.podIP = opts.ip;
  if (opts.ready !== undefined)
    status.conditions = [{ type: "Ready", status: opts.ready ? "True" : "False" }];
  const spec: JsonObject = { containers: [{ name: "c", image: "i", ports: opts.ports ?? [] }] };
  if (opts.node !== undefined) spec.nodeName = opts.node;
  if (opts.hostname !== undefined) spec.hostname = opts.hostname;
  if (opts.subdomain !== undefined) spec.subdomain = opts.subdomain;
  const metadata: JsonObject = { name, namespace: "default", uid: `uid-${name}`, labels };
  if (opts.deleting === true) metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
  return { apiVersion: "v1", kind: "Pod", metadata, spec, status };
}

describe("lab endpointslice controller: desired slices", () => {
  const web = service(
    "web",
    {
      selector: { app: "web" },
      ports: [
        { name: "http", port: 80, targetPort: "http", protocol: "TCP" },
        { name: "metrics", port: 9100, targetPort: 9100, protocol: "TCP" },
      ],
    },
    { team: "a" },
  );

  it("one endpoint per selected pod with an IP: addresses, nodeName, targetRef, conditions, ports resolved", () => {
    const slices = desiredSlices(web, [
      pod(
        "a",
        { app: "web" },
        { ip: "10.244.0.5", node: "n1", ready: true, ports: [{ name: "http", containerPort: 8080 }] },
      ),
      pod(
        "b",
        { app: "web" },
        { ip: "10.244.1.6", node: "n2", ready: false, ports: [{ name: "http", containerPort: 8080 }] },
      ),
      pod(
        "c",
        { app: "web" },
        { ip: "10.244.1.7", ready: true, deleting: true, ports: [{ name: "http", containerPort: 8080 }] },
      ),
      pod("no-ip", { app: "web" }, { ready: true }),
      pod("done", { app: "web" }, { ip: "10.244.1.9", phase: "Succeeded" }),
      pod("other", { app: "db" }, { ip: "10.244.0.9" }),
    ]);
    assert.ok(slices);
    assert.equal(slices.length, 1);
    const [s] = slices;
    assert.ok(s);
    assert.match(s.name, /^web-[0-9a-f]{5}$/);
    assert.deepEqual(s.labels, {
      team: "a",
      [SERVICE_NAME_LABEL]: "web",
      [MANAGED_BY_LABEL]: CONTROLLER_NAME,
    });
    assert.deepEqual(s.ports, [
      { name: "http", port: 8080, protocol: "TCP" },
      { name: "metrics", port: 9100, protocol: "TCP" },
    ]);
    assert.deepEqual(s.endpoints, [
      {
        addresses: ["10.244.0.5"],
        conditions: { ready: true, serving: true, terminating: false },
        targetRef: { kind: "Pod", namespace: "default", name: "a", uid: "uid-a" },
        nodeName: "n1",
      },
      {
        addresses: ["10.244.1.6"],
        conditions: { ready: false, serving: false, terminating: false },
        targetRef: { kind: "Pod", namespace: "default", name: "b", uid: "uid-b" },
        nodeName: "n2",
      },
      {
        addresses: ["10.244.1.7"],
        conditions: { ready: false, serving: true, terminating: true },
        targetRef: { kind: "Pod", namespace: "default", name: "c", uid: "uid-c" },
      },
    ]);
  });

  it("pods that resolve a named port differently (or not at all) get their own slices", () => {
    const slices = desiredSlices(web, [
      pod("a", { app: "web" }, { ip: "10.0.0.1", ports: [{ name: "http", containerPort: 8080 }] }),
      pod("b", { app: "web" }, { ip: "10.0.0.2", ports: [{ name: "http", containerPort: 9090 }] }),
      pod(
        "c",
        { app: "web" },
        { ip: "10.0.0.3", ports: [{ name: "http", containerPort: 8080, protocol: "UDP" }] },
      ),
    ]);
    assert.ok(slices);
    const byPorts = new Map(
      slices.map((s) => [
        JSON.stringify(s.ports.map((p) => p.port)),
        s.endpoints.map((e) => (e.targetRef as JsonObject).name),
      ]),
    );
    assert.deepEqual(byPorts.get("[8080,9100]"), ["a"]);
    assert.deepEqual(byPorts.get("[9090,9100]"), ["b"]);
    assert.deepEqual(byPorts.get("[9100]"), ["c"], "a UDP containerPort does not resolve a TCP service port");
    assert.equal(new Set(slices.map((s) => s.name)).size, 3);
  });

  it("publishNotReadyAddresses, hostname, headless label, placeholder, chunks of 100", () => {
    const headless = service("h", {
      clusterIP: "None",
      selector: { app: "h" },
      publishNotReadyAddresses: true,
      ports: [{ port: 53, protocol: "UDP" }],
    });
    const [s] =
      desiredSlices(headless, [
        pod("x", { app: "h" }, { ip: "10.0.0.1", ready: false, hostname: "x", subdomain: "h" }),
      ]) ?? [];
    assert.ok(s);
    assert.equal(s.labels["service.kubernetes.io/headless"], "");
    assert.deepEqual(s.endpoints[0]?.conditions, { ready: true, serving: false, terminating: false });
    assert.equal(s.endpoints[0].hostname, "x");
    assert.deepEqual(s.ports, [{ name: "", port: 53, protocol: "UDP" }]);
    const empty = desiredSlices(web, []);
    assert.equal(empty?.length, 1);
    assert.deepEqual(empty[0]?.endpoints, []);
    const many = Array.from({ length: 250 }, (_, i) =>
      pod(
        `p${String(i).padStart(3, "0")}`,
        { app: "web" },
        { ip: `10.1.${i >> 8}.${i & 255}`, ports: [{ name: "http", containerPort: 8080 }] },
      ),
    );
    const chunks = desiredSlices(web, many) ?? [];
    assert.deepEqual(
      chunks.map((c) => c.endpoints.length),
      [100, 100, 50],
    );
    assert.equal(new Set(chunks.map((c) => c.name)).size, 3);
  });

  it("leaves Services without a selector and ExternalName Services alone", () => {
    assert.equal(desiredSlices(service("manual", { ports: [{ port: 80 }] }), []), undefined);
    assert.equal(desiredSlices(service("empty", { selector: {}, ports: [{ port: 80 }] }), []), undefined);
    assert.equal(
      desiredSlices(
        service("ext", { type: "ExternalName", externalName: "a.example", selector: { a: "b" } }),
        [],
      ),
      undefined,
    );
  });
});

describe("lab endpointslice controller: running on the store", () => {
  let store: LabStore;
  let controller: EndpointSliceController;
  const logs: string[] = [];

  const slices = (svc?: string): JsonObject[] =>
    store.list("endpointslices", svc === undefined ? {} : { labelSelector: `${SERVICE_NAME_LABEL}=${svc}` })
      .items;
  const addresses = (svc: string): string[] =>
    slices(svc)
      .flatMap((s) => (s.endpoints as JsonObject[]).flatMap((e) => e.addresses as string[]))
      .sort();

  beforeEach(() => {
    logs.length = 0;
    store = new LabStore({ builtinNamespaces: ["default"] });
    controller = startEndpointSliceController(store, { log: (l) => logs.push(l), retryMs: 5 });
  });

  afterEach(() => {
    controller.close();
    store.close();
    assert.deepEqual(logs, []);
  });

  const mkPod = (name: string, labels: Record<string, string>, ip?: string): void => {
    store.create(
      "pods",
      {
        metadata: { name, labels },
        spec: {
          nodeName: "n1",
          containers: [{ name: "c", image: "i", ports: [{ name: "http", containerPort: 8080 }] }],
        },
        status: ip === undefined ? {} : { podIP: ip, conditions: [{ type: "Ready", status: "True" }] },
      },
      { namespace: "default" },
    );
  };

  it("writes a slice per Service from the selected pods and follows pods and Services", async () => {
    mkPod("a", { app: "web" }, "10.244.0.5");
    mkPod("b", { app: "web" });
    store.create(
      "services",
      {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: "http" }] },
      },
      { namespace: "default" },
    );
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5"]);
    const [slice] = slices("web");
    assert.ok(slice);
    assert.deepEqual(slice.ports, [{ name: "", port: 8080, protocol: "TCP" }]);
    assert.equal((slice.metadata as JsonObject).namespace, "default");
    const owner = ((slice.metadata as JsonObject).ownerReferences as JsonObject[])[0];
    assert.ok(owner);
    assert.equal(owner.kind, "Service");
    assert.equal(owner.controller, true);

    store.patch("pods", "b", { status: { podIP: "10.244.0.6" } }, "merge", {
      namespace: "default",
      subresource: "status",
    });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5", "10.244.0.6"]);
    store.patch("pods", "a", { metadata: { labels: { app: "other" } } }, "merge", { namespace: "default" });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.6"]);
    store.delete("pods", "b", { namespace: "default" });
    await controller.idle();
    assert.deepEqual(addresses("web"), []);
    assert.equal(slices("web").length, 1, "an empty Service keeps a placeholder slice");
    store.patch("services", "web", { spec: { selector: { app: "other" } } }, "merge", {
      namespace: "default",
    });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5"]);
    store.delete("services", "web", { namespace: "default" });
    await controller.idle();
    assert.deepEqual(slices("web"), []);
  });

  it("a burst of pod changes costs one write per slice; unchanged state costs none", async () => {
    store.create(
      "services",
      {
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
      },
      { namespace: "default" },
    );
    await controller.idle();
    const before = controller.writes;
    for (let i = 0; i < 20; i++) mkPod(`p${i}`, { app: "web" }, `10.244.0.${10 + i}`);
    await controller.idle();
    assert.equal(controller.writes - before, 1);
    assert.equal(addresses("web").length, 20);
    store.patch("pods", "p1", { metadata: { annotations: { a: "b" } } }, "merge", { namespace: "default" });
    await controller.idle();
    assert.equal(controller.writes - before, 1);
  });

  it("puts back what someone else changes or deletes; leaves Services without selector alone", async () => {
    mkPod("a", { app: "web" }, "10.244.0.5");
    store.create(
      "services",
      { metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
      { namespace: "default" },
    );
    store.create(
      "services",
      { metadata: { name: "manual" }, spec: { ports: [{ port: 80 }] } },
      { namespace: "default" },
    );
    store.create(
      "endpointslices",
      {
        metadata: { name: "manual-1", labels: { [SERVICE_NAME_LABEL]: "manual" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["192.0.2.1"] }],
        ports: [{ port: 80 }],
      },
      { namespace: "default" },
    );
    await controller.idle();
    const name = (slices("web")[0]?.metadata as JsonObject).name as string;
    store.patch("endpointslices", name, { endpoints: [{ addresses: ["192.0.2.99"] }] }, "merge", {
      namespace: "default",
    });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5"]);
    store.delete("endpointslices", name, { namespace: "default" });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5"]);
    assert.deepEqual(addresses("manual"), ["192.0.2.1"]);
    store.delete("services", "manual", { namespace: "default" });
    await controller.idle();
    assert.deepEqual(addresses("manual"), ["192.0.2.1"], "not ours to delete");
  });

  it("on start, adopts existing Services and removes slices of Services that are gone", async () => {
    controller.close();
    store.create(
      "services",
      { metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
      { namespace: "default" },
    );
    store.create(
      "endpointslices",
      {
        metadata: {
          name: "gone-abcde",
          labels: { [SERVICE_NAME_LABEL]: "gone", [MANAGED_BY_LABEL]: CONTROLLER_NAME },
        },
        addressType: "IPv4",
        endpoints: [],
      },
      { namespace: "default" },
    );
    mkPod("a", { app: "web" }, "10.244.0.5");
    controller = startEndpointSliceController(store, { log: (l) => logs.push(l) });
    await controller.idle();
    assert.deepEqual(addresses("web"), ["10.244.0.5"]);
    assert.deepEqual(slices("gone"), []);
  });

  it("follows namespace deletion without complaint, and stops on close", async () => {
    store.create("namespaces", { metadata: { name: "team" } });
    store.create(
      "services",
      { metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
      { namespace: "team" },
    );
    store.create(
      "pods",
      { metadata: { name: "a", labels: { app: "web" } }, spec: {}, status: { podIP: "10.244.0.5" } },
      { namespace: "team" },
    );
    store.delete("namespaces", "team");
    await controller.idle();
    assert.deepEqual(slices(), []);
    controller.close();
    store.create(
      "services",
      { metadata: { name: "late" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
      { namespace: "default" },
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(slices("late"), []);
  });
});
