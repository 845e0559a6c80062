/**
 * Native routing and Skein's BPF Service load balancing together, on the lab with real packets
 * (agents with --routing=native --service-lb=bpf): a remote backend's replies arrive unencapsulated
 * on the uplink (skn_from_uplink → skn_from_native) and must get the frontend back, for a pod's
 * flow and for the node's own; world → NodePort with a backend on the other node crosses natively.
 */
import assert from "node:assert/strict";
import type { V1ServiceSpec } from "@kubernetes/client-node";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { eventually, useLab } from "../helpers/lab.js";

const SERVICE_CIDR = "10.96.0.0/12";
const NS = "nsv";

describe("e2e: native routing with Service load balancing in BPF", function () {
  this.timeout(240000);
  const fx = useLab(2, {
    agentArgs: ["--routing=native", `--service-cidr=${SERVICE_CIDR}`, "--service-lb=bpf"],
  });
  let n1: LabNode;
  let n2: LabNode;
  let a: LabPod; // n1
  const vip: Record<string, string> = {};

  async function service(name: string, spec: V1ServiceSpec): Promise<void> {
    const svc = await fx.lab
      .core()
      .createNamespacedService({ namespace: NS, body: { metadata: { name }, spec } });
    vip[name] = svc.spec?.clusterIP ?? "";
  }

  before(async function () {
    [n1, n2] = [fx.nodes[0]!, fx.nodes[1]!];
    a = await fx.lab.addPod({ namespace: NS, name: "a", node: n1, labels: { app: "a" } });
    await fx.lab.addPod({ namespace: NS, name: "c", node: n2, labels: { app: "c" } });
    await service("to-c", {
      type: "NodePort",
      selector: { app: "c" },
      ports: [
        { name: "http", port: 80, targetPort: 8080, protocol: "TCP", nodePort: 30090 },
        { name: "dns", port: 53, targetPort: 5353, protocol: "UDP", nodePort: 30090 },
      ],
    });
    await eventually(
      "a reaches c's ClusterIP",
      async () => (await fx.lab.probe(a, "TCP", vip["to-c"]!, 80, 500)).ok,
      30000,
    );
  });

  it("pod → ClusterIP → pod on the other node: TCP and UDP, the reply from the ClusterIP", async function () {
    for (const proto of ["TCP", "UDP"] as const) {
      const r = await fx.lab.probe(a, proto, vip["to-c"]!, proto === "TCP" ? 80 : 53, 1500);
      assert.ok(r.ok, `${proto} a → to-c: ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/c`);
    }
  });

  it("node → ClusterIP with the backend on the other node", async function () {
    const r = await fx.lab.probe(n1, "TCP", vip["to-c"]!, 80, 1500);
    assert.ok(r.ok, `n1 → to-c: ${r.error}`);
    assert.equal(r.reply?.name, `${NS}/c`);
  });

  it("world → NodePort on the node without the backend, and on the node with it", async function () {
    for (const n of [n1, n2]) {
      const r = await fx.lab.probe("world", "TCP", n.ip, 30090, 1500);
      assert.ok(r.ok, `world → ${n.name}:30090: ${r.error}`);
      assert.equal(r.reply?.name, `${NS}/c`);
    }
  });
});
