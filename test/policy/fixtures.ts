/** Small builders for the Kubernetes objects the policy tests feed the engine. */
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { policyKeyString, type PolicyKey } from "../../maps/policy.js";
import type { PolicyEngine } from "../../policy/engine.js";

/**
 * client-node declares its models as classes, but the API server, watch streams and the engine deal
 * in plain JSON objects: tests write them as literals and state the model type once, here.
 */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed cast is the point
export function model<T>(plain: unknown): T {
  return plain as T;
}

export interface PodOptions {
  labels?: Record<string, string>;
  node?: string;
  ports?: { name?: string; port: number; protocol?: string }[];
  phase?: string;
  hostNetwork?: boolean;
}

export function pod(namespace: string, name: string, ip: string | undefined, o: PodOptions = {}): V1Pod {
  return model<V1Pod>({
    metadata: { namespace, name, labels: o.labels ?? {} },
    spec: {
      nodeName: o.node ?? "n1",
      containers: [
        {
          name: "main",
          ports: (o.ports ?? []).map((x) => ({
            containerPort: x.port,
            ...(x.name !== undefined ? { name: x.name } : {}),
            ...(x.protocol !== undefined ? { protocol: x.protocol } : {}),
          })),
        },
      ],
      ...(o.hostNetwork !== undefined ? { hostNetwork: o.hostNetwork } : {}),
    },
    status: { ...(ip !== undefined ? { podIP: ip, podIPs: [{ ip }] } : {}), phase: o.phase ?? "Running" },
  });
}

export function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return model<V1Namespace>({ metadata: { name, labels } });
}

/** A NetworkPolicy from a plain spec (ingress peers under `from`, as in YAML). */
export function policy(ns: string, name: string, spec: Record<string, unknown>): V1NetworkPolicy {
  return model<V1NetworkPolicy>({ metadata: { namespace: ns, name }, spec });
}

/** The engine's desired keys as sorted policyKeyStrings. */
export function keys(engine: PolicyEngine, filter?: (k: PolicyKey) => boolean): string[] {
  const out: string[] = [];
  for (const [ks, { key }] of engine.desiredPolicy()) if (filter === undefined || filter(key)) out.push(ks);
  return out.sort();
}

/** Sorted policyKeyStrings of hand-written keys. */
export function keyStrings(list: PolicyKey[]): string[] {
  return [...new Set(list.map(policyKeyString))].sort();
}

/** Desired entries as `policyKeyString => namespace/policy|direction|index` (rule ids made history-free). */
export function describedEntries(engine: PolicyEngine): Map<string, string> {
  const out = new Map<string, string>();
  for (const [ks, { entry }] of engine.desiredPolicy()) {
    const r = engine.rule(entry.ruleId);
    out.set(
      ks,
      r === undefined ? `?${entry.ruleId}` : `${r.namespace}/${r.policy}|${r.direction}|${r.index}`,
    );
  }
  return out;
}

/** Everything observable about an engine, history-free, for equality checks between engines. */
export function observable(engine: PolicyEngine, ips: readonly string[]): unknown {
  const sortMap = <V>(m: ReadonlyMap<string | number, V>): [string | number, V][] =>
    [...m].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0));
  return {
    entries: sortMap(describedEntries(engine)),
    identities: sortMap(engine.identities()).map(([id, info]) => [id, JSON.stringify(info)]),
    cidrs: sortMap(engine.cidrPrefixes()),
    addresses: [...ips]
      .sort()
      .map((ip) => [ip, engine.identityOfIp(ip), engine.localFlags(ip), engine.cidrIdentityOf(ip)]),
  };
}
