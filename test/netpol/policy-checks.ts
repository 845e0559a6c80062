/**
 * The NetworkPolicy validation rules of the API server (pkg/apis/networking/validation) that a JSON
 * schema cannot express: CIDRs and excepts, named ports, endPort, selector operators. Returns problems
 * as "path: what" strings, none when the API server would accept the policy. Never throws.
 */
import type {
  V1LabelSelector,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
} from "@kubernetes/client-node";
import { Address4, Address6 } from "ip-address";

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** IANA_SVC_NAME: 1–15 characters, lower-case letters, digits and '-', a letter somewhere, no '--', no '-' at the ends. */
export function isValidPortName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 15 &&
    /^[a-z0-9-]+$/.test(name) &&
    /[a-z]/.test(name) &&
    !name.includes("--") &&
    !name.startsWith("-") &&
    !name.endsWith("-")
  );
}

export function isValidLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isValidLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

function parseCidr(cidr: string): Address4 | Address6 | undefined {
  if (!cidr.includes("/")) return undefined;
  const v6 = cidr.includes(":");
  if (v6 ? !Address6.isValid(cidr) : !Address4.isValid(cidr)) return undefined;
  return v6 ? new Address6(cidr) : new Address4(cidr);
}

/** A CIDR with host bits set ("10.1.2.3/8") is accepted by older API servers; newer ones warn, strict validation may refuse it. */
function isCanonical(net: Address4 | Address6): boolean {
  return net.startAddress().correctForm() === net.correctForm();
}

function checkSelector(path: string, s: V1LabelSelector | undefined, problems: string[]): void {
  if (s === undefined) return;
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) {
    if (!isValidLabelKey(k)) problems.push(`${path}.matchLabels: bad key ${k}`);
    if (!isValidLabelValue(v)) problems.push(`${path}.matchLabels[${k}]: bad value ${v}`);
  }
  (s.matchExpressions ?? []).forEach((r, i) => {
    const p = `${path}.matchExpressions[${i}]`;
    if (!isValidLabelKey(r.key)) problems.push(`${p}: bad key ${r.key}`);
    const n = r.values?.length ?? 0;
    switch (r.operator) {
      case "In":
      case "NotIn":
        if (n === 0) problems.push(`${p}: ${r.operator} needs values`);
        break;
      case "Exists":
      case "DoesNotExist":
        if (n !== 0) problems.push(`${p}: ${r.operator} takes no values`);
        break;
      default:
        problems.push(`${p}: unknown operator ${r.operator}`);
    }
    for (const v of r.values ?? []) if (!isValidLabelValue(v)) problems.push(`${p}: bad value ${v}`);
  });
}

function checkPeer(path: string, peer: V1NetworkPolicyPeer, problems: string[]): void {
  const selectors = (peer.podSelector !== undefined ? 1 : 0) + (peer.namespaceSelector !== undefined ? 1 : 0);
  if (peer.ipBlock === undefined && selectors === 0) problems.push(`${path}: must specify a peer`);
  if (peer.ipBlock !== undefined && selectors > 0) problems.push(`${path}: ipBlock excludes selectors`);
  checkSelector(`${path}.podSelector`, peer.podSelector, problems);
  checkSelector(`${path}.namespaceSelector`, peer.namespaceSelector, problems);
  if (peer.ipBlock === undefined) return;
  const net = parseCidr(peer.ipBlock.cidr);
  if (net === undefined) {
    problems.push(`${path}.ipBlock.cidr: bad CIDR ${peer.ipBlock.cidr}`);
    return;
  }
  if (!isCanonical(net)) problems.push(`${path}.ipBlock.cidr: host bits set in ${peer.ipBlock.cidr}`);
  for (const e of peer.ipBlock.except ?? []) {
    const ex = parseCidr(e);
    if (ex === undefined) {
      problems.push(`${path}.ipBlock.except: bad CIDR ${e}`);
      continue;
    }
    if (!isCanonical(ex)) problems.push(`${path}.ipBlock.except: host bits set in ${e}`);
    const sameFamily = ex instanceof Address6 === net instanceof Address6;
    // The API requires each except to be a strict subset of cidr.
    const inside = sameFamily && ex.subnetMask > net.subnetMask && ex.isInSubnet(net);
    if (!inside) problems.push(`${path}.ipBlock.except: ${e} is not strictly inside ${peer.ipBlock.cidr}`);
  }
}

function checkPort(path: string, p: V1NetworkPolicyPort, problems: string[]): void {
  if (p.protocol !== undefined && !["TCP", "UDP", "SCTP"].includes(p.protocol)) {
    problems.push(`${path}.protocol: ${p.protocol}`);
  }
  if (typeof p.port === "number") {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) problems.push(`${path}.port: ${p.port}`);
    if (
      p.endPort !== undefined &&
      (!Number.isInteger(p.endPort) || p.endPort < p.port || p.endPort > 65535)
    ) {
      problems.push(`${path}.endPort: ${p.endPort} with port ${p.port}`);
    }
  } else if (typeof p.port === "string") {
    if (!isValidPortName(p.port)) problems.push(`${path}.port: bad port name ${p.port}`);
    if (p.endPort !== undefined) problems.push(`${path}.endPort: not allowed with a named port`);
  } else if (p.endPort !== undefined) {
    problems.push(`${path}.endPort: requires port`);
  }
}

export function checkNetworkPolicy(policy: V1NetworkPolicy): string[] {
  const problems: string[] = [];
  if (policy.apiVersion !== "networking.k8s.io/v1") problems.push(`apiVersion: ${policy.apiVersion}`);
  if (policy.kind !== "NetworkPolicy") problems.push(`kind: ${policy.kind}`);
  const name = policy.metadata?.name ?? "";
  if (name.length === 0 || name.length > 253 || !DNS1123_SUBDOMAIN.test(name))
    problems.push(`metadata.name: ${name}`);
  if ((policy.metadata?.namespace ?? "") === "") problems.push("metadata.namespace: missing");
  const spec = policy.spec;
  if (spec === undefined) return [...problems, "spec: missing"];
  if (spec.podSelector === undefined) problems.push("spec.podSelector: missing");
  checkSelector("spec.podSelector", spec.podSelector, problems);
  const types = spec.policyTypes ?? [];
  if (types.some((t) => t !== "Ingress" && t !== "Egress") || new Set(types).size !== types.length) {
    problems.push(`spec.policyTypes: ${types.join(",")}`);
  }
  (spec.ingress ?? []).forEach((r, i) => {
    (r._from ?? []).forEach((p, j) => {
      checkPeer(`spec.ingress[${i}].from[${j}]`, p, problems);
    });
    (r.ports ?? []).forEach((p, j) => {
      checkPort(`spec.ingress[${i}].ports[${j}]`, p, problems);
    });
  });
  (spec.egress ?? []).forEach((r, i) => {
    (r.to ?? []).forEach((p, j) => {
      checkPeer(`spec.egress[${i}].to[${j}]`, p, problems);
    });
    (r.ports ?? []).forEach((p, j) => {
      checkPort(`spec.egress[${i}].ports[${j}]`, p, problems);
    });
  });
  return problems;
}
