/**
 * A Service whose endpoint is a node's own address (the `kubernetes` Service: the API server on a
 * control-plane node, which CoreDNS reaches through 10.96.0.1), load-balanced in BPF: a pod on the
 * same node and a pod on another node reach it through the ClusterIP, and the replies come back from
 * the ClusterIP (the reply of a host backend on the pod's own node reaches the pod through the stack
 * and skn_to_pod, which must reverse the translation too).
 */
import assert from "node:assert/strict";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { eventually, useLab } from "../helpers/lab.js";

const SERVICE_CIDR = "10.96.0.0/12";
const NS = "lbh";

describe("e2e: a Service backed by a node address, load-balanced in BPF (--service-lb=bpf)", function () {
  this.timeout(240000);
  const fx = useLab(2, { agentArgs: [`--service-cidr=${SERVICE_CIDR}`, "--service-lb=bpf"] });
  let n1: LabNode;
  let a: LabPod; // n1
  let c: LabPod; // n2
  let vip = "";

  before(async function () {
    let n2: LabNode;
    [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    c = await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c" } });
    // Selectorless, its slice written by hand, as the API server does for `kubernetes`.
    const svc = await fx.lab.core().createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: "api" },
        spec: { ports: [{ name: "https", port: 443, targetPort: 8080, protocol: "TCP" }] },
      },
    });
    vip = svc.spec?.clusterIP ?? "";
    await fx.lab
      .kubeConfig()
      .makeApiClient((await import("@kubernetes/client-node")).DiscoveryV1Api)
      .createNamespacedEndpointSlice({
        namespace: NS,
        body: {
          metadata: { name: "api-1", labels: { "kubernetes.io/service-name": "api" } },
          addressType: "IPv4",
          endpoints: [{ addresses: [n1.ip], conditions: { ready: true } }],
          ports: [{ name: "https", port: 8080, protocol: "TCP" }],
        },
      });
  });

  for (const [label, pod] of [
    ["a pod on the backend's node", () => a],
    ["a pod on another node", () => c],
  ] as const)
    it(`${label} reaches the node's address through the ClusterIP; the reply comes from the ClusterIP`, async function () {
      await eventually(
        `${pod().name} → api ${vip}:443`,
        async () => (await fx.lab.probe(pod(), "TCP", vip, 443, 1000)).ok,
        20000,
      );
      const r = await fx.lab.probe(pod(), "TCP", vip, 443, 1500);
      assert.ok(r.ok, r.error);
      assert.equal(r.reply?.name, `node/${n1.name}`);
    });
});
