/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- JSON from the wire is untyped; the assertions check its shape */
/**
 * Services and EndpointSlices over raw HTTP: routes, discovery, Status bodies for what the real
 * server rejects, allocation seen by clients, Tables, watches, the OpenAPI definitions kubectl
 * needs, and the EndpointSlice controller behind the same server.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import {
  startEndpointSliceController,
  type EndpointSliceController,
} from "../../../lab/endpointslice-controller.js";
import { http, waitFor, WatchStream } from "./helpers.js";

const TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

describe("lab apiserver: Services and EndpointSlices over HTTP", () => {
  let server: LabApiServer;
  let controller: EndpointSliceController;
  let url: string;
  const streams: WatchStream[] = [];
  const json = (body: unknown): { body: string } => ({ body: JSON.stringify(body) });

  beforeEach(async () => {
    server = await startLabApiServer({
      log: () => undefined,
      serviceCidr: "10.43.0.0/16",
      seedObjects: [
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "web-1", namespace: "default", labels: { app: "web" } },
          spec: {
            nodeName: "n1",
            containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }] }],
          },
          status: { podIP: "10.244.0.5", conditions: [{ type: "Ready", status: "True" }] },
        },
      ],
    });
    controller = startEndpointSliceController(server.store, { log: (l) => assert.fail(l) });
    url = server.url;
  });

  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    controller.close();
    await server.close();
  });

  it("discovery lists services (svc, category all, status) and discovery.k8s.io endpointslices", async () => {
    const core = await http(url, "GET", "/api/v1");
    const svc = core.json.resources.find((r: any) => r.name === "services");
    assert.deepEqual(svc.shortNames, ["svc"]);
    assert.deepEqual(svc.categories, ["all"]);
    assert.equal(svc.namespaced, true);
    assert.ok(core.json.resources.some((r: any) => r.name === "services/status"));
    const group = await http(url, "GET", "/apis/discovery.k8s.io");
    assert.equal(group.json.preferredVersion.groupVersion, "discovery.k8s.io/v1");
    const list = await http(url, "GET", "/apis/discovery.k8s.io/v1");
    assert.deepEqual(
      list.json.resources.map((r: any) => [r.name, r.kind, r.namespaced]),
      [["endpointslices", "EndpointSlice", true]],
    );
    const openapi = await http(url, "GET", "/openapi/v2");
    const defs = openapi.json.definitions;
    assert.deepEqual(defs["io.k8s.api.core.v1.Service"]["x-kubernetes-group-version-kind"], [
      { group: "", kind: "Service", version: "v1" },
    ]);
    assert.equal(
      defs["io.k8s.api.core.v1.ServiceSpec"].properties.ports["x-kubernetes-patch-merge-key"],
      "port",
    );
    assert.deepEqual(Object.keys(defs["io.k8s.api.discovery.v1.EndpointSlice"].properties).sort(), [
      "addressType",
      "apiVersion",
      "endpoints",
      "kind",
      "metadata",
      "ports",
    ]);
  });

  it("create allocates from --service-cidr; errors are Status bodies with causes", async () => {
    const created = await http(
      url,
      "POST",
      "/api/v1/namespaces/default/services",
      json({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: "http" }] },
      }),
    );
    assert.equal(created.status, 201, created.text);
    assert.match(created.json.spec.clusterIP, /^10\.43\./);
    assert.deepEqual(created.json.status, { loadBalancer: {} });

    const bad = await http(
      url,
      "POST",
      "/api/v1/namespaces/default/services",
      json({
        metadata: { name: "bad" },
        spec: { clusterIP: "10.96.0.10", ports: [{ port: 80 }] },
      }),
    );
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.json, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message:
        'Service "bad" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: the provided IP (10.96.0.10) is not in the valid range. The range of valid IPs is 10.43.0.0/16',
      reason: "Invalid",
      details: {
        name: "bad",
        kind: "Service",
        causes: [
          {
            reason: "FieldValueInvalid",
            message:
              'Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: the provided IP (10.96.0.10) is not in the valid range. The range of valid IPs is 10.43.0.0/16',
            field: "spec.clusterIPs",
          },
        ],
      },
      code: 422,
    });
    const typed = await http(
      url,
      "POST",
      "/api/v1/namespaces/default/services",
      json({
        metadata: { name: "typed" },
        spec: { ports: [{ port: "eighty" }] },
      }),
    );
    assert.equal(typed.status, 400);
    assert.match(
      typed.json.message,
      /cannot unmarshal string into Go struct field spec\.ports\.port of type int32/,
    );
    const immutable = await http(url, "PATCH", "/api/v1/namespaces/default/services/web", {
      body: JSON.stringify({ spec: { clusterIP: "10.43.0.5" } }),
      headers: { "Content-Type": "application/strategic-merge-patch+json" },
    });
    assert.equal(immutable.status, 422);
    assert.equal(immutable.json.details.causes[0].field, "spec.clusterIPs[0]");
    assert.match(immutable.json.message, /may not change once set$/);
    const gone = await http(url, "DELETE", "/api/v1/namespaces/default/services/web");
    assert.equal(gone.status, 200);
    assert.equal(server.store.serviceAllocations.clusterIPs, 0);
  });

  it("kubectl get svc Tables; strategic merge patches merge ports by port", async () => {
    await http(
      url,
      "POST",
      "/api/v1/namespaces/default/services",
      json({
        metadata: { name: "np" },
        spec: {
          type: "NodePort",
          selector: { app: "web" },
          ports: [
            { name: "a", port: 80, nodePort: 30080 },
            { name: "b", port: 53, protocol: "UDP" },
          ],
        },
      }),
    );
    const table = await http(url, "GET", "/api/v1/namespaces/default/services", {
      headers: { Accept: TABLE_ACCEPT },
    });
    assert.deepEqual(
      table.json.columnDefinitions.map((c: any) => c.name),
      ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"],
    );
    const cells = table.json.rows[0].cells;
    assert.equal(cells[1], "NodePort");
    assert.match(cells[2], /^10\.43\./);
    assert.equal(cells[3], "<none>");
    assert.match(cells[4], /^80:30080\/TCP,53:3\d{4}\/UDP$/);
    assert.equal(cells[6], "app=web");
    const patched = await http(url, "PATCH", "/api/v1/namespaces/default/services/np", {
      body: JSON.stringify({
        spec: { ports: [{ port: 80, name: "a", targetPort: 8080 }] },
      }),
      headers: { "Content-Type": "application/strategic-merge-patch+json" },
    });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual(
      patched.json.spec.ports.map((p: any) => [p.name, p.port, p.targetPort, p.nodePort]),
      [
        ["a", 80, 8080, 30080],
        ["b", 53, 53, patched.json.spec.ports[1].nodePort],
      ],
    );
  });

  it("EndpointSlices: CRUD, validation, Tables, and the controller's slices watched by label", async () => {
    const w = new WatchStream(url, `${SLICE_PATH}?watch=1&labelSelector=kubernetes.io%2Fservice-name%3Dweb`);
    streams.push(w);
    await http(
      url,
      "POST",
      "/api/v1/namespaces/default/services",
      json({
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      }),
    );
    await w.until(() => w.events.some((e) => e.type === "ADDED"));
    const added = w.events.find((e) => e.type === "ADDED")?.object;
    assert.equal(added.kind, "EndpointSlice");
    assert.equal(
      added.metadata.labels["endpointslice.kubernetes.io/managed-by"],
      "endpointslice-controller.k8s.io",
    );
    assert.deepEqual(added.endpoints[0].addresses, ["10.244.0.5"]);
    assert.deepEqual(added.ports, [{ name: "http", port: 8080, protocol: "TCP" }]);

    await http(url, "PATCH", "/api/v1/namespaces/default/pods/web-1/status", {
      body: JSON.stringify({ status: { podIP: "10.244.0.9" } }),
      headers: { "Content-Type": "application/merge-patch+json" },
    });
    await w.until(() =>
      w.events.some((e) => e.type === "MODIFIED" && e.object.endpoints[0]?.addresses[0] === "10.244.0.9"),
    );

    const manual = await http(
      url,
      "POST",
      SLICE_PATH,
      json({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: "ext-1", labels: { "kubernetes.io/service-name": "ext" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["192.0.2.10"], conditions: { ready: true } }],
        ports: [{ name: "https", port: 443 }],
      }),
    );
    assert.equal(manual.status, 201, manual.text);
    assert.deepEqual(manual.json.ports, [{ name: "https", port: 443, protocol: "TCP" }]);
    const table = await http(url, "GET", SLICE_PATH, { headers: { Accept: TABLE_ACCEPT } });
    assert.deepEqual(
      table.json.columnDefinitions.map((c: any) => c.name),
      ["Name", "AddressType", "Ports", "Endpoints", "Age"],
    );
    assert.ok(
      table.json.rows.some(
        (r: any) => r.cells[0] === "ext-1" && r.cells[2] === "443" && r.cells[3] === "192.0.2.10",
      ),
    );
    const bad = await http(
      url,
      "POST",
      SLICE_PATH,
      json({ metadata: { name: "bad" }, addressType: "IPv4", endpoints: [{ addresses: ["nope"] }] }),
    );
    assert.equal(bad.status, 422);
    assert.equal(bad.json.details.group, "discovery.k8s.io");
    assert.equal(bad.json.details.causes[0].field, "endpoints[0].addresses[0]");
    const put = await http(url, "PUT", `${SLICE_PATH}/ext-1`, json({ ...manual.json, endpoints: [] }));
    assert.equal(put.status, 200);
    assert.equal(put.json.metadata.generation, 2);
    const del = await http(url, "DELETE", `${SLICE_PATH}/ext-1`);
    assert.equal(del.status, 200);
    const missing = await http(url, "GET", `${SLICE_PATH}/ext-1`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json.message, 'endpointslices.discovery.k8s.io "ext-1" not found');

    await http(url, "DELETE", "/api/v1/namespaces/default/services/web");
    await w.until(() => w.events.some((e) => e.type === "DELETED"));
    await waitFor(() => server.store.list("endpointslices").items.length === 0, "the Service's slices gone");
  });

  it("fuzz-shaped bodies over HTTP get 4xx, and the server keeps serving", async () => {
    const bodies: unknown[] = [
      null,
      [],
      "svc",
      { metadata: { name: "a" }, spec: null },
      { metadata: { name: "a" }, spec: [] },
      { metadata: { name: "a" }, spec: { ports: [null, 1, "x"] } },
      { metadata: { name: "a" }, spec: { ports: [{ port: 1e308 }] } },
      { metadata: { name: "a" }, spec: { ports: [{ port: 80, targetPort: 1.5 }] } },
      { metadata: { name: "a" }, spec: { ports: [{ port: 80 }], selector: { a: 1 } } },
      { metadata: { name: "a" }, spec: { ports: [{ port: 80 }], clusterIPs: "10.43.0.1" } },
      { metadata: { name: "a" }, spec: { ports: [{ port: 80 }], sessionAffinityConfig: { clientIP: [] } } },
      { metadata: { name: "a" }, spec: { type: "NodePort", ports: [{ port: 80, nodePort: -1 }] } },
      {
        metadata: { name: "a" },
        spec: {
          type: "LoadBalancer",
          externalTrafficPolicy: "Local",
          healthCheckNodePort: 99999,
          ports: [{ port: 80 }],
        },
      },
    ];
    for (const b of bodies) {
      const r = await http(url, "POST", "/api/v1/namespaces/default/services", { body: JSON.stringify(b) });
      assert.ok(
        r.status === 400 || r.status === 422 || r.status === 201,
        `${JSON.stringify(b)}: ${r.status} ${r.text}`,
      );
      if (r.status === 201) await http(url, "DELETE", "/api/v1/namespaces/default/services/a");
    }
    assert.equal((await http(url, "GET", "/healthz")).status, 200);
    assert.deepEqual(server.store.serviceAllocations, {
      clusterIPs: 0,
      nodePorts: 0,
      serviceCidr: "10.43.0.0/16",
    });
  });

  it("fast-check: arbitrary JSON as a Service spec over HTTP is a 201, 400 or 422, never a 500", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 2 }), async (spec, ports) => {
        const name = `f${n++}`;
        const body = JSON.stringify({ metadata: { name }, spec });
        const withPorts = JSON.stringify({
          metadata: { name: `${name}p` },
          spec: { ...(typeof spec === "object" && spec !== null && !Array.isArray(spec) ? spec : {}), ports },
        });
        for (const b of [body, withPorts]) {
          const r = await http(url, "POST", "/api/v1/namespaces/default/services", { body: b });
          assert.ok([201, 400, 422].includes(r.status), `${b}: ${r.status} ${r.text}`);
        }
      }),
      { numRuns: 60 },
    );
    assert.equal((await http(url, "GET", "/healthz")).status, 200);
  });
});
