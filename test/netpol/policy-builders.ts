/**
 * Small constructors for networking.k8s.io/v1 NetworkPolicy objects, shaped like upstream's helpers
 * (GenNetworkPolicyWithNameAndPodSelector / …PodMatchLabel plus SetSpecIngressRules / SetSpecEgressRules
 * in test/e2e/network/netpol/policies.go): giving a rule list, even an empty one, adds its policy type.
 * Pure; nothing throws except the CIDR helpers on an unparseable address.
 */

import type {
  V1IPBlock,
  V1LabelSelector,
  V1LabelSelectorRequirement,
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
} from "@kubernetes/client-node";
import { Address4, Address6 } from "ip-address";
import { NAMESPACE_NAME_LABEL, POD_LABEL, type Protocol } from "./model.js";

export type PolicyType = "Ingress" | "Egress";

export interface PolicyParts {
  ingress?: V1NetworkPolicyIngressRule[];
  egress?: V1NetworkPolicyEgressRule[];
  /**
   * Default: "Ingress" if `ingress` is given, then "Egress" if `egress` is given (upstream's order).
   * "omit" leaves `spec.policyTypes` unset so the API server's defaulting applies.
   */
  policyTypes?: PolicyType[] | "omit";
}

export function networkPolicy(
  namespace: string,
  name: string,
  podSelector: V1LabelSelector,
  parts: PolicyParts,
): V1NetworkPolicy {
  const spec: NonNullable<V1NetworkPolicy["spec"]> = { podSelector };
  const types: PolicyType[] = [];
  if (parts.ingress !== undefined) {
    spec.ingress = parts.ingress;
    types.push("Ingress");
  }
  if (parts.egress !== undefined) {
    spec.egress = parts.egress;
    types.push("Egress");
  }
  if (parts.policyTypes !== "omit") spec.policyTypes = parts.policyTypes ?? types;
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

export function matchLabels(labels: Record<string, string>): V1LabelSelector {
  return { matchLabels: labels };
}

/** `{matchLabels: {pod: <name>}}`, upstream's GenNetworkPolicyWithNameAndPodMatchLabel target. */
export function podNamed(pod: string): V1LabelSelector {
  return matchLabels({ [POD_LABEL]: pod });
}

/** `{matchLabels: {kubernetes.io/metadata.name: <ns>}}`. */
export function namespaceNamed(namespace: string): V1LabelSelector {
  return matchLabels({ [NAMESPACE_NAME_LABEL]: namespace });
}

export type SelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";

export function requirement(
  key: string,
  operator: SelectorOperator,
  values?: string[],
): V1LabelSelectorRequirement {
  return values === undefined ? { key, operator } : { key, operator, values };
}

export function matchExpressions(...requirements: V1LabelSelectorRequirement[]): V1LabelSelector {
  return { matchExpressions: requirements };
}

export function peer(parts: {
  podSelector?: V1LabelSelector;
  namespaceSelector?: V1LabelSelector;
  ipBlock?: V1IPBlock;
}): V1NetworkPolicyPeer {
  const p: V1NetworkPolicyPeer = {};
  if (parts.podSelector !== undefined) p.podSelector = parts.podSelector;
  if (parts.namespaceSelector !== undefined) p.namespaceSelector = parts.namespaceSelector;
  if (parts.ipBlock !== undefined) p.ipBlock = parts.ipBlock;
  return p;
}

/** A NetworkPolicyPort with only the fields given (an absent protocol means TCP to the API server). */
export function policyPort(
  port?: number | string,
  protocol?: Protocol,
  endPort?: number,
): V1NetworkPolicyPort {
  const p: V1NetworkPolicyPort = {};
  if (protocol !== undefined) p.protocol = protocol;
  if (port !== undefined) p.port = port;
  if (endPort !== undefined) p.endPort = endPort;
  return p;
}

export function ipBlock(cidr: string, except?: string[]): V1IPBlock {
  return except === undefined ? { cidr } : { cidr, except };
}

function isIPv6(ip: string): boolean {
  return ip.includes(":");
}

/** `<ip>/32` or `<ip>/128`, as upstream writes a single pod's CIDR. */
export function hostCidr(ip: string): string {
  return `${ip}/${isIPv6(ip) ? 128 : 32}`;
}

/** The whole address family of `ip`: 0.0.0.0/0 or ::/0. */
export function anyCidr(ip: string): string {
  return isIPv6(ip) ? "::/0" : "0.0.0.0/0";
}

/**
 * The /<bits> network containing `ip`, written canonically (host bits zeroed). Upstream's
 * makeLargeCIDRForIP is this with bits = 4. Throws TypeError on an unparseable address.
 */
export function containingCidr(ip: string, bits: number): string {
  const addr = isIPv6(ip) ? new Address6(`${ip}/${bits}`) : new Address4(`${ip}/${bits}`);
  return `${addr.startAddress().correctForm()}/${bits}`;
}
