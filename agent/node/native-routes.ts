/**
 * Native routing's routes (`--routing native`): every other node's pod CIDR via that node's address,
 * for the nodes on the uplink's L2 segment ("direct": the node address is inside one of the uplink's
 * connected prefixes). Nodes elsewhere are left to BGP. The agent's routes carry their own protocol
 * number, SKEIN_ROUTE_PROTO, so that they are told apart from BGP's (BIRD's `proto bird`) and from
 * the administrator's, and only they are ever removed. Acts in the caller's network namespace.
 */
import { ipBatch, ipJson, listRoutes, type RouteInfo } from "../../loader/index.js";
import type { NodeRoute, NodeRouteSource } from "../../maps/agent-api.js";
import { formatPrefix, parsePrefix, prefixContainsIp, type Prefix } from "../../maps/net.js";

/**
 * The protocol number of the routes the agent installs in native mode (`ip route ... proto 94`,
 * 0x5e; shown as "94" by `ip route`, free in /etc/iproute2/rt_protos).
 */
export const SKEIN_ROUTE_PROTO = 94;

/** Route protocols that BGP daemons install with (BIRD: "bird" = 12; FRR/others: "bgp" = 186). */
const BGP_PROTOS = new Set(["bird", "12", "bgp", "186"]);

/** A node as the classification needs it. */
export interface RoutedNode {
  name: string;
  internalIp: string;
  podCidr: string;
}

/** Remote nodes split by how their pod CIDR is reached in native mode. */
export interface NodeClasses<N extends RoutedNode> {
  /** On the uplink's L2 segment: the agent routes `podCidr via internalIp dev uplink`. */
  direct: N[];
  /** Behind a router: BGP's job (bgp.peers / the mesh). */
  routed: N[];
}

/**
 * Splits `nodes` into those whose address lies inside one of `connected` (the uplink's connected
 * prefixes: on-link, one L2 segment) and the others. Pure.
 */
export function classifyNodes<N extends RoutedNode>(
  connected: readonly Prefix[],
  nodes: readonly N[],
): NodeClasses<N> {
  const out: NodeClasses<N> = { direct: [], routed: [] };
  for (const n of nodes)
    (connected.some((p) => p.length > 0 && prefixContainsIp(p, n.internalIp)) ? out.direct : out.routed).push(
      n,
    );
  return out;
}

/** The connected IPv4 prefixes of `ifname` (each address's network). */
export async function connectedPrefixes(ifname: string): Promise<Prefix[]> {
  const addrs = await ipJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>([
    "-4",
    "addr",
    "show",
    "dev",
    ifname,
  ]);
  const out: Prefix[] = [];
  for (const a of addrs)
    for (const i of a.addr_info)
      if (i.family === "inet") out.push(parsePrefix(`${i.local}/${String(i.prefixlen)}`));
  return out;
}

/**
 * Makes the routes with protocol SKEIN_ROUTE_PROTO exactly one per `direct` node:
 * `podCidr via internalIp dev uplink src nodeIp`. `replace` swaps a route of the same prefix (the
 * VXLAN device's, when switching from vxlan mode) in one step. Adds before it removes. Also keeps
 * the nodes' neighbour entries resolved by the kernel (`managed`), so the datapath's FIB lookups
 * find their MACs; `previousNeighbours` are the entries an earlier call made, removed when their
 * node is no longer direct. Throws IpCommandError.
 */
export async function syncNativeRoutes(
  uplink: string,
  nodeIp: string,
  direct: readonly RoutedNode[],
  previousNeighbours: readonly string[] = [],
): Promise<{ added: string[]; removed: string[]; neighbours: string[] }> {
  const want = new Map(direct.map((n) => [formatPrefix(parsePrefix(n.podCidr)), n.internalIp]));
  const have = (await listRoutes()).filter((r) => r.protocol === String(SKEIN_ROUTE_PROTO));
  const haveDst = new Set(have.map((r) => r.dst));
  const added = [...want.keys()].filter((c) => !haveDst.has(c));
  const removed = [...haveDst].filter((c) => !want.has(c));
  const neighbours = [...new Set(want.values())];
  await ipBatch(
    [...want].map(
      ([cidr, via]) =>
        `route replace ${cidr} via ${via} dev ${uplink} proto ${String(SKEIN_ROUTE_PROTO)} src ${nodeIp}`,
    ),
  );
  // Managed neighbours (Linux 5.16+) are an optimisation: without them the kernel resolves the
  // nodes on demand (bpf_redirect_neigh), so a kernel that refuses them does not stop the routes.
  await ipBatch(
    neighbours.map((n) => `neigh replace ${n} dev ${uplink} managed extern_learn`),
    { force: true },
  ).catch(() => undefined);
  await ipBatch(
    [
      ...removed.map((c) => `route del ${c} proto ${String(SKEIN_ROUTE_PROTO)}`),
      ...previousNeighbours.filter((n) => !neighbours.includes(n)).map((n) => `neigh del ${n} dev ${uplink}`),
    ],
    { force: true },
  );
  return { added, removed, neighbours };
}

/** Removes every route with protocol SKEIN_ROUTE_PROTO (leaving native mode). Throws IpCommandError. */
export async function removeNativeRoutes(): Promise<string[]> {
  const have = (await listRoutes()).filter((r) => r.protocol === String(SKEIN_ROUTE_PROTO));
  await ipBatch(
    have.map((r) => `route del ${r.dst} proto ${String(SKEIN_ROUTE_PROTO)}`),
    { force: true },
  );
  return have.map((r) => r.dst);
}

/** Where a route came from, by its protocol and device. */
export function routeSource(r: RouteInfo, overlayIfname: string): NodeRouteSource {
  if (r.protocol === String(SKEIN_ROUTE_PROTO)) return "direct";
  if (r.protocol !== undefined && BGP_PROTOS.has(r.protocol)) return "bgp";
  if (r.dev === overlayIfname) return "vxlan";
  return "other";
}

/**
 * The route of each node's pod CIDR in `routes` (the main table) and where it came from. The
 * function `skeinctl node list` shows; BGP's details (peer) are added by its owner.
 */
export function describeNodeRoutes(
  nodes: readonly RoutedNode[],
  routes: readonly RouteInfo[],
  overlayIfname: string,
): NodeRoute[] {
  const byDst = new Map<string, RouteInfo>();
  for (const r of routes) if (r.dst !== "default" && !byDst.has(r.dst)) byDst.set(r.dst, r);
  return nodes.map((n) => {
    let cidr = n.podCidr;
    try {
      cidr = formatPrefix(parsePrefix(n.podCidr));
    } catch {
      // A node with an unparsable pod CIDR has no route; shown as is.
    }
    const r = byDst.get(cidr);
    return {
      node: n.name,
      podCidr: n.podCidr,
      via: r?.gateway ?? null,
      dev: r?.dev ?? null,
      protocol: r?.protocol ?? null,
      source: r === undefined ? "none" : routeSource(r, overlayIfname),
    };
  });
}
