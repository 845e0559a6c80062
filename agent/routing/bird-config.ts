/**
 * BIRD 2 configuration for native routing's BGP (pure: same input, same text). What it does and
 * why each choice, in the order of the file it renders:
 *
 * - `router id` = the node's address; `log stderr all`: BIRD runs in the foreground under the
 *   agent, which reads its stderr into the agent's log.
 * - `kernel`: exports only BGP-learned routes (source RTS_BGP) into the main table, with metric
 *   BGP_ROUTE_METRIC (200). The kernel marks them `proto bird` (12; BIRD 2.0 always uses it and
 *   cannot set another), which tells them from native's direct routes (proto 94, metric 0):
 *   both may exist for one pod CIDR, the kernel picks the lower metric, the direct one; BGP's is
 *   the fallback. `learn`: the kernel's other routes (the default route, routes to other subnets)
 *   enter BIRD's table so that a BGP next hop off the uplink's segment (iBGP, mesh across racks)
 *   resolves recursively; nothing learned is ever announced (the BGP export filter takes only the
 *   static pod CIDR). `persist`: routes stay in the kernel when BIRD stops (an agent restart stops
 *   it); a SIGKILLed BIRD cannot remove them anyway. `graceful restart`: a BIRD started with -R
 *   (the agent always does) does not prune the kernel table until its BGP sessions have come back
 *   and re-learned their routes, so the routes it left behind keep forwarding meanwhile.
 * - `direct` on the uplink: the connected prefix, to resolve next hops on the segment.
 * - `static skn_pods`: this node's pod CIDR as a blackhole route, the announcement's origin. It is
 *   never installed in the kernel (the kernel export takes BGP routes only): local pods are reached
 *   through their own /32 routes, and an address of the pod CIDR without a pod follows the default
 *   route as before.
 * - one `bgp` protocol per peer and per mesh neighbour, named by address (`skn_peer_192_0_2_1`,
 *   `skn_node_198_18_1_12`): a reload that keeps a neighbour keeps its protocol and its session.
 *   Import: only prefixes that are exactly some other node's pod CIDR (the Node list); anything
 *   else is rejected and printed (`skein: rejected ...`, which the agent logs as a warning). Export:
 *   only the pod CIDR. `graceful restart on`: peers keep this node's routes while its BIRD restarts.
 */
import { formatPrefix, parsePrefix } from "../../maps/net.js";
import type { BgpPeer, BgpSettings } from "./bgp-settings.js";

/** The kernel metric of BGP-learned routes: above native's direct routes (0), which win. */
export const BGP_ROUTE_METRIC = 200;
/** The route protocol the kernel shows for BIRD's routes (`proto bird`, RTPROT_BIRD). */
export const BIRD_ROUTE_PROTO = 12;
/** What BIRD's import filter prints for a refused prefix (the agent looks for it in BIRD's log). */
export const REJECT_MARKER = "skein: rejected";

export interface BirdNode {
  name: string;
  internalIp: string;
  podCidr: string;
}

export interface BirdConfigInput {
  /** This node: its address is the router id and the BGP source address. */
  own: BirdNode;
  /** Every node of the cluster (this one included or not). */
  nodes: readonly BirdNode[];
  bgp: BgpSettings;
  /** The interface holding the node address. */
  uplink: string;
  /** Kernel scan period (s): how soon BIRD notices a route removed behind its back. */
  scanTimeS?: number;
  /** Seconds between connection attempts to a peer that is down (BIRD's default is 120). */
  connectRetryS?: number;
}

/** A BGP neighbour as rendered: a configured peer or a mesh node. */
export interface BirdNeighbour {
  protocol: string;
  address: string;
  asn: number;
  kind: "peer" | "node";
  /** The node's name for a mesh neighbour. */
  node?: string;
  password?: string;
  port?: number;
}

/** BIRD protocol name for a neighbour address: letters, digits, underscores only. */
export function protocolName(kind: "peer" | "node", address: string): string {
  return `skn_${kind}_${address.replaceAll(".", "_")}`;
}

/**
 * The neighbours: configured peers, then (mesh) every other node with a usable address, by
 * address; a node that is also a configured peer is peered once, as the peer.
 */
export function neighbours(input: Pick<BirdConfigInput, "own" | "nodes" | "bgp">): BirdNeighbour[] {
  const out: BirdNeighbour[] = input.bgp.peers.map((p: BgpPeer) => ({
    protocol: protocolName("peer", p.address),
    address: p.address,
    asn: p.asn,
    kind: "peer" as const,
    ...(p.password === undefined ? {} : { password: p.password }),
    ...(p.port === undefined ? {} : { port: p.port }),
  }));
  if (input.bgp.mesh) {
    const taken = new Set([input.own.internalIp, ...out.map((n) => n.address)]);
    const mesh = [...input.nodes]
      .filter((n) => n.name !== input.own.name && !taken.has(n.internalIp) && validIp(n.internalIp))
      .sort((a, b) => a.internalIp.localeCompare(b.internalIp, "en", { numeric: true }));
    for (const n of mesh) {
      if (taken.has(n.internalIp)) continue;
      taken.add(n.internalIp);
      out.push({
        protocol: protocolName("node", n.internalIp),
        address: n.internalIp,
        asn: input.bgp.asn,
        kind: "node",
        node: n.name,
      });
    }
  }
  return out;
}

/** The pod CIDRs BIRD may import: every other node's, normalised, sorted, unique. */
export function acceptedPrefixes(own: BirdNode, nodes: readonly BirdNode[]): string[] {
  const ownCidr = normalised(own.podCidr);
  const set = new Set<string>();
  for (const n of nodes) {
    if (n.name === own.name) continue;
    const c = normalised(n.podCidr);
    if (c !== null && c !== ownCidr) set.add(c);
  }
  return [...set].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/** The configuration text. Throws RangeError when the node's own address or pod CIDR is unusable. */
export function renderBirdConfig(input: BirdConfigInput): string {
  const { own, bgp } = input;
  if (!validIp(own.internalIp)) throw new RangeError(`node ${own.name}: unusable address ${own.internalIp}`);
  const podCidr = normalised(own.podCidr);
  if (podCidr === null) throw new RangeError(`node ${own.name}: unusable pod CIDR ${own.podCidr}`);
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(input.uplink))
    throw new RangeError(`unusable uplink interface name ${JSON.stringify(input.uplink)}`);
  const accepted = acceptedPrefixes(own, input.nodes);
  const lines: string[] = [
    `# Written by skein-agent for node ${safeComment(own.name)}; do not edit (rewritten on every change).`,
    `router id ${own.internalIp};`,
    "log stderr all;",
    // skeinctl status computes session uptimes from these (local time, seconds).
    "timeformat protocol iso long;",
    "timeformat route iso long;",
    "",
    "# Other nodes' pod CIDRs: the only prefixes accepted from any BGP neighbour.",
    accepted.length === 0
      ? "define SKEIN_NODE_CIDRS = [ 0.0.0.0/32 ]; # no other node yet: matches nothing announced"
      : `define SKEIN_NODE_CIDRS = [ ${accepted.join(", ")} ];`,
    `define SKEIN_OWN_CIDR = ${podCidr};`,
    "",
    "filter skein_import {",
    "  if net ~ SKEIN_NODE_CIDRS then accept;",
    `  print "${REJECT_MARKER} ", net, " from ", proto, ": not another node's pod CIDR";`,
    "  reject;",
    "}",
    "",
    "filter skein_export {",
    '  if proto = "skn_pods" && net = SKEIN_OWN_CIDR then accept;',
    "  reject;",
    "}",
    "",
    "protocol device {",
    "  scan time 10;",
    "}",
    "",
    "protocol direct skn_uplink {",
    "  ipv4 { import all; export none; };",
    `  interface "${input.uplink}";`,
    "}",
    "",
    "protocol kernel skn_kernel {",
    "  ipv4 {",
    "    import all;",
    "    export filter { if source = RTS_BGP then accept; reject; };",
    "  };",
    `  metric ${BGP_ROUTE_METRIC};`,
    "  learn;",
    "  persist;",
    "  graceful restart on;",
    "  merge paths on;",
    `  scan time ${input.scanTimeS ?? 10};`,
    "}",
    "",
    "protocol static skn_pods {",
    "  ipv4;",
    `  route ${podCidr} blackhole;`,
    "}",
  ];
  for (const n of neighbours(input)) {
    lines.push(
      "",
      `protocol bgp ${n.protocol} {`,
      `  description "${n.kind === "node" ? `node ${safeComment(n.node ?? "")}` : "peer"} ${n.address}";`,
      `  local ${own.internalIp} as ${bgp.asn};`,
      `  neighbor ${n.address}${n.port === undefined ? "" : ` port ${n.port}`} as ${n.asn};`,
      ...(n.password === undefined ? [] : [`  password "${n.password}";`]),
      "  graceful restart on;",
      `  connect retry time ${input.connectRetryS ?? 5};`,
      "  ipv4 {",
      "    import filter skein_import;",
      "    export filter skein_export;",
      "    next hop self;",
      "  };",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}

function normalised(cidr: string): string | null {
  try {
    return formatPrefix(parsePrefix(cidr));
  } catch {
    return null;
  }
}

function validIp(ip: string): boolean {
  return normalised(ip) !== null && !ip.includes("/");
}

/** A name for a comment or a quoted description: no quotes, no newlines. */
function safeComment(s: string): string {
  return s.replace(/[^A-Za-z0-9_.:@/-]/g, "?");
}
