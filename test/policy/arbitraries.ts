/** fast-check generators of small clusters: namespaces, pods with named ports, valid NetworkPolicies. */
import fc from "fast-check";
import type { V1Container, V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { model, namespace, pod, policy } from "./fixtures.js";

export const NAMESPACES = ["a", "b"] as const;
export const POD_SLOTS = 6;
export const EXTERNAL = ["192.168.1.1", "192.168.1.200", "8.8.8.8"] as const;
export const NODES = ["n1", "n2"] as const;

/** The address pod slot `i` uses (variant 1 = after an IP change). */
export function podIp(i: number, variant = 0): string {
  return `10.1.0.${i + 1 + variant * 100}`;
}

export const ALL_IPS: readonly string[] = [
  ...Array.from({ length: POD_SLOTS }, (_, i) => podIp(i)),
  ...Array.from({ length: POD_SLOTS }, (_, i) => podIp(i, 1)),
  ...EXTERNAL,
];

const labelsArb = fc.record(
  { app: fc.constantFrom("web", "db"), tier: fc.constantFrom("fe", "be") },
  { requiredKeys: [] },
);
const nsLabelsArb = fc.record({ team: fc.constantFrom("x", "y") }, { requiredKeys: [] });

export const namespaceArb = (name: string): fc.Arbitrary<V1Namespace> =>
  nsLabelsArb.map((l) => namespace(name, l));

/** A pod in slot `i`. */
export const podArb = (i: number): fc.Arbitrary<V1Pod> =>
  fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      labels: labelsArb,
      http: fc.option(fc.constantFrom(80, 8080), { nil: undefined }),
      dns: fc.boolean(),
      sidecarMetrics: fc.boolean(),
      node: fc.constantFrom(...NODES),
      phase: fc.constantFrom("Running", "Running", "Running", "Succeeded"),
      ipVariant: fc.constantFrom(0, 0, 0, 1),
    })
    .map((r) => {
      const ports: { name: string; port: number; protocol?: string }[] = [];
      if (r.http !== undefined) ports.push({ name: "http", port: r.http });
      if (r.dns) ports.push({ name: "dns", port: 53, protocol: "UDP" });
      const p = pod(r.ns, `p${i}`, podIp(i, r.ipVariant), {
        labels: r.labels,
        node: r.node,
        ports,
        phase: r.phase,
      });
      if (r.sidecarMetrics && p.spec !== undefined)
        p.spec.initContainers = model<V1Container[]>([
          { name: "side", restartPolicy: "Always", ports: [{ name: "metrics", containerPort: 9090 }] },
        ]);
      return p;
    });

const podSelectorArb = fc.oneof(
  fc.constant({}),
  labelsArb.map((l) => ({ matchLabels: l })),
  fc.record({
    matchExpressions: fc
      .tuple(
        fc.constantFrom("app", "tier"),
        fc.constantFrom("In", "NotIn", "Exists", "DoesNotExist"),
        fc.subarray(["web", "db", "fe", "be"], { minLength: 1, maxLength: 2 }),
      )
      .map(([key, operator, values]) => [
        operator === "In" || operator === "NotIn" ? { key, operator, values } : { key, operator },
      ]),
  }),
);

const nsSelectorArb = fc.oneof(
  fc.constant({}),
  nsLabelsArb.map((l) => ({ matchLabels: l })),
  fc.constantFrom(...NAMESPACES).map((n) => ({ matchLabels: { "kubernetes.io/metadata.name": n } })),
  fc.constant({ matchExpressions: [{ key: "team", operator: "DoesNotExist" }] }),
);

const ipBlockArb = fc.constantFrom(
  { cidr: "10.1.0.0/24", except: ["10.1.0.0/30"] },
  { cidr: "0.0.0.0/0", except: ["10.1.0.0/24"] },
  { cidr: "10.1.0.4/31" },
  { cidr: "10.1.0.0/16" },
  { cidr: "192.168.0.0/16" },
  { cidr: "192.168.1.0/24", except: ["192.168.1.128/25"] },
  { cidr: "fd00::/8" },
);

const peerArb = fc.oneof(
  podSelectorArb.map((podSelector) => ({ podSelector })),
  nsSelectorArb.map((namespaceSelector) => ({ namespaceSelector })),
  fc
    .tuple(podSelectorArb, nsSelectorArb)
    .map(([podSelector, namespaceSelector]) => ({ podSelector, namespaceSelector })),
  ipBlockArb.map((ipBlock) => ({ ipBlock })),
);

const portArb = fc.constantFrom<Record<string, unknown>>(
  { port: 80 },
  { port: 53, protocol: "UDP" },
  { port: "http" },
  { port: "dns", protocol: "UDP" },
  { port: "http", protocol: "UDP" },
  { port: "metrics" },
  { protocol: "UDP" },
  { port: 70, endPort: 90 },
  {},
);

const ruleArb = fc.record(
  { peers: fc.array(peerArb, { maxLength: 2 }), ports: fc.array(portArb, { maxLength: 2 }) },
  { requiredKeys: [] },
);

/** A valid policy named `name`. */
export const policyArb = (name: string): fc.Arbitrary<V1NetworkPolicy> =>
  fc
    .record({
      ns: fc.constantFrom(...NAMESPACES),
      podSelector: podSelectorArb,
      policyTypes: fc.option(fc.constantFrom(["Ingress"], ["Egress"], ["Ingress", "Egress"]), {
        nil: undefined,
      }),
      ingress: fc.option(fc.array(ruleArb, { maxLength: 2 }), { nil: undefined }),
      egress: fc.option(fc.array(ruleArb, { maxLength: 2 }), { nil: undefined }),
    })
    .map((r) => {
      const spec: Record<string, unknown> = { podSelector: r.podSelector };
      if (r.policyTypes !== undefined) spec.policyTypes = r.policyTypes;
      if (r.ingress !== undefined)
        spec.ingress = r.ingress.map((x) => ({
          ...(x.peers !== undefined ? { from: x.peers } : {}),
          ...(x.ports !== undefined ? { ports: x.ports } : {}),
        }));
      if (r.egress !== undefined)
        spec.egress = r.egress.map((x) => ({
          ...(x.peers !== undefined ? { to: x.peers } : {}),
          ...(x.ports !== undefined ? { ports: x.ports } : {}),
        }));
      return policy(r.ns, name, spec);
    });

export interface Cluster {
  namespaces: V1Namespace[];
  pods: V1Pod[];
  policies: V1NetworkPolicy[];
}

export const clusterArb: fc.Arbitrary<Cluster> = fc.record({
  namespaces: fc.tuple(...NAMESPACES.map(namespaceArb)),
  pods: fc
    .integer({ min: 1, max: POD_SLOTS })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => podArb(i)))),
  policies: fc
    .integer({ min: 0, max: 4 })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, j) => policyArb(`np${j}`)))),
});

/** One event of a random history. */
export type Op =
  | { kind: "ns"; name: string; obj: V1Namespace | undefined }
  | { kind: "pod"; slot: number; obj: V1Pod | undefined }
  | { kind: "policy"; slot: number; obj: V1NetworkPolicy | undefined };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc
    .constantFrom(...NAMESPACES)
    .chain((name) =>
      fc.option(namespaceArb(name), { nil: undefined }).map((obj): Op => ({ kind: "ns", name, obj })),
    ),
  fc
    .integer({ min: 0, max: POD_SLOTS - 1 })
    .chain((slot) =>
      fc.option(podArb(slot), { nil: undefined, freq: 4 }).map((obj): Op => ({ kind: "pod", slot, obj })),
    ),
  fc
    .integer({ min: 0, max: 3 })
    .chain((slot) =>
      fc
        .option(policyArb(`np${slot}`), { nil: undefined, freq: 3 })
        .map((obj): Op => ({ kind: "policy", slot, obj })),
    ),
);
