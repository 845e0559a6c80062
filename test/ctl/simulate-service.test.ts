/**
 * policy simulate with probes to `svc/namespace/name`: the Service resolved by the agent's builder
 * and every backend probed through the real programs (BPF_PROG_TEST_RUN), each with its verdict.
 */
import assert from "node:assert/strict";
import type { KubernetesObject } from "@kubernetes/client-node";
import { Simulator } from "../../ctl/simulate/simulator.js";
import { requireRoot } from "../helpers/privileged.js";

function pod(name: string, ip: string, app: string): KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "demo", labels: { app } },
    spec: { containers: [{ name: "c", image: "x", ports: [{ name: "http", containerPort: 8080 }] }] },
    status: { phase: "Running", podIP: ip },
  } as KubernetesObject;
}

const objects: KubernetesObject[] = [
  { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } },
  pod("client", "10.244.0.9", "client"),
  pod("web-a", "10.244.0.2", "web"),
  pod("web-b", "10.244.1.2", "web-b"),
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "web", namespace: "demo" },
    spec: {
      clusterIP: "10.96.0.10",
      ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
    },
  } as KubernetesObject,
  {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "web-1", namespace: "demo", labels: { "kubernetes.io/service-name": "web" } },
    addressType: "IPv4",
    endpoints: [
      { addresses: ["10.244.0.2"], nodeName: "n1", conditions: { ready: true } },
      { addresses: ["10.244.1.2"], nodeName: "n2", conditions: { ready: true } },
    ],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  } as KubernetesObject,
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "empty", namespace: "demo" },
    spec: { clusterIP: "10.96.0.11", ports: [{ port: 53, protocol: "UDP" }] },
  } as KubernetesObject,
  {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "web-b-deny", namespace: "demo" },
    spec: { podSelector: { matchLabels: { app: "web-b" } }, policyTypes: ["Ingress"] },
  } as KubernetesObject,
];

describe("policy simulate: probes to a Service go through its translation", function () {
  let sim: Simulator | undefined;

  before(function () {
    requireRoot(this);
    sim = new Simulator();
    assert.deepEqual(sim.apply(objects), []);
  });

  after(function () {
    sim?.close();
  });

  it("svc/demo/web:80 → both backends on the target port 8080, each with its own verdict", function () {
    const r = sim!.probe({ from: "demo/client", to: "svc/demo/web", port: 80, protocol: "TCP" });
    assert.equal(r.service?.frontend, "10.96.0.10:80/TCP");
    assert.deepEqual(
      r.service.backends.map((b) => [b.address, b.pod, b.allowed, b.deniedBy]),
      [
        ["10.244.0.2:8080", "demo/web-a", true, undefined],
        ["10.244.1.2:8080", "demo/web-b", false, "ingress"],
      ],
    );
    assert.equal(r.allowed, false, "not every backend admits the client");
    assert.equal(r.deniedBy, "ingress");
    assert.equal(r.service.backends[0]?.ingress.verdict, "open");
    assert.equal(r.service.backends[1]?.ingress.datapathReason, "drop_policy");
  });

  it("a Service without endpoints is denied by the translation (the datapath rejects)", function () {
    const r = sim!.probe({ from: "demo/client", to: "svc/demo/empty", port: 53, protocol: "UDP" });
    assert.equal(r.allowed, false);
    assert.equal(r.deniedBy, "service");
    assert.match(r.service?.why ?? "", /no ready .* endpoint/);
  });

  it("names a missing Service or port clearly", function () {
    assert.throws(
      () => sim!.probe({ from: "demo/client", to: "svc/demo/nope", port: 80, protocol: "TCP" }),
      /no such Service/,
    );
    assert.throws(
      () => sim!.probe({ from: "demo/client", to: "svc/demo/web", port: 81, protocol: "TCP" }),
      /no ClusterIP frontend on TCP\/81/,
    );
  });
});
