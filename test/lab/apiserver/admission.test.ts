/**
 * Admission of Services and EndpointSlices through the store: defaults, ClusterIP/NodePort
 * allocation and release, validation with the real server's messages, and fuzzed bodies that
 * must only ever be answered with an API error (never crash, never leak an allocation).
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { AllocationError, ClusterIpAllocator, NodePortAllocator } from "../../../lab/apiserver/allocators.js";
import { ApiError } from "../../../lab/apiserver/errors.js";
import type { JsonObject, JsonValue } from "../../../lab/apiserver/json.js";
import { LabStore } from "../../../lab/apiserver/store.js";

function caught(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  assert.fail("expected an ApiError");
}

function svc(name: string, spec: JsonObject, extra: JsonObject = {}): JsonObject {
  return { apiVersion: "v1", kind: "Service", metadata: { name, ...extra }, spec };
}

function specOf(obj: JsonObject): JsonObject {
  return obj.spec as JsonObject;
}

function inCidr(ip: unknown, prefix: string): boolean {
  return typeof ip === "string" && ip.startsWith(prefix);
}

/** What `kubectl create service clusterip web --tcp=80:8080` sends (kubectl 1.20). */
const KUBECTL_CLUSTERIP: JsonObject = {
  kind: "Service",
  apiVersion: "v1",
  metadata: { name: "web", creationTimestamp: null, labels: { app: "web" } },
  spec: {
    ports: [{ name: "80-8080", protocol: "TCP", port: 80, targetPort: 8080 }],
    selector: { app: "web" },
    type: "ClusterIP",
  },
  status: { loadBalancer: {} },
};

describe("lab apiserver: Service admission", () => {
  let store: LabStore;
  beforeEach(() => {
    store = new LabStore({ builtinNamespaces: ["default"] });
  });

  it("defaults what kubectl create service clusterip sends, as the real server does", () => {
    const s = store.create("services", KUBECTL_CLUSTERIP, { namespace: "default" });
    const spec = specOf(s);
    assert.ok(inCidr(spec.clusterIP, "10.96."), JSON.stringify(spec.clusterIP));
    assert.deepEqual(spec.clusterIPs, [spec.clusterIP]);
    assert.deepEqual(spec.ipFamilies, ["IPv4"]);
    assert.equal(spec.ipFamilyPolicy, "SingleStack");
    assert.equal(spec.sessionAffinity, "None");
    assert.equal(spec.internalTrafficPolicy, "Cluster");
    assert.equal(spec.externalTrafficPolicy, undefined);
    assert.deepEqual(s.status, { loadBalancer: {} });
    assert.equal((s.metadata as JsonObject).generation, undefined);
    // Dynamic allocations come from above the static band (the first 256 addresses of a /16).
    const last = (spec.clusterIP as string).split(".").map(Number);
    assert.ok((last[2] ?? 0) * 256 + (last[3] ?? 0) > 256);
    const bare = store.create("services", svc("bare", { ports: [{ port: 53, protocol: "UDP" }] }));
    assert.deepEqual(specOf(bare).ports, [{ port: 53, protocol: "UDP", targetPort: 53 }]);
    assert.equal(specOf(bare).type, "ClusterIP");
    assert.deepEqual(store.serviceAllocations, { clusterIPs: 2, nodePorts: 0, serviceCidr: "10.96.0.0/16" });
  });

  it("explicit ClusterIPs must be in range and free (422 with the allocator's message)", () => {
    store.create("services", svc("dns", { clusterIP: "10.96.0.10", ports: [{ port: 53 }] }));
    const out = caught(() =>
      store.create("services", svc("x", { clusterIP: "10.0.0.1", ports: [{ port: 80 }] })),
    );
    assert.equal(out.code, 422);
    assert.equal(out.reason, "Invalid");
    assert.equal(
      out.message,
      'Service "x" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16',
    );
    assert.deepEqual(out.toStatus().details, {
      name: "x",
      kind: "Service",
      causes: [
        {
          reason: "FieldValueInvalid",
          field: "spec.clusterIPs",
          message:
            'Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16',
        },
      ],
    });
    const taken = caught(() =>
      store.create("services", svc("y", { clusterIP: "10.96.0.10", ports: [{ port: 80 }] })),
    );
    assert.match(taken.message, /failed to allocate IP 10\.96\.0\.10: provided IP is already allocated$/);
    for (const edge of ["10.96.0.0", "10.96.255.255"])
      assert.match(
        caught(() => store.create("services", svc("z", { clusterIP: edge, ports: [{ port: 80 }] }))).message,
        /is not in the valid range/,
      );
    const garbage = caught(() =>
      store.create("services", svc("g", { clusterIP: "banana", ports: [{ port: 80 }] })),
    );
    assert.equal(
      garbage.message,
      'Service "g" is invalid: spec.clusterIPs[0]: Invalid value: "banana": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
    );
    store.delete("services", "dns");
    assert.equal(store.serviceAllocations.clusterIPs, 0);
    store.create("services", svc("dns2", { clusterIP: "10.96.0.10", ports: [{ port: 53 }] }));
  });

  it("headless: None, no allocation; selectorless headless defaults to RequireDualStack", () => {
    const h = store.create("services", svc("h", { clusterIP: "None", selector: { app: "h" } }));
    assert.deepEqual(specOf(h).clusterIPs, ["None"]);
    assert.equal(specOf(h).ipFamilyPolicy, "SingleStack");
    assert.deepEqual(specOf(h).ipFamilies, ["IPv4"]);
    const bare = store.create("services", svc("bare", { clusterIP: "None" }));
    assert.equal(specOf(bare).ipFamilyPolicy, "RequireDualStack");
    assert.deepEqual(specOf(bare).ipFamilies, ["IPv4", "IPv6"]);
    assert.equal(store.serviceAllocations.clusterIPs, 0);
    const np = caught(() =>
      store.create("services", svc("np", { type: "NodePort", clusterIP: "None", ports: [{ port: 1 }] })),
    );
    assert.match(
      np.message,
      /spec\.clusterIPs\[0\]: Invalid value: "None": may not be set to 'None' for NodePort services/,
    );
    const dual = caught(() =>
      store.create("services", svc("d", { ipFamilyPolicy: "RequireDualStack", ports: [{ port: 1 }] })),
    );
    assert.match(
      dual.message,
      /spec\.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services/,
    );
    assert.equal(store.serviceAllocations.clusterIPs, 0, "failed creates released what they took");
  });

  it("NodePorts: allocated in 30000-32767, explicit ones in range and unused, released on delete and type change", () => {
    const a = store.create(
      "services",
      svc("a", {
        type: "NodePort",
        ports: [
          { name: "h", port: 80 },
          { name: "d", port: 53, protocol: "UDP" },
        ],
      }),
    );
    const ports = specOf(a).ports as JsonObject[];
    for (const p of ports) assert.ok((p.nodePort as number) >= 30000 && (p.nodePort as number) <= 32767);
    assert.equal(specOf(a).externalTrafficPolicy, "Cluster");
    const b = store.create(
      "services",
      svc("b", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }),
    );
    assert.equal((specOf(b).ports as JsonObject[])[0]?.nodePort, 30080);
    const out = caught(() =>
      store.create("services", svc("c", { type: "NodePort", ports: [{ port: 80, nodePort: 80 }] })),
    );
    assert.equal(
      out.message,
      'Service "c" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767',
    );
    const used = caught(() =>
      store.create("services", svc("c", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] })),
    );
    assert.match(
      used.message,
      /spec\.ports\[0\]\.nodePort: Invalid value: 30080: provided port is already allocated$/,
    );
    assert.equal(store.serviceAllocations.nodePorts, 3);
    // TCP and UDP on one number share one NodePort.
    store.create(
      "services",
      svc("dns", {
        type: "NodePort",
        ports: [
          { name: "u", port: 53, protocol: "UDP", nodePort: 30053 },
          { name: "t", port: 53, nodePort: 30053 },
        ],
      }),
    );
    assert.equal(store.serviceAllocations.nodePorts, 4);
    // NodePort → ClusterIP drops the NodePorts the client did not change, and releases them.
    const bSpec: JsonObject = { ...specOf(store.getOrThrow("services", "b")), type: "ClusterIP" };
    delete bSpec.externalTrafficPolicy;
    const demoted = store.update("services", svc("b", bSpec));
    assert.equal((specOf(demoted).ports as JsonObject[])[0]?.nodePort, undefined);
    assert.equal(store.serviceAllocations.nodePorts, 3);
    store.create("services", svc("c", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }));
    store.delete("services", "a");
    assert.equal(store.serviceAllocations.nodePorts, 2);
    const clusterNodePort = caught(() =>
      store.create("services", svc("e", { ports: [{ port: 80, nodePort: 30100 }] })),
    );
    assert.match(
      clusterNodePort.message,
      /spec\.ports\[0\]\.nodePort: Forbidden: may not be used when `type` is 'ClusterIP'/,
    );
  });

  it("LoadBalancer and ExternalName", () => {
    const lb = store.create(
      "services",
      svc("lb", { type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ port: 443 }] }),
    );
    const spec = specOf(lb);
    assert.equal(spec.allocateLoadBalancerNodePorts, true);
    assert.ok((spec.healthCheckNodePort as number) >= 30000);
    assert.equal(store.serviceAllocations.nodePorts, 2);
    const ext = store.create("services", svc("ext", { type: "ExternalName", externalName: "example.com." }));
    assert.equal(specOf(ext).clusterIP, undefined);
    assert.equal(specOf(ext).internalTrafficPolicy, undefined);
    const bad = caught(() =>
      store.create("services", svc("ext2", { type: "ExternalName", clusterIP: "10.96.0.3" })),
    );
    assert.match(bad.message, /spec\.clusterIPs: Forbidden: may not be set for ExternalName services/);
    assert.match(bad.message, /spec\.externalName: Required value/);
    // ExternalName → ClusterIP allocates; back to ExternalName releases.
    const promoted = store.update("services", svc("ext", { type: "ClusterIP", ports: [{ port: 80 }] }));
    assert.ok(inCidr(specOf(promoted).clusterIP, "10.96."));
    const before = store.serviceAllocations.clusterIPs;
    store.update(
      "services",
      svc("ext", {
        ...specOf(store.getOrThrow("services", "ext")),
        type: "ExternalName",
        externalName: "a.example",
      }),
    );
    assert.equal(store.serviceAllocations.clusterIPs, before - 1);
  });

  it("ports, selector, sessionAffinity and type are validated with the real messages", () => {
    const e = caught(() =>
      store.create(
        "services",
        svc("v", {
          type: "Sideways",
          selector: { "bad key!": "x" },
          sessionAffinity: "Sticky",
          ports: [
            { port: 80 },
            { name: "web", port: 0, protocol: "SCTPX", targetPort: "Not_A_Name" },
            { name: "web", port: 80 },
          ],
        }),
      ),
    );
    assert.equal(e.code, 422);
    const byField = new Map(
      (e.details?.causes ?? []).map((c) => [`${c.field ?? ""} ${c.reason}`, c.message]),
    );
    assert.equal(byField.get("spec.ports[0].name FieldValueRequired"), "Required value");
    assert.equal(
      byField.get("spec.ports[1].port FieldValueInvalid"),
      "Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    assert.equal(
      byField.get("spec.ports[1].protocol FieldValueNotSupported"),
      'Unsupported value: "SCTPX": supported values: "SCTP", "TCP", "UDP"',
    );
    assert.match(
      byField.get("spec.ports[1].targetPort FieldValueInvalid") ?? "",
      /^Invalid value: "Not_A_Name": must contain only alpha-numeric characters/,
    );
    assert.equal(byField.get("spec.ports[2].name FieldValueDuplicate"), 'Duplicate value: "web"');
    assert.match(
      byField.get("spec.ports[2] FieldValueDuplicate") ?? "",
      /^Duplicate value: core\.ServicePort\{Name:"", Protocol:"TCP", AppProtocol:\(\*string\)\(nil\), Port:80,/,
    );
    assert.match(byField.get("spec.selector FieldValueInvalid") ?? "", /^Invalid value: "bad key!"/);
    assert.equal(
      byField.get("spec.sessionAffinity FieldValueNotSupported"),
      'Unsupported value: "Sticky": supported values: "ClientIP", "None"',
    );
    assert.equal(
      byField.get("spec.type FieldValueNotSupported"),
      'Unsupported value: "Sideways": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    );
    assert.match(e.message, /^Service "v" is invalid: \[/);
    assert.equal(store.serviceAllocations.clusterIPs, 0);
    const huge = caught(() => store.create("services", svc("h", { ports: [{ port: 2 ** 32 }] })));
    assert.equal(huge.code, 400, "out of int32 range fails decoding, as in Go");
    assert.match(
      huge.message,
      /cannot unmarshal number into Go struct field spec\.ports\.port of type int32/,
    );
    const noPorts = caught(() => store.create("services", svc("n", {})));
    assert.equal(noPorts.message, 'Service "n" is invalid: spec.ports: Required value');
    const name = caught(() => store.create("services", svc("1st", { ports: [{ port: 1 }] })));
    assert.match(
      name.message,
      /metadata\.name: Invalid value: "1st": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character/,
    );
  });

  it("sessionAffinity ClientIP defaults its timeout to 10800 s and checks it", () => {
    const s = store.create("services", svc("s", { sessionAffinity: "ClientIP", ports: [{ port: 1 }] }));
    assert.deepEqual(specOf(s).sessionAffinityConfig, { clientIP: { timeoutSeconds: 10800 } });
    const e = caught(() =>
      store.create(
        "services",
        svc("t", {
          sessionAffinity: "ClientIP",
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } },
          ports: [{ port: 1 }],
        }),
      ),
    );
    assert.match(e.message, /timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400/);
    const none = caught(() =>
      store.create(
        "services",
        svc("u", { sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } }, ports: [{ port: 1 }] }),
      ),
    );
    assert.match(
      none.message,
      /spec\.sessionAffinityConfig: Forbidden: must not be set when session affinity is None/,
    );
  });

  it("clusterIP is immutable; an update without it keeps the allocated one", () => {
    const s = store.create("services", svc("s", { ports: [{ port: 80 }] }));
    const ip = specOf(s).clusterIP as string;
    const e = caught(() => store.patch("services", "s", { spec: { clusterIP: "10.96.0.50" } }, "merge"));
    assert.equal(e.code, 422);
    assert.equal(
      e.message,
      'Service "s" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.50"}: may not change once set',
    );
    // PUT without clusterIP/clusterIPs (kubectl replace of the original file): the allocation stays.
    const replaced = store.update("services", svc("s", { ports: [{ port: 81 }] }));
    assert.equal(specOf(replaced).clusterIP, ip);
    assert.deepEqual(specOf(replaced).clusterIPs, [ip]);
    assert.equal(store.serviceAllocations.clusterIPs, 1);
    const status = store.patch(
      "services",
      "s",
      { status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } } },
      "merge",
      { subresource: "status" },
    );
    assert.equal(specOf(status).clusterIP, ip);
  });

  it("a namespace's deletion releases its Services' allocations", () => {
    store.create("namespaces", { metadata: { name: "team" } });
    store.create("services", svc("a", { type: "NodePort", ports: [{ port: 1 }] }), { namespace: "team" });
    assert.deepEqual(store.serviceAllocations, { clusterIPs: 1, nodePorts: 1, serviceCidr: "10.96.0.0/16" });
    store.delete("namespaces", "team");
    assert.deepEqual(store.serviceAllocations, { clusterIPs: 0, nodePorts: 0, serviceCidr: "10.96.0.0/16" });
  });

  it("the service CIDR is an option; a full range is a 500 like the real allocator's", () => {
    const small = new LabStore({ builtinNamespaces: ["default"], serviceCidr: "10.100.7.0/30" });
    const a = small.create("services", svc("a", { ports: [{ port: 1 }] }));
    assert.ok(inCidr(specOf(a).clusterIP, "10.100.7."));
    small.create("services", svc("b", { ports: [{ port: 1 }] }));
    const full = caught(() => small.create("services", svc("c", { ports: [{ port: 1 }] })));
    assert.equal(full.code, 500);
    assert.equal(full.message, "Internal error occurred: failed to allocate a serviceIP: range is full");
    assert.throws(() => new LabStore({ serviceCidr: "10.0.0.0/33" }), RangeError);
  });

  it("allocators: bounds, reuse, and the error kinds", () => {
    const ips = new ClusterIpAllocator("192.0.2.0/29");
    assert.equal(ips.cidr, "192.0.2.0/29");
    assert.ok(
      !ips.contains("192.0.2.0") &&
        ips.contains("192.0.2.1") &&
        ips.contains("192.0.2.6") &&
        !ips.contains("192.0.2.7"),
    );
    const got = new Set([1, 2, 3, 4, 5, 6].map(() => ips.allocate()));
    assert.equal(got.size, 6);
    assert.throws(
      () => ips.allocate(),
      (e: unknown) => e instanceof AllocationError && e.kind === "full",
    );
    ips.release("192.0.2.3");
    assert.equal(ips.allocate("192.0.2.3"), "192.0.2.3");
    const ports = new NodePortAllocator(30000, 30001);
    assert.equal(ports.allocate(30001), 30001);
    assert.equal(ports.allocate(), 30000);
    assert.throws(
      () => ports.allocate(29999),
      (e: unknown) => e instanceof AllocationError && e.kind === "range",
    );
    assert.throws(
      () => ports.allocate(30000),
      (e: unknown) => e instanceof AllocationError && e.kind === "allocated",
    );
    assert.throws(() => new NodePortAllocator(3, 2), RangeError);
  });

  it("fuzz: no Service body crashes the store or leaks an allocation", () => {
    const scalar = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -5, max: 70000 }),
      fc.double(),
      fc.constantFrom(
        "",
        "None",
        "10.96.0.10",
        "10.0.0.1",
        "::1",
        "TCP",
        "UDP",
        "SCTP",
        "http",
        "ClientIP",
        "NodePort",
        "LoadBalancer",
        "ExternalName",
        "ClusterIP",
        "Local",
        "IPv4",
        "IPv6",
        "x".repeat(70),
      ),
      fc.string({ maxLength: 8 }),
    );
    const value: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: "small" },
        scalar,
        fc.array(tie("v"), { maxLength: 3 }),
        fc.dictionary(fc.string({ maxLength: 4 }), tie("v"), { maxKeys: 3 }),
      ),
    })).v;
    const port = fc.record(
      {
        name: scalar,
        port: scalar,
        targetPort: scalar,
        protocol: scalar,
        nodePort: fc.oneof(scalar, fc.integer({ min: 29990, max: 32770 })),
      },
      { requiredKeys: [] },
    );
    const spec = fc.record(
      {
        type: scalar,
        clusterIP: scalar,
        clusterIPs: fc.oneof(value, fc.array(scalar, { maxLength: 3 })),
        ipFamilies: fc.oneof(value, fc.array(scalar, { maxLength: 3 })),
        ipFamilyPolicy: scalar,
        ports: fc.oneof(value, fc.array(fc.oneof(port, value), { maxLength: 4 })),
        selector: value,
        sessionAffinity: scalar,
        sessionAffinityConfig: value,
        externalIPs: value,
        externalName: scalar,
        externalTrafficPolicy: scalar,
        internalTrafficPolicy: scalar,
        healthCheckNodePort: scalar,
        allocateLoadBalancerNodePorts: scalar,
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      spec.map((s) => ({ spec: s })),
      fc.record({ spec: value, status: value }, { requiredKeys: [] }),
    );
    const fuzzStore = new LabStore({ builtinNamespaces: ["default"] });
    let n = 0;
    fc.assert(
      fc.property(body, fc.boolean(), (b, asUpdate) => {
        const name = `s${n++ % 7}`;
        const obj = { apiVersion: "v1", kind: "Service", metadata: { name }, ...(b as JsonObject) };
        try {
          if (asUpdate && fuzzStore.get("services", name) !== undefined) fuzzStore.update("services", obj);
          else if (fuzzStore.get("services", name) === undefined) fuzzStore.create("services", obj);
          else fuzzStore.patch("services", name, { spec: (b as JsonObject).spec ?? null }, "merge");
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          assert.ok([400, 422, 500].includes(err.code), `${err.code} ${err.message}`);
          if (err.code === 500) assert.match(err.message, /range is full/);
        }
      }),
      { numRuns: 400 },
    );
    for (const s of fuzzStore.list("services").items)
      fuzzStore.delete("services", (s.metadata as JsonObject).name as string);
    assert.deepEqual(fuzzStore.serviceAllocations, {
      clusterIPs: 0,
      nodePorts: 0,
      serviceCidr: "10.96.0.0/16",
    });
  });
});

describe("lab apiserver: EndpointSlice admission", () => {
  let store: LabStore;
  beforeEach(() => {
    store = new LabStore({ builtinNamespaces: ["default"] });
  });

  const slice = (name: string, extra: JsonObject): JsonObject => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4",
    ...extra,
  });

  it("stores a valid slice with port defaults and a generation that follows its content", () => {
    const s = store.create(
      "endpointslices",
      slice("web-abc", {
        endpoints: [
          {
            addresses: ["10.244.0.5"],
            conditions: { ready: true },
            nodeName: "n1",
            targetRef: { kind: "Pod", name: "p", namespace: "default" },
          },
        ],
        ports: [{ port: 8080 }],
      }),
    );
    assert.deepEqual(s.ports, [{ port: 8080, name: "", protocol: "TCP" }]);
    assert.equal((s.metadata as JsonObject).generation, 1);
    const same = store.patch("endpointslices", "web-abc", { metadata: { annotations: { a: "b" } } }, "merge");
    assert.equal((same.metadata as JsonObject).generation, 1);
    const moved = store.patch(
      "endpointslices",
      "web-abc",
      { endpoints: [{ addresses: ["10.244.0.6"] }] },
      "merge",
    );
    assert.equal((moved.metadata as JsonObject).generation, 2);
  });

  it("rejects what the real server rejects, with its messages", () => {
    const e = caught(() =>
      store.create(
        "endpointslices",
        slice("bad", {
          addressType: "IPv5",
          endpoints: [
            { addresses: [] },
            { addresses: ["10.0.0.1"], nodeName: "Not_A_Node", hostname: "a.b" },
          ],
          ports: [
            { name: "p", protocol: "ICMP" },
            { name: "p", port: 70000 },
          ],
        }),
      ),
    );
    assert.equal(e.code, 422);
    assert.match(e.message, /^EndpointSlice\.discovery\.k8s\.io "bad" is invalid: \[/);
    const byField = new Map((e.details?.causes ?? []).map((c) => [c.field ?? "", c.message]));
    assert.equal(byField.get("endpoints[0].addresses"), "Required value: must contain at least 1 address");
    assert.match(
      byField.get("endpoints[1].nodeName") ?? "",
      /^Invalid value: "Not_A_Node": a lowercase RFC 1123 subdomain/,
    );
    assert.match(
      byField.get("endpoints[1].hostname") ?? "",
      /^Invalid value: "a\.b": a lowercase RFC 1123 label/,
    );
    assert.equal(
      byField.get("ports[0].protocol"),
      'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    );
    assert.equal(byField.get("ports[1].name"), 'Duplicate value: "p"');
    assert.equal(
      byField.get("ports[1].port"),
      "Invalid value: 70000: must be between 1 and 65535, inclusive",
    );
    assert.equal(
      byField.get("addressType"),
      'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"',
    );
    const v4 = caught(() =>
      store.create("endpointslices", slice("v4", { endpoints: [{ addresses: ["fe80::1", "127.0.0.1"] }] })),
    );
    const msgs = (v4.details?.causes ?? []).map((c) => `${c.field ?? ""}: ${c.message}`);
    assert.deepEqual(msgs, [
      'endpoints[0].addresses[0]: Invalid value: "fe80::1": must be a valid IPv4 address',
      'endpoints[0].addresses[1]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)',
    ]);
    const missing = caught(() => store.create("endpointslices", { metadata: { name: "m" } }));
    assert.equal(
      missing.message,
      'EndpointSlice.discovery.k8s.io "m" is invalid: addressType: Required value',
    );
    const typed = caught(() =>
      store.create(
        "endpointslices",
        slice("t", { endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: "yes" } }] }),
      ),
    );
    assert.equal(typed.code, 400);
    const label = caught(() =>
      store.create("endpointslices", {
        ...slice("l", {}),
        metadata: { name: "l", labels: { "kubernetes.io/service-name": "not a name" } },
      }),
    );
    assert.equal(label.code, 422);
  });

  it("addressType is immutable", () => {
    store.create("endpointslices", slice("s", { endpoints: [] }));
    const e = caught(() => store.patch("endpointslices", "s", { addressType: "FQDN" }, "merge"));
    assert.equal(
      e.message,
      'EndpointSlice.discovery.k8s.io "s" is invalid: addressType: Invalid value: "FQDN": field is immutable',
    );
  });

  it("fuzz: no EndpointSlice body crashes the store", () => {
    const anyJson = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue>;
    const endpoint = fc.record(
      {
        addresses: fc.oneof(anyJson, fc.array(fc.constantFrom("10.0.0.1", "x", "", "::1"), { maxLength: 3 })),
        conditions: anyJson,
        nodeName: anyJson,
        targetRef: anyJson,
      },
      { requiredKeys: [] },
    );
    const body = fc.record(
      {
        addressType: fc.oneof(anyJson, fc.constantFrom("IPv4", "IPv6", "FQDN")),
        endpoints: fc.oneof(anyJson, fc.array(endpoint, { maxLength: 3 })),
        ports: anyJson,
      },
      { requiredKeys: [] },
    );
    let n = 0;
    fc.assert(
      fc.property(body, (b) => {
        try {
          store.create("endpointslices", { metadata: { name: `e${n++}` }, ...(b as JsonObject) });
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          assert.ok([400, 422].includes(err.code), `${err.code} ${err.message}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
