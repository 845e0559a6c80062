/**
 * What the agent takes from Kubernetes objects, validated. Bad objects (a Node without podCIDR, a
 * malformed CIDR, a Pod without IP) are skipped with a reason, never thrown.
 */
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { isIPv4, parsePrefix } from "../../maps/net.js";
import { SERVICE_NAME_LABEL } from "../../policy/lb-views.js";

export interface NodeView {
  name: string;
  internalIp: string;
  podCidr: string;
}

export interface PodView {
  namespace: string;
  name: string;
  nodeName: string;
  ip: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string; detail: string };

export function nodeView(node: V1Node): Checked<NodeView> {
  const name = node.metadata?.name;
  if (name === undefined || name === "")
    return { ok: false, reason: "no-name", detail: "metadata.name is empty" };
  const cidrs = [node.spec?.podCIDR, ...(node.spec?.podCIDRs ?? [])].filter(
    (c): c is string => typeof c === "string" && c !== "",
  );
  if (cidrs.length === 0)
    return { ok: false, reason: "no-pod-cidr", detail: `node ${name} has no spec.podCIDR` };
  let podCidr: string | undefined;
  for (const c of cidrs) {
    if (c.includes(":")) continue; // IPv6 pod CIDRs are not Skein's business
    try {
      const p = parsePrefix(c);
      if (!c.includes("/")) throw new RangeError("no prefix length");
      podCidr = `${p.ip}/${p.length}`;
      break;
    } catch {
      return {
        ok: false,
        reason: "bad-pod-cidr",
        detail: `node ${name} has a malformed pod CIDR ${JSON.stringify(c)}`,
      };
    }
  }
  if (podCidr === undefined)
    return { ok: false, reason: "no-pod-cidr", detail: `node ${name} has no IPv4 pod CIDR` };
  const internal = node.status?.addresses?.find((a) => a.type === "InternalIP" && isIPv4(a.address))?.address;
  if (internal === undefined)
    return { ok: false, reason: "no-internal-ip", detail: `node ${name} has no IPv4 InternalIP` };
  return { ok: true, value: { name, internalIp: internal, podCidr } };
}

/** A pod that occupies a pod-network address. */
export function podView(pod: V1Pod): Checked<PodView> {
  const namespace = pod.metadata?.namespace ?? "default";
  const name = pod.metadata?.name ?? "";
  const id = `${namespace}/${name}`;
  if (pod.spec?.hostNetwork === true)
    return { ok: false, reason: "host-network", detail: `pod ${id} uses the host network` };
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed")
    return { ok: false, reason: "terminated", detail: `pod ${id} is ${phase}` };
  const ip = pod.status?.podIP ?? pod.status?.podIPs?.find((p) => isIPv4(p.ip))?.ip;
  if (ip === undefined || ip === "") return { ok: false, reason: "no-ip", detail: `pod ${id} has no IP yet` };
  if (!isIPv4(ip))
    return { ok: false, reason: "bad-ip", detail: `pod ${id} has a malformed IP ${JSON.stringify(ip)}` };
  const nodeName = pod.spec?.nodeName;
  if (nodeName === undefined || nodeName === "")
    return { ok: false, reason: "unscheduled", detail: `pod ${id} has no node` };
  return { ok: true, value: { namespace, name, nodeName, ip } };
}

/**
 * The addresses NodePort frontends answer on: the node's IPv4 InternalIP and ExternalIP addresses
 * (kube-proxy's default answers on every local address; Skein takes the ones the cluster publishes,
 * so that every node computes the same frontends for the same Node object).
 */
export function nodeServiceAddresses(node: V1Node): string[] {
  const out: string[] = [];
  for (const a of node.status?.addresses ?? [])
    if ((a.type === "InternalIP" || a.type === "ExternalIP") && isIPv4(a.address) && !out.includes(a.address))
      out.push(a.address);
  return out;
}

export { endpointSliceView, serviceView, SERVICE_NAME_LABEL } from "../../policy/lb-views.js";

/** Keeps only the fields listed: `keep[field]` true keeps it whole, an object keeps its listed sub-fields. */
export type Shape = { readonly [field: string]: true | Shape | readonly [Shape] };

type Picker = (value: unknown) => unknown;

/**
 * `shape` made into a function that copies what it lists of a value (whole where `true`, each
 * element of an array through the element shape): the fields are listed once here, not per object
 * (every pod of a 100,000-pod list goes through this).
 */
function picker(shape: Shape | true | readonly [Shape]): Picker {
  if (shape === true) return (value) => value;
  if (Array.isArray(shape)) {
    const inner = picker(shape[0] as Shape);
    return (value) =>
      value === null || typeof value !== "object"
        ? value
        : Array.isArray(value)
          ? value.map(inner)
          : undefined;
  }
  const keys = Object.keys(shape);
  const pickers = keys.map((k) => picker((shape as Shape)[k] as Shape | true | readonly [Shape]));
  return (value) => {
    if (value === null || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = (pickers[i] as Picker)(v);
    }
    return out;
  };
}

const METADATA: Shape = { name: true, namespace: true, resourceVersion: true, uid: true };
const CONTAINER_PORTS: readonly [Shape] = [{ name: true, restartPolicy: true, ports: true }];

/**
 * What the agent reads of each kind (views.ts, the policy engine); the informers' caches keep only
 * this, not whole objects (a Pod's spec and status are mostly what nobody here reads).
 */
const KEPT: Record<string, Shape> = {
  Pod: {
    apiVersion: true,
    kind: true,
    metadata: { ...METADATA, labels: true },
    spec: { nodeName: true, hostNetwork: true, containers: CONTAINER_PORTS, initContainers: CONTAINER_PORTS },
    status: { phase: true, podIP: true, podIPs: true },
  },
  Node: {
    apiVersion: true,
    kind: true,
    metadata: METADATA,
    spec: { podCIDR: true, podCIDRs: true },
    status: { addresses: true },
  },
  Namespace: { apiVersion: true, kind: true, metadata: { ...METADATA, labels: true } },
  NetworkPolicy: { apiVersion: true, kind: true, metadata: { ...METADATA, labels: true }, spec: true },
  Service: {
    apiVersion: true,
    kind: true,
    metadata: METADATA,
    spec: {
      type: true,
      clusterIP: true,
      clusterIPs: true,
      ports: [{ name: true, port: true, protocol: true, nodePort: true, targetPort: true }],
      externalIPs: true,
      sessionAffinity: true,
      sessionAffinityConfig: true,
      externalTrafficPolicy: true,
      internalTrafficPolicy: true,
    },
    status: { loadBalancer: { ingress: [{ ip: true }] } },
  },
  EndpointSlice: {
    apiVersion: true,
    kind: true,
    metadata: { ...METADATA, labels: { [SERVICE_NAME_LABEL]: true } },
    addressType: true,
    endpoints: [{ addresses: true, conditions: true, nodeName: true }],
    ports: [{ name: true, port: true, protocol: true }],
  },
};

/** What trimObject keeps of each kind (for tests). */
export const TRIM_SHAPES: Readonly<Record<string, Shape>> = KEPT;

const PICKERS = new Map(Object.entries(KEPT).map(([kind, shape]) => [kind, picker(shape)]));

/** `obj` reduced to the fields the agent reads of a `kind` (unknown kinds pass unchanged). */
export function trimObject<T>(kind: string, obj: T): T {
  const pick = PICKERS.get(kind);
  return pick === undefined ? obj : (pick(obj) as T);
}
