/**
 * The node's side of the overlay: the VXLAN device (collect_md, nolearning, its own MAC, MTU =
 * uplink − 50, IPv6 off), routes to other nodes' pod CIDRs through it, the masquerade rule for pod
 * traffic leaving the cluster, and the sysctls forwarding needs. Acts in the caller's network
 * namespace. Every function is idempotent.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { execFile } from "node:child_process";
import {
  findLink,
  ip,
  ipBatch,
  listAddresses,
  listLinks,
  listRoutes,
  listRules,
  type RouteInfo,
  type RuleInfo,
} from "../../loader/index.js";
import type { OverlayDevice } from "../../maps/agent-api.js";
import { OVERLAY_OVERHEAD } from "../../maps/cni-conflist.js";
import { vxlanMacFor } from "../../maps/config.js";
import { formatPrefix, parsePrefix, prefixContainsIp, type Prefix } from "../../maps/net.js";

export const DEFAULT_VXLAN_DEVICE = "skn_vxlan";
export const DEFAULT_VXLAN_PORT = 4789;
export const NFT_TABLE = "skein";
/** SKN_MARK_NODEPORT_SNAT (bpf/lib/common.h): a NodePort flow of externalTrafficPolicy Cluster. */
export const NODEPORT_SNAT_MARK = "0x5e1c0002";

export interface Uplink {
  ifname: string;
  ifindex: number;
  mtu: number;
}

/** The interface holding `nodeIp`, and its MTU. Throws when no interface has that address. */
export async function uplinkFor(nodeIp: string): Promise<Uplink> {
  const addrs = await listAddresses();
  const owner = addrs.find((a) => a.addr_info.some((i) => i.local === nodeIp));
  if (owner === undefined)
    throw new Error(`no interface in this network namespace has the node address ${nodeIp}`);
  const link = await findLink(owner.ifname);
  if (link === undefined) throw new Error(`uplink ${owner.ifname} vanished`);
  return { ifname: owner.ifname, ifindex: link.ifindex, mtu: link.mtu };
}

/**
 * Is every address in `ips` a direct neighbour through `uplink`, by the routes of the main table
 * (`ip -4 route show`)? That is: its longest matching route is a unicast route out of `uplink`
 * without a gateway. Then the datapath may name the address as the next hop of bpf_redirect_neigh
 * and skip the kernel's route lookup (ConfigFlag.tunnelOnLink). True for no addresses.
 */
export function allOnLink(routes: readonly RouteInfo[], uplink: string, ips: readonly string[]): boolean {
  const parsed = routes.flatMap((r) => {
    try {
      return [{ route: r, prefix: parsePrefix(r.dst === "default" ? "0.0.0.0/0" : r.dst) }];
    } catch {
      return []; // Not an IPv4 prefix this check knows: it cannot be the best match of a node.
    }
  });
  return ips.every((ip) => {
    let best: { route: RouteInfo; prefix: Prefix } | undefined;
    for (const c of parsed)
      if (prefixContainsIp(c.prefix, ip) && (best === undefined || c.prefix.length > best.prefix.length))
        best = c;
    return (
      best !== undefined &&
      best.route.dev === uplink &&
      best.route.gateway === undefined &&
      (best.route.type === undefined || best.route.type === "unicast")
    );
  });
}

/**
 * Are the rules only the kernel's three (local, main, default, each for all sources)? Then the main
 * table decides every route, and allOnLink's answer is the kernel's.
 */
export function onlyDefaultRules(rules: readonly RuleInfo[]): boolean {
  const defaults = new Map([
    [0, "local"],
    [32766, "main"],
    [32767, "default"],
  ]);
  return (
    rules.length === defaults.size &&
    rules.every(
      (r) =>
        defaults.get(r.priority) === r.table &&
        Object.keys(r).every((k) => k === "priority" || k === "src" || k === "table") &&
        (r.src === undefined || r.src === "all"),
    )
  );
}

/**
 * allOnLink against this network namespace's main table; false when policy routing rules other than
 * the kernel's own exist (another table could route a node elsewhere).
 */
export async function tunnelEndpointsOnLink(uplink: string, ips: readonly string[]): Promise<boolean> {
  if (!onlyDefaultRules(await listRules())) return false;
  return allOnLink(await listRoutes(), uplink, ips);
}

export function writeSysctl(path: string, value: string): void {
  const file = `/proc/sys/${path.replaceAll(".", "/")}`;
  try {
    if (readFileSync(file, "utf8").trim() === value) return;
  } catch {
    // Fall through to the write, which reports the real problem.
  }
  writeFileSync(file, value);
}

export type { OverlayDevice };

/**
 * Creates or fixes up the VXLAN device for `nodeIp`. A device of another kind under the same name,
 * or a VXLAN device with different port or mode, is replaced. Returns its facts. Throws IpCommandError.
 */
export async function ensureOverlayDevice(opts: {
  ifname: string;
  port: number;
  nodeIp: string;
  uplinkMtu: number;
}): Promise<OverlayDevice> {
  const mac = vxlanMacFor(opts.nodeIp);
  const mtu = opts.uplinkMtu - OVERLAY_OVERHEAD;
  const existing = await findLink(opts.ifname);
  const data = existing?.linkinfo?.info_data;
  const compatible =
    existing?.linkinfo?.info_kind === "vxlan" &&
    data?.external === true &&
    data.port === opts.port &&
    data.learning !== true;
  if (existing !== undefined && !compatible) await ip(["link", "del", opts.ifname]);
  if (existing === undefined || !compatible) {
    await ip([
      "link",
      "add",
      opts.ifname,
      "type",
      "vxlan",
      "external",
      "dstport",
      String(opts.port),
      "nolearning",
    ]);
  }
  writeSysctl(`net.ipv6.conf.${opts.ifname}.disable_ipv6`, "1");
  await ipBatch([
    `link set dev ${opts.ifname} address ${mac} mtu ${mtu} arp off`,
    `link set dev ${opts.ifname} up`,
  ]);
  const link = await findLink(opts.ifname);
  if (link === undefined) throw new Error(`${opts.ifname} vanished after creation`);
  return { ifname: opts.ifname, ifindex: link.ifindex, mac, mtu };
}

/** Removes the VXLAN device (teardown). */
export async function removeOverlayDevice(ifname: string): Promise<void> {
  if ((await findLink(ifname)) !== undefined) await ip(["link", "del", ifname]);
}

/**
 * Makes the routes through the VXLAN device exactly `podCidrs` (other nodes' pod CIDRs), with
 * `src nodeIp` so host traffic leaves with the node's address. Adds before it removes.
 */
export async function syncOverlayRoutes(
  ifname: string,
  nodeIp: string,
  podCidrs: readonly string[],
): Promise<{ added: string[]; removed: string[] }> {
  const want = new Set(podCidrs.map((c) => formatPrefix(parsePrefix(c))));
  const have = new Set(
    (await listRoutes())
      .filter((r) => r.dev === ifname)
      .map((r) => formatPrefix(parsePrefix(r.dst === "default" ? "0.0.0.0/0" : r.dst))),
  );
  const added = [...want].filter((c) => !have.has(c));
  const removed = [...have].filter((c) => !want.has(c));
  // `replace` also fixes a route whose attributes drifted.
  await ipBatch([...want].map((c) => `route replace ${c} dev ${ifname} src ${nodeIp}`));
  await ipBatch(
    removed.map((c) => `route del ${c} dev ${ifname}`),
    { force: true },
  );
  return { added, removed };
}

/** Runs `nft -f -` with `script`. */
function nft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile("nft", ["-f", "-"], (err, _out, stderr) => {
      if (err !== null) reject(new Error(`nft: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

/**
 * Skein's nftables table, replaced whole and atomically:
 * - masquerade pod traffic that leaves the cluster to the node's address: source in this node's
 *   pod CIDR, destination outside every cluster pod CIDR, not through the overlay;
 * - keep the overlay's own UDP packets out of netfilter conntrack (`notrack` in the raw hooks): they
 *   need no NAT, and tracking them costs every packet and fills the table with one-way entries;
 * - with `nodePortSnat` (Service load balancing in BPF), masquerade what skn_from_uplink translated
 *   for a NodePort/external frontend with externalTrafficPolicy Cluster (NODEPORT_SNAT_MARK, set by
 *   the datapath): one static rule, netfilter allocating the port and reversing it for the reply.
 */
export async function ensureNftables(
  localPodCidr: string,
  clusterCidrs: readonly string[],
  overlayIfname: string,
  vxlanPort: number,
  options: { nodePortSnat?: boolean } = {},
): Promise<void> {
  const local = formatPrefix(parsePrefix(localPodCidr));
  const cluster = [...new Set(clusterCidrs.map((c) => formatPrefix(parsePrefix(c))))];
  const script = [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    `  chain overlay-in {`,
    `    type filter hook prerouting priority raw; policy accept;`,
    `    udp dport ${vxlanPort} notrack`,
    `  }`,
    `  chain overlay-out {`,
    `    type filter hook output priority raw; policy accept;`,
    `    udp dport ${vxlanPort} notrack`,
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${local} ip daddr != { ${cluster.join(", ")} } oifname != "${overlayIfname}" masquerade`,
    ...(options.nodePortSnat === true ? [`    meta mark ${NODEPORT_SNAT_MARK} masquerade`] : []),
    `  }`,
    `}`,
    "",
  ].join("\n");
  await nft(script);
}

/** Forwarding on; reverse-path filtering off on the overlay device (pods' sources arrive there). */
export function ensureForwardingSysctls(overlayIfname: string): void {
  writeSysctl("net.ipv4.ip_forward", "1");
  writeSysctl(`net.ipv4.conf.${overlayIfname}.rp_filter`, "0");
}

/** Every IPv4 address this node owns (identity host). */
export async function localAddresses(): Promise<string[]> {
  const out: string[] = [];
  for (const a of await listAddresses())
    for (const i of a.addr_info) if (i.family === "inet" && !i.local.startsWith("127.")) out.push(i.local);
  return out;
}

export { listLinks };
