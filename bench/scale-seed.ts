/**
 * The cluster of bench:scale (and of the readiness-at-scale test): `nodes` nodes, 50 namespaces,
 * `pods` pods (`localPods` of them on node-0, the rest spread over the other nodes), and
 * `policies` NetworkPolicies with pod and namespace selectors over 200 app labels, numbered and
 * named ports, some with egress. Deterministic: the same shape gives the same objects.
 */
import type { JsonObject } from "../policy/object-files.js";

export interface ScaleShape {
  pods: number;
  nodes: number;
  policies: number;
  /** Pods on node-0 (the measured agent's node). Default 100. */
  localPods?: number;
  /** node-0's InternalIP (the agent's own address). */
  node0Ip: string;
}

export const NAMESPACES = 50;
export const APPS = 200;

/** Node i's pod CIDR: a /20 of 10.0.0.0/8 (up to 4,096 nodes of up to 4,093 pods). */
export function podCidr(i: number): string {
  return `10.${i >> 4}.${(i & 15) << 4}.0/20`;
}

/** Address `k` (0-based) of node i's pod CIDR. */
export function podIp(i: number, k: number): string {
  const n = (i << 12) + k + 2;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export function nodeIp(i: number, node0Ip: string): string {
  return i === 0 ? node0Ip : `198.18.${i >> 8}.${i & 255}`;
}

export function scaleNode(i: number, node0Ip: string): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: `node-${i}`, labels: { "kubernetes.io/hostname": `node-${i}` } },
    spec: { podCIDR: podCidr(i), podCIDRs: [podCidr(i)] },
    status: { addresses: [{ type: "InternalIP", address: nodeIp(i, node0Ip) }] },
  };
}

/** A running pod as a kubelet would report it, with the noise real pods carry. */
export function scalePod(name: string, n: number, node: number, ip: string, app = n % APPS): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: `ns-${app % NAMESPACES}`,
      labels: { app: `app-${app}`, "pod-template-hash": `h${n % 13}` },
      annotations: { "bench.skein/note": "x".repeat(64) },
    },
    spec: {
      nodeName: `node-${node}`,
      restartPolicy: "Always",
      containers: [
        {
          name: "main",
          image: "registry.example/app:1.0",
          args: ["--serve", "--port=8080"],
          env: [{ name: "MODE", value: "bench" }],
          ports: [
            { name: "http", containerPort: 8080 + (n % 3), protocol: "TCP" },
            { name: "metrics", containerPort: 9090, protocol: "TCP" },
          ],
          resources: { requests: { cpu: "10m", memory: "16Mi" } },
        },
      ],
    },
    status: {
      phase: "Running",
      hostIP: "198.18.0.1",
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

function policy(j: number): JsonObject {
  const app = j % APPS;
  const egress = j % 4 === 0;
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: `np-${j}`, namespace: `ns-${app % NAMESPACES}` },
    spec: {
      podSelector: { matchLabels: { app: `app-${app}` } },
      policyTypes: egress ? ["Ingress", "Egress"] : ["Ingress"],
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: `app-${(app + NAMESPACES) % APPS}` } } },
            {
              namespaceSelector: { matchLabels: { team: `team-${j % 10}` } },
              podSelector: { matchLabels: { app: `app-${(app + 7) % APPS}` } },
            },
          ],
          ports: [
            { protocol: "TCP", port: 80 + (j % 20) },
            { protocol: "TCP", port: "http" },
          ],
        },
      ],
      ...(egress
        ? {
            egress: [
              {
                to: [{ namespaceSelector: { matchLabels: { team: `team-${(j + 1) % 10}` } } }],
                ports: [{ protocol: "UDP", port: 53 }],
              },
              {
                to: [{ ipBlock: { cidr: `172.16.${j % 256}.0/24` } }],
                ports: [{ protocol: "TCP", port: 443 }],
              },
            ],
          }
        : {}),
    },
  };
}

/** Where pod n of the seed lives: node and address. */
export function seedPlacement(shape: ScaleShape, n: number): { node: number; ip: string } {
  const local = shape.localPods ?? 100;
  if (n < local || shape.nodes < 2) return { node: 0, ip: podIp(0, n) };
  const r = n - local;
  const node = 1 + (r % (shape.nodes - 1));
  return { node, ip: podIp(node, Math.floor(r / (shape.nodes - 1))) };
}

/** Every object of the seed: namespaces, nodes, policies, pods. */
export function scaleSeed(shape: ScaleShape): JsonObject[] {
  const out: JsonObject[] = [];
  for (let i = 0; i < NAMESPACES; i++)
    out.push({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: `ns-${i}`,
        labels: { team: `team-${i % 10}`, "kubernetes.io/metadata.name": `ns-${i}` },
      },
    });
  for (let i = 0; i < shape.nodes; i++) out.push(scaleNode(i, shape.node0Ip));
  for (let j = 0; j < shape.policies; j++) out.push(policy(j));
  for (let n = 0; n < shape.pods; n++) {
    const { node, ip } = seedPlacement(shape, n);
    out.push(scalePod(`p-${n}`, n, node, ip));
  }
  return out;
}
