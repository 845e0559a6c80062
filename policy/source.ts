/** What the agent needs from the policy compiler (policy/engine.ts implements it). */
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import type { PolicyEntry, PolicyKey } from "../maps/policy.js";

export interface IdentityInfo {
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

export interface RuleInfo {
  namespace: string;
  policy: string;
  direction: "ingress" | "egress";
  index: number;
}

export interface PolicySource {
  upsertNamespace(ns: V1Namespace): void;
  deleteNamespace(name: string): void;
  upsertPod(pod: V1Pod): void;
  /** Optional: many pods in one transaction, as upsertPod for each (the first lists). */
  upsertPods?(pods: Iterable<V1Pod>): void;
  deletePod(namespace: string, name: string): void;
  upsertPolicy(np: V1NetworkPolicy): void;
  deletePolicy(namespace: string, name: string): void;
  podIdentity(namespace: string, name: string): number | undefined;
  localFlags(podIp: string): number;
  cidrPrefixes(): ReadonlyMap<string, number>;
  desiredPolicy(): ReadonlyMap<string, { key: PolicyKey; entry: PolicyEntry }>;
  identities(): ReadonlyMap<number, IdentityInfo>;
  rule(ruleId: number): RuleInfo | undefined;
  errors(): readonly { object: string; message: string }[];
  readonly version: number;
  /** What the last upsert/delete changed: the agent writes only those entries. */
  lastChange(): { policyKeys: ReadonlySet<string>; addresses: ReadonlySet<string> };
}
