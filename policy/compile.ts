/**
 * One NetworkPolicy object, validated and normalised: which pods it selects, which directions it
 * isolates, and per rule its peers and ports. Pure; the engine turns it into map entries.
 */
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import type { Direction } from "../maps/policy.js";
import { blockText, compileIpBlock, type Block } from "./cidr.js";
import { compilePorts, type PortSpec } from "./ports.js";
import { MATCH_ALL, compileSelector, type Selector } from "./selector.js";

/**
 * A selector peer: pods matching `pod` whose namespace matches `namespaceSelector` (when set) and,
 * when `namespace` is set, lives in that namespace (a podSelector without namespaceSelector is
 * confined to the policy's namespace).
 */
export interface SelectorPeer {
  readonly namespace?: string;
  readonly pod: Selector;
  readonly namespaceSelector?: Selector;
}

/** One ingress or egress rule. */
export interface CompiledRule {
  readonly direction: Direction;
  readonly index: number;
  /** No `from`/`to` (or an empty list): every peer, inside the cluster or not. */
  readonly anyPeer: boolean;
  readonly peers: readonly SelectorPeer[];
  /** IPv4 ipBlocks; IPv6 ones are valid but match nothing here, so they are dropped. */
  readonly blocks: readonly Block[];
  readonly ports: readonly PortSpec[];
  /** Canonical text of the rule's content without its position: equal texts select and allow alike. */
  readonly content: string;
}

/** A NetworkPolicy as the engine uses it. */
export interface CompiledPolicy {
  readonly namespace: string;
  readonly name: string;
  /** `namespace/name`. */
  readonly key: string;
  /** Pods (of `namespace`) it applies to; everything when the selector is invalid (fail closed). */
  readonly selector: Selector;
  /** Does it isolate its pods for ingress / egress (policyTypes, defaulted as the API server does)? */
  readonly ingress: boolean;
  readonly egress: boolean;
  /** Rules of the isolated directions; empty when the policy is invalid (fail closed). */
  readonly rules: readonly CompiledRule[];
  /** Problems found, each with its field path; non-empty = invalid. */
  readonly errors: readonly string[];
  /** Canonical text of everything above: equal fingerprints, equal effect. */
  readonly fingerprint: string;
}

/** Namespace of an object whose metadata may omit it (offline objects): `default`, as kubectl does. */
export function namespaceOf(meta: { namespace?: string } | undefined): string {
  return typeof meta?.namespace === "string" && meta.namespace !== "" ? meta.namespace : "default";
}

function compilePeers(
  list: unknown,
  path: string,
  policyNamespace: string,
  errors: string[],
): { anyPeer: boolean; peers: SelectorPeer[]; blocks: Block[] } {
  const peers: SelectorPeer[] = [];
  const blocks: Block[] = [];
  if (list === undefined || list === null) return { anyPeer: true, peers, blocks };
  if (!Array.isArray(list)) {
    errors.push(`${path}: not a list`);
    return { anyPeer: false, peers, blocks };
  }
  if (list.length === 0) return { anyPeer: true, peers, blocks };
  list.forEach((raw: unknown, i) => {
    const p = `${path}[${i}]`;
    if (typeof raw !== "object" || raw === null) {
      errors.push(`${p}: not an object`);
      return;
    }
    const peer = raw as { podSelector?: unknown; namespaceSelector?: unknown; ipBlock?: unknown };
    const hasPod = peer.podSelector !== undefined && peer.podSelector !== null;
    const hasNs = peer.namespaceSelector !== undefined && peer.namespaceSelector !== null;
    const hasBlock = peer.ipBlock !== undefined && peer.ipBlock !== null;
    const count = Number(hasPod) + Number(hasNs) + Number(hasBlock);
    if (count === 0) {
      errors.push(`${p}: must specify a peer`);
      return;
    }
    if (hasBlock && count > 1) {
      errors.push(`${p}: may not specify both ipBlock and another peer`);
      return;
    }
    if (hasBlock) {
      const b = compileIpBlock(peer.ipBlock, `${p}.ipBlock`);
      if (!b.ok) errors.push(...b.errors);
      else if (b.block !== undefined) blocks.push(b.block);
      return;
    }
    let pod = MATCH_ALL;
    let namespaceSelector: Selector | undefined;
    if (hasPod) {
      const s = compileSelector(peer.podSelector, `${p}.podSelector`);
      if (!s.ok) errors.push(...s.errors);
      else pod = s.selector;
    }
    if (hasNs) {
      const s = compileSelector(peer.namespaceSelector, `${p}.namespaceSelector`);
      if (!s.ok) errors.push(...s.errors);
      else namespaceSelector = s.selector;
    }
    if (hasNs) {
      if (namespaceSelector !== undefined) peers.push({ pod, namespaceSelector });
    } else peers.push({ namespace: policyNamespace, pod });
  });
  return { anyPeer: false, peers, blocks };
}

/**
 * Validates and compiles a NetworkPolicy. Never throws: problems land in `errors`, and an invalid
 * policy keeps isolating the pods it selects (every pod of its namespace when even its podSelector
 * is unusable; both directions when its policyTypes are) while allowing nothing.
 */
export function compilePolicy(np: V1NetworkPolicy): CompiledPolicy {
  const namespace = namespaceOf(np.metadata);
  const name = typeof np.metadata?.name === "string" ? np.metadata.name : "";
  const errors: string[] = [];
  if (name === "") errors.push("metadata.name: required");
  // Defensive: objects may come from anywhere (tests, YAML, a buggy watch); garbage must not throw.
  const rawSpec: unknown = np.spec;
  const spec = (typeof rawSpec === "object" && rawSpec !== null ? rawSpec : {}) as {
    podSelector?: unknown;
    policyTypes?: unknown;
    ingress?: unknown;
    egress?: unknown;
  };

  let selector = MATCH_ALL;
  const sel = compileSelector(spec.podSelector, "spec.podSelector");
  if (sel.ok) selector = sel.selector;
  else errors.push(...sel.errors);

  // policyTypes: defaulted as the API server does (SetDefaults_NetworkPolicySpec): Ingress
  // always, Egress when there is at least one egress rule.
  let ingress = false;
  let egress = false;
  const types = spec.policyTypes;
  const egressList = spec.egress;
  if (types === undefined || types === null || (Array.isArray(types) && types.length === 0)) {
    ingress = true;
    egress = Array.isArray(egressList) && egressList.length > 0;
  } else if (!Array.isArray(types)) {
    errors.push("spec.policyTypes: not a list");
    ingress = egress = true;
  } else {
    if (types.length > 2) errors.push("spec.policyTypes: may not specify more than two policyTypes");
    let bad = types.length > 2;
    types.forEach((t: unknown, i) => {
      if (t === "Ingress") ingress = true;
      else if (t === "Egress") egress = true;
      else {
        bad = true;
        errors.push(`spec.policyTypes[${i}]: ${JSON.stringify(t)} is not one of Ingress, Egress`);
      }
    });
    if (bad) ingress = egress = true;
  }

  const rules: CompiledRule[] = [];
  const sections: [Direction, unknown, "from" | "to"][] = [
    ["ingress", spec.ingress, "from"],
    ["egress", egressList, "to"],
  ];
  for (const [direction, list, peerField] of sections) {
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      errors.push(`spec.${direction}: not a list`);
      continue;
    }
    list.forEach((raw: unknown, index) => {
      const path = `spec.${direction}[${index}]`;
      if (typeof raw !== "object" || raw === null) {
        errors.push(`${path}: not an object`);
        return;
      }
      const r = raw as { _from?: unknown; from?: unknown; to?: unknown; ports?: unknown };
      // client-node's model classes name the ingress peers `_from`; plain JSON (and its watch
      // stream) says `from`. Accept both.
      const peerList = peerField === "from" ? (r._from !== undefined ? r._from : r.from) : r.to;
      const { anyPeer, peers, blocks } = compilePeers(peerList, `${path}.${peerField}`, namespace, errors);
      const ports = compilePorts(r.ports, `${path}.ports`);
      if (!ports.ok) {
        errors.push(...ports.errors);
        return;
      }
      if ((direction === "ingress" && ingress) || (direction === "egress" && egress))
        rules.push({
          direction,
          index,
          anyPeer,
          peers,
          blocks,
          ports: ports.ports,
          content: JSON.stringify([
            direction,
            anyPeer,
            peers.map((p) => [p.namespace ?? null, p.pod.text, p.namespaceSelector?.text ?? null]),
            blocks.map(blockText),
            ports.ports,
          ]),
        });
    });
  }

  const valid = errors.length === 0;
  const finalRules = valid ? rules : [];
  const fingerprint = JSON.stringify({
    s: selector.text,
    i: ingress,
    e: egress,
    r: finalRules.map((r) => [r.index, r.content]),
    x: errors,
  });
  return {
    namespace,
    name,
    key: `${namespace}/${name}`,
    selector,
    ingress,
    egress,
    rules: finalRules,
    errors,
    fingerprint,
  };
}
