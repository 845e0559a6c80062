/**
 * A deliberately naive NetworkPolicy oracle, written from the networking.k8s.io/v1 API reference
 * and sharing no code with the engine: given plain objects and one flow, is it allowed? Property
 * tests compare it with engine + reference evaluator. Valid objects only (no validation here).
 */
import type {
  V1LabelSelector,
  V1Namespace,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
  V1Pod,
} from "@kubernetes/client-node";

export interface OracleCluster {
  namespaces: V1Namespace[];
  pods: V1Pod[];
  policies: V1NetworkPolicy[];
}

function ipNum(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split("/") as [string, string];
  const bits = Number(len);
  const size = 2 ** (32 - bits);
  return Math.floor(ipNum(ip) / size) === Math.floor(ipNum(base) / size);
}

function selects(sel: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (sel === undefined) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const val = labels[e.key];
    const vals = e.values ?? [];
    if (e.operator === "In" && !(has && vals.includes(val as string))) return false;
    if (e.operator === "NotIn" && has && vals.includes(val as string)) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

const PROTO: Record<string, number> = { TCP: 6, UDP: 17, SCTP: 132 };

/** Is the flow src → dst (IP protocol number, destination port) allowed by the cluster's policies? */
export function oracleAllows(
  c: OracleCluster,
  src: string,
  dst: string,
  proto: number,
  port: number,
): boolean {
  const live = c.pods.filter(
    (p) =>
      p.status?.podIP !== undefined &&
      p.spec?.hostNetwork !== true &&
      p.status.phase !== "Succeeded" &&
      p.status.phase !== "Failed",
  );
  const podAt = (ip: string): V1Pod | undefined => live.find((p) => p.status?.podIP === ip);
  const nsOf = (p: V1Pod): string => p.metadata?.namespace ?? "default";
  const nsLabels = (name: string): Record<string, string> => ({
    ...(c.namespaces.find((n) => n.metadata?.name === name)?.metadata?.labels ?? {}),
    "kubernetes.io/metadata.name": name,
  });
  const types = (np: V1NetworkPolicy): string[] => {
    const t = np.spec?.policyTypes;
    if (t !== undefined && t.length > 0) return t;
    return (np.spec?.egress?.length ?? 0) > 0 ? ["Ingress", "Egress"] : ["Ingress"];
  };
  const selecting = (p: V1Pod, type: string): V1NetworkPolicy[] =>
    c.policies.filter(
      (np) =>
        (np.metadata?.namespace ?? "default") === nsOf(p) &&
        types(np).includes(type) &&
        selects(np.spec?.podSelector, p.metadata?.labels ?? {}),
    );
  const peerOk = (peers: V1NetworkPolicyPeer[] | undefined, policyNs: string, ip: string): boolean => {
    if (peers === undefined || peers.length === 0) return true;
    return peers.some((peer) => {
      if (peer.ipBlock !== undefined) {
        if (peer.ipBlock.cidr.includes(":")) return false;
        return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((e) => inCidr(ip, e));
      }
      const p = podAt(ip);
      if (p === undefined) return false;
      if (peer.namespaceSelector === undefined) {
        if (nsOf(p) !== policyNs) return false;
      } else if (!selects(peer.namespaceSelector, nsLabels(nsOf(p)))) return false;
      return peer.podSelector === undefined || selects(peer.podSelector, p.metadata?.labels ?? {});
    });
  };
  const portOk = (ports: V1NetworkPolicyPort[] | undefined, target: V1Pod | undefined): boolean => {
    if (ports === undefined || ports.length === 0) return true;
    return ports.some((p) => {
      if (PROTO[p.protocol ?? "TCP"] !== proto) return false;
      if (p.port === undefined) return true;
      if (typeof p.port === "number") return port >= p.port && port <= (p.endPort ?? p.port);
      if (target === undefined) return false;
      // The first container port with that name and protocol (containers, then sidecars).
      const all = [
        ...(target.spec?.containers ?? []),
        ...(target.spec?.initContainers ?? []).filter((ic) => ic.restartPolicy === "Always"),
      ].flatMap((ct) => ct.ports ?? []);
      const hit = all.find((cp) => cp.name === p.port && (cp.protocol ?? "TCP") === (p.protocol ?? "TCP"));
      return hit !== undefined && hit.containerPort === port;
    });
  };

  const srcPod = podAt(src);
  const dstPod = podAt(dst);
  if (srcPod !== undefined) {
    const pols = selecting(srcPod, "Egress");
    if (pols.length > 0) {
      const ok = pols.some((np) =>
        (np.spec?.egress ?? []).some(
          (r) => peerOk(r.to, np.metadata?.namespace ?? "default", dst) && portOk(r.ports, dstPod),
        ),
      );
      if (!ok) return false;
    }
  }
  if (dstPod !== undefined) {
    const pols = selecting(dstPod, "Ingress");
    if (pols.length > 0) {
      const ok = pols.some((np) =>
        (np.spec?.ingress ?? []).some((r) => {
          const from = (r as { from?: V1NetworkPolicyPeer[] }).from ?? r._from;
          return peerOk(from, np.metadata?.namespace ?? "default", src) && portOk(r.ports, dstPod);
        }),
      );
      if (!ok) return false;
    }
  }
  return true;
}
