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

interface Source {
  identity?: number;
  tunnelIp?: string | null;
  flags?: number;
}

/** Desired ipcache entries keyed by `a.b.c.d/len`. */
export function buildIpcache(input: IpcacheInputs): Map<string, { key: Prefix; entry: IpcacheEntry }> {
  const nodeIp = new Map(input.nodes.map((n) => [n.name, n.internalIp]));
  const tunnelFor = (nodeName: string): string | null =>
    nodeName === input.localNodeName ? null : (nodeIp.get(nodeName) ?? null);

  const identity = new LpmIndex<number>();
  const tunnel = new LpmIndex<string | null>();
  const flags = new LpmIndex<number>();
  const cidr = new LpmIndex<number>();
  const prefixes = new Map<string, Prefix>();
  const add = (p: Prefix) => prefixes.set(formatPrefix(p), p);

  for (const n of input.nodes) {
    const pc = parsePrefix(n.podCidr);
    identity.set(pc, Identity.unmanaged);
    tunnel.set(pc, tunnelFor(n.name));
    add(pc);
  }
  for (const n of input.nodes) {
    const p = parsePrefix(n.internalIp);
    const local = n.name === input.localNodeName;
    identity.set(p, local ? Identity.host : Identity.remoteNode);
    // Replies to a remote node's own traffic go back through the overlay they came in on.
    tunnel.set(p, local ? null : n.internalIp);
    add(p);
  }
  for (const a of input.localAddresses) {
    const p = parsePrefix(a);
    identity.set(p, Identity.host);
    tunnel.set(p, null);
    add(p);
  }
  for (const pod of input.pods) {
    // Without its node there is no tunnel to reach it by; its node's pod CIDR covers it once known.
    if (pod.nodeName !== input.localNodeName && !nodeIp.has(pod.nodeName)) continue;
    const p = parsePrefix(pod.ip);
    identity.set(p, pod.identity);
    tunnel.set(p, tunnelFor(pod.nodeName));
    if (pod.nodeName === input.localNodeName && pod.flags !== 0) flags.set(p, pod.flags);
    add(p);
  }
  for (const [text, id] of input.cidrs) {
    const p = parsePrefix(text);
    cidr.set(p, id);
    add(p);
  }

  const out = new Map<string, { key: Prefix; entry: IpcacheEntry }>();
  for (const [text, p] of prefixes) {
    const src: Source = {
      identity: identity.longestContaining(p)?.value ?? Identity.world,
      tunnelIp: tunnel.longestContaining(p)?.value ?? null,
    };
    const f = flags.longestContaining(p);
    out.set(text, {
      key: p,
      entry: {
        identity: src.identity ?? Identity.world,
        tunnelIp: src.tunnelIp ?? null,
        cidrIdentity: cidr.longestContaining(p)?.value ?? 0,
        // Flags belong to exactly one pod address; a prefix containing it must not inherit them.
        flags: f !== undefined && f.prefix.length === p.length ? f.value : 0,
      },
    });
  }
  return out;
}
