/**
 * The desired ipcache: every address the cluster knows, with its identity, the node to tunnel to,
 * the identity of the longest ipBlock prefix holding it, and enforcement flags for local pods.
 *
 * Entries come from several sources that overlap (a pod /32 inside a node's pod CIDR inside an
 * ipBlock). The datapath does one longest-prefix lookup, so every entry carries, for each
 * attribute, the value of the most specific source that has one: identity from pods, nodes, pod
 * CIDRs; tunnel endpoint from pods and nodes (their node) and pod CIDRs; CIDR identity from ipBlocks.
 */
import { Identity } from "../maps/identities.js";
import type { IpcacheEntry } from "../maps/ipcache.js";
import { formatPrefix, parsePrefix, type Prefix } from "../maps/net.js";
import { LpmIndex } from "./lpm-index.js";

export interface NodeInput {
  name: string;
  internalIp: string;
  podCidr: string;
}

export interface PodInput {
  ip: string;
  nodeName: string;
  identity: number;
  /** IpcacheFlag bits; only meaningful for local pods. */
  flags: number;
}

export interface IpcacheInputs {
  localNodeName: string;
  /** This node's own addresses (all identity host). */
  localAddresses: readonly string[];
  nodes: readonly NodeInput[];
  pods: readonly PodInput[];
  /** ipBlock prefixes and their identities. */
  cidrs: ReadonlyMap<string, number>;
}

/** An ipcache entry with its key. */
export interface IpcacheSlot {
  key: Prefix;
  entry: IpcacheEntry;
}

/** Everything but the pods: what a pod's entry is built against. */
export type IpcacheBase = Omit<IpcacheInputs, "pods">;

/**
 * The ipcache of `base` (nodes, local addresses, ipBlocks), indexed so that the entry of one pod
 * address can be built alone: a pod is a /32, so it changes only its own entry. Built again when
 * the base changes (nodes, ipBlocks), which is rare; pod events use `podEntry`.
 */
export class IpcacheIndex {
  readonly localNodeName: string;
  readonly #nodeIp: Map<string, string>;
  readonly #identity = new LpmIndex<number>();
  readonly #tunnel = new LpmIndex<string | null>();
  readonly #cidr = new LpmIndex<number>();
  readonly #prefixes = new Map<string, Prefix>();

  constructor(base: IpcacheBase) {
    this.localNodeName = base.localNodeName;
    this.#nodeIp = new Map(base.nodes.map((n) => [n.name, n.internalIp]));
    const add = (p: Prefix) => this.#prefixes.set(formatPrefix(p), p);
    for (const n of base.nodes) {
      const pc = parsePrefix(n.podCidr);
      this.#identity.set(pc, Identity.unmanaged);
      this.#tunnel.set(pc, this.#tunnelFor(n.name));
      add(pc);
    }
    for (const n of base.nodes) {
      const p = parsePrefix(n.internalIp);
      const local = n.name === base.localNodeName;
      this.#identity.set(p, local ? Identity.host : Identity.remoteNode);
      // Replies to a remote node's own traffic go back through the overlay they came in on.
      this.#tunnel.set(p, local ? null : n.internalIp);
      add(p);
    }
    for (const a of base.localAddresses) {
      const p = parsePrefix(a);
      this.#identity.set(p, Identity.host);
      this.#tunnel.set(p, null);
      add(p);
    }
    for (const [text, id] of base.cidrs) {
      const p = parsePrefix(text);
      this.#cidr.set(p, id);
      add(p);
    }
  }

  #tunnelFor(nodeName: string): string | null {
    return nodeName === this.localNodeName ? null : (this.#nodeIp.get(nodeName) ?? null);
  }

  /** Whether a pod on `nodeName` gets an entry: its node must be known (or be this one). */
  reachable(nodeName: string): boolean {
    return nodeName === this.localNodeName || this.#nodeIp.has(nodeName);
  }

  /** The base's entries (no pods), keyed by `a.b.c.d/len`. */
  baseEntries(): Map<string, IpcacheSlot> {
    const out = new Map<string, IpcacheSlot>();
    for (const [text, p] of this.#prefixes) out.set(text, this.#baseEntry(p));
    return out;
  }

  #baseEntry(p: Prefix): IpcacheSlot {
    return {
      key: p,
      entry: {
        identity: this.#identity.longestContaining(p)?.value ?? Identity.world,
        tunnelIp: this.#tunnel.longestContaining(p)?.value ?? null,
        cidrIdentity: this.#cidr.longestContaining(p)?.value ?? 0,
        flags: 0,
      },
    };
  }

  /**
   * The entry of address `ip` (its /32) with `pod` on it; without a pod (or with one whose node is
   * unknown) the base's entry, or undefined when the base has none.
   */
  podEntry(ip: string, pod: PodInput | undefined): IpcacheSlot | undefined {
    const p = parsePrefix(ip);
    if (pod === undefined || !this.reachable(pod.nodeName))
      return this.#prefixes.has(formatPrefix(p)) ? this.#baseEntry(p) : undefined;
    const local = pod.nodeName === this.localNodeName;
    return {
      key: p,
      entry: {
        identity: pod.identity,
        tunnelIp: this.#tunnelFor(pod.nodeName),
        cidrIdentity: this.#cidr.longestContaining(p)?.value ?? 0,
        // Flags belong to exactly one pod address; a prefix containing it must not inherit them.
        flags: local ? pod.flags : 0,
      },
    };
  }
}

/** Desired ipcache entries keyed by `a.b.c.d/len`. Of pods sharing an address, the last wins. */
export function buildIpcache(input: IpcacheInputs): Map<string, IpcacheSlot> {
  const index = new IpcacheIndex(input);
  const out = index.baseEntries();
  for (const pod of input.pods) {
    // Without its node there is no tunnel to reach it by; its node's pod CIDR covers it once known.
    if (!index.reachable(pod.nodeName)) continue;
    const e = index.podEntry(pod.ip, pod);
    if (e !== undefined) out.set(formatPrefix(e.key), e);
  }
  return out;
}
