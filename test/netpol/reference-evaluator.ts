/**
 * A small, deliberately naive NetworkPolicy evaluator over the model, written from the
 * networking.k8s.io/v1 API documentation and nothing of Skein's: it replays a scenario's steps and
 * computes, for every probe, which of the 81 connections the spec allows. scenarios.test.ts uses it to
 * cross-check the catalogue's hand-written expectations; a simulation runner may use it as an oracle.
 *
 * Policies are @kubernetes/client-node model objects (ingress peers under `_from`). Throws TypeError on
 * constructs the API server would reject (an empty peer, an unknown selector operator, a bad CIDR).
 */
import type {
  V1LabelSelector,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
} from "@kubernetes/client-node";
import { Address4, Address6 } from "ip-address";
import {
  ALL_PODS,
  MODEL,
  modelContainerPorts,
  namespaceLabels,
  podLabels,
  splitPodKey,
  type Protocol,
} from "./model.js";
import type { Matrix } from "./reachability.js";
import type { Probe, Scenario, Step } from "./scenario-types.js";

const NO_LABELS: Record<string, string> = Object.freeze({});

export interface ClusterPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  ports: { name: string; port: number; protocol: Protocol }[];
}

export interface ClusterState {
  namespaceLabels: Map<string, Record<string, string>>;
  /** Keyed "ns/pod". */
  pods: Map<string, ClusterPod>;
  /** Keyed "ns/name". */
  policies: Map<string, V1NetworkPolicy>;
}

/** The model before any step: its labels, its ports, no policy. */
export function initialState(ips: (nsPod: string) => string): ClusterState {
  const pods = new Map<string, ClusterPod>();
  for (const key of ALL_PODS) {
    const { namespace, pod } = splitPodKey(key);
    pods.set(key, {
      namespace,
      name: pod,
      labels: podLabels(pod),
      ip: ips(key),
      ports: modelContainerPorts(pod),
    });
  }
  return {
    namespaceLabels: new Map(MODEL.namespaces.map((ns) => [ns, namespaceLabels(ns)])),
    pods,
    policies: new Map(),
  };
}

/** Applies a step's changes in the documented order: delete, apply, namespace labels, pod labels. */
export function applyStep(state: ClusterState, step: Step): void {
  for (const d of step.delete ?? []) state.policies.delete(`${d.namespace}/${d.name}`);
  for (const p of step.apply ?? []) {
    state.policies.set(`${p.metadata?.namespace ?? ""}/${p.metadata?.name ?? ""}`, structuredClone(p));
  }
  for (const n of step.labelNamespace ?? []) {
    const current = state.namespaceLabels.get(n.name);
    if (current === undefined) throw new TypeError(`unknown namespace ${n.name}`);
    Object.assign(current, n.labels);
  }
  for (const l of step.labelPod ?? []) {
    const pod = state.pods.get(`${l.namespace}/${l.name}`);
    if (pod === undefined) throw new TypeError(`unknown pod ${l.namespace}/${l.name}`);
    Object.assign(pod.labels, l.labels);
  }
}

/** An absent selector (a policy without spec.podSelector) selects everything, like `{}`. */
export function selectorMatches(
  selector: V1LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const values = r.values ?? [];
    switch (r.operator) {
      case "In":
        if (!has || !values.includes(labels[r.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[r.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        throw new TypeError(`unknown label selector operator ${r.operator}`);
    }
  }
  return true;
}

function parseCidr(cidr: string): Address4 | Address6 {
  try {
    return cidr.includes(":") ? new Address6(cidr) : new Address4(cidr);
  } catch (cause) {
    throw new TypeError(`bad CIDR ${cidr}`, { cause });
  }
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const net = parseCidr(cidr);
  const v6 = ip.includes(":");
  if (v6 !== net instanceof Address6) return false;
  const addr = v6 ? new Address6(ip) : new Address4(ip);
  return addr.isInSubnet(net);
}

/** The effective policy types, with the API server's defaulting for an unset or empty list. */
export function effectivePolicyTypes(policy: V1NetworkPolicy): string[] {
  const declared = policy.spec?.policyTypes ?? [];
  if (declared.length > 0) return declared;
  return (policy.spec?.egress ?? []).length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

function peerMatches(
  state: ClusterState,
  policyNamespace: string,
  p: V1NetworkPolicyPeer,
  pod: ClusterPod,
): boolean {
  if (p.ipBlock !== undefined) {
    return ipInCidr(pod.ip, p.ipBlock.cidr) && !(p.ipBlock.except ?? []).some((e) => ipInCidr(pod.ip, e));
  }
  if (p.podSelector === undefined && p.namespaceSelector === undefined)
    throw new TypeError("empty NetworkPolicyPeer");
  const nsOk =
    p.namespaceSelector === undefined
      ? pod.namespace === policyNamespace
      : selectorMatches(p.namespaceSelector, state.namespaceLabels.get(pod.namespace) ?? NO_LABELS);
  return nsOk && (p.podSelector === undefined || selectorMatches(p.podSelector, pod.labels));
}

function portMatches(ports: V1NetworkPolicyPort[] | undefined, probe: Probe, dst: ClusterPod): boolean {
  if (ports === undefined || ports.length === 0) return true;
  return ports.some((entry) => {
    const protocol = entry.protocol ?? "TCP";
    if (protocol !== probe.protocol) return false;
    if (entry.port === undefined) return true;
    if (typeof entry.port === "number") {
      return entry.endPort === undefined
        ? probe.port === entry.port
        : probe.port >= entry.port && probe.port <= entry.endPort;
    }
    return dst.ports.some((p) => p.name === entry.port && p.protocol === protocol && p.port === probe.port);
  });
}

function peersMatch(
  state: ClusterState,
  policyNamespace: string,
  peers: V1NetworkPolicyPeer[] | undefined,
  pod: ClusterPod,
): boolean {
  return (
    peers === undefined ||
    peers.length === 0 ||
    peers.some((p) => peerMatches(state, policyNamespace, p, pod))
  );
}

function selecting(state: ClusterState, pod: ClusterPod, type: "Ingress" | "Egress"): V1NetworkPolicy[] {
  return [...state.policies.values()].filter(
    (p) =>
      p.metadata?.namespace === pod.namespace &&
      selectorMatches(p.spec?.podSelector, pod.labels) &&
      effectivePolicyTypes(p).includes(type),
  );
}

export function connectionAllowed(
  state: ClusterState,
  src: ClusterPod,
  dst: ClusterPod,
  probe: Probe,
): boolean {
  const egress = selecting(state, src, "Egress");
  const egressOk =
    egress.length === 0 ||
    egress.some((p) =>
      (p.spec?.egress ?? []).some(
        (r) => peersMatch(state, src.namespace, r.to, dst) && portMatches(r.ports, probe, dst),
      ),
    );
  if (!egressOk) return false;
  const ingress = selecting(state, dst, "Ingress");
  return (
    ingress.length === 0 ||
    ingress.some((p) =>
      (p.spec?.ingress ?? []).some(
        (r) => peersMatch(state, dst.namespace, r._from, src) && portMatches(r.ports, probe, dst),
      ),
    )
  );
}

export function evaluate(state: ClusterState, probe: Probe): Matrix {
  const m: Matrix = {};
  for (const [fromKey, src] of state.pods) {
    const row: Record<string, boolean> = {};
    for (const [toKey, dst] of state.pods) row[toKey] = connectionAllowed(state, src, dst, probe);
    m[fromKey] = row;
  }
  return m;
}

export interface ReplayedProbe {
  stepIndex: number;
  probe: Probe;
  expected: Matrix;
  actual: Matrix;
}

/** Plays every step of a scenario from the initial state and evaluates each probe. */
export function replay(scenario: Scenario, ips: (nsPod: string) => string): ReplayedProbe[] {
  const state = initialState(ips);
  const out: ReplayedProbe[] = [];
  scenario.steps.forEach((step, stepIndex) => {
    applyStep(state, step);
    for (const { probe, expected } of step.probes)
      out.push({ stepIndex, probe, expected, actual: evaluate(state, probe) });
  });
  return out;
}
