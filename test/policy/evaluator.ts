/**
 * A reference evaluator that decides a new flow the way the datapath does (bpf/lib/policy.h,
 * bpf/skein.bpf.c), over an engine's outputs instead of kernel maps:
 *
 *   egress of the source pod, when its ipcache flags say enforceEgress: LPM lookups with the
 *   destination's identity, its CIDR identity, any (0), then the destination's address (by-IP);
 *   ingress of the destination pod, when flagged enforceIngress and the source is not the host:
 *   lookups with the source's identity, its CIDR identity, any (0).
 *
 * The LPM match follows the key layout: endpoint, peer and direction always match exactly; an entry
 * without protocol matches every protocol and port; one without port every port of its protocol;
 * otherwise the first `portBits` bits of the port. The longest matching entry reports its rule.
 */
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity } from "../../maps/identities.js";
import type { PolicyEntry, PolicyKey } from "../../maps/policy.js";

/** What the evaluator reads from an engine (PolicyEngine satisfies it). */
export interface EngineOutput {
  desiredPolicy(): ReadonlyMap<string, { key: PolicyKey; entry: PolicyEntry }>;
  identityOfIp(ip: string): number | undefined;
  cidrIdentityOf(ipOrPrefix: string): number;
  localFlags(podIp: string): number;
}

/** Outcome of one new flow. */
export interface Verdict {
  allowed: boolean;
  /** Which side dropped it. */
  deniedBy?: "egress" | "ingress";
  /** Rule ids that allowed each side (0 = side not enforced). */
  egressRule: number;
  ingressRule: number;
}

/** An indexed copy of an engine's outputs; build once, evaluate many flows. */
export class PolicyTable {
  private readonly byPeer = new Map<string, { key: PolicyKey; ruleId: number }[]>();

  constructor(readonly output: EngineOutput) {
    for (const { key, entry } of output.desiredPolicy().values()) {
      const peer = key.peerIp !== undefined ? `ip:${key.peerIp}` : String(key.peerIdentity);
      const k = `${key.endpointIp}|${key.direction}|${peer}`;
      let list = this.byPeer.get(k);
      if (list === undefined) this.byPeer.set(k, (list = []));
      list.push({ key, ruleId: entry.ruleId });
    }
  }

  /** One LPM lookup: the rule id of the longest matching entry, or undefined. */
  lookup(
    endpointIp: string,
    direction: "ingress" | "egress",
    peer: number | string,
    proto: number,
    port: number,
  ): number | undefined {
    const list = this.byPeer.get(
      `${endpointIp}|${direction}|${typeof peer === "string" ? `ip:${peer}` : peer}`,
    );
    let best: { len: number; ruleId: number } | undefined;
    for (const { key, ruleId } of list ?? []) {
      let len: number;
      if (key.protocol === undefined) len = 0;
      else if (key.protocol !== proto) continue;
      else if (key.port === undefined) len = 8;
      else {
        const bits = key.portBits ?? 16;
        const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
        if ((key.port & mask) !== (port & mask)) continue;
        len = 8 + bits;
      }
      if (best === undefined || len > best.len) best = { len, ruleId };
    }
    return best?.ruleId;
  }
}

function tableOf(x: EngineOutput | PolicyTable): PolicyTable {
  return x instanceof PolicyTable ? x : new PolicyTable(x);
}

/** Options of `evaluate`. */
export interface FlowOptions {
  /** Source identity as the datapath sees it when not a known pod (default world; e.g. Identity.host). */
  srcIdentity?: number;
}

/**
 * Decides a new flow src → dst (proto, destination port). `output` is one engine that sees both
 * ends as local (nodeName undefined), or { src, dst }: the source node's and the destination
 * node's engines. A PolicyTable may stand in for an engine to skip re-indexing.
 */
export function evaluate(
  output: EngineOutput | PolicyTable | { src: EngineOutput | PolicyTable; dst: EngineOutput | PolicyTable },
  src: string,
  dst: string,
  proto: number,
  port: number,
  options: FlowOptions = {},
): Verdict {
  const sides =
    "src" in output && "dst" in output && !(output instanceof PolicyTable)
      ? output
      : { src: output, dst: output };
  const srcTable = tableOf(sides.src);
  const dstTable = sides.dst === sides.src ? srcTable : tableOf(sides.dst);
  const verdict: Verdict = { allowed: true, egressRule: 0, ingressRule: 0 };

  // Egress, on the source's node.
  {
    const o = srcTable.output;
    if ((o.localFlags(src) & IpcacheFlag.enforceEgress) !== 0) {
      const dstIdentity = o.identityOfIp(dst) ?? Identity.world;
      const dstCidr = o.cidrIdentityOf(dst);
      let rule: number | undefined;
      if (dstIdentity !== Identity.any) rule = srcTable.lookup(src, "egress", dstIdentity, proto, port);
      if (rule === undefined && dstCidr !== Identity.any)
        rule = srcTable.lookup(src, "egress", dstCidr, proto, port);
      rule ??= srcTable.lookup(src, "egress", Identity.any, proto, port);
      rule ??= srcTable.lookup(src, "egress", dst, proto, port);
      if (rule === undefined) return { allowed: false, deniedBy: "egress", egressRule: 0, ingressRule: 0 };
      verdict.egressRule = rule;
    }
  }
  // Ingress, on the destination's node.
  {
    const o = dstTable.output;
    const srcIdentity = o.identityOfIp(src) ?? options.srcIdentity ?? Identity.world;
    if ((o.localFlags(dst) & IpcacheFlag.enforceIngress) !== 0 && srcIdentity !== Identity.host) {
      const srcCidr = o.cidrIdentityOf(src);
      let rule: number | undefined;
      if (srcIdentity !== Identity.any) rule = dstTable.lookup(dst, "ingress", srcIdentity, proto, port);
      if (rule === undefined && srcCidr !== Identity.any)
        rule = dstTable.lookup(dst, "ingress", srcCidr, proto, port);
      rule ??= dstTable.lookup(dst, "ingress", Identity.any, proto, port);
      if (rule === undefined)
        return { allowed: false, deniedBy: "ingress", egressRule: verdict.egressRule, ingressRule: 0 };
      verdict.ingressRule = rule;
    }
  }
  return verdict;
}
