/**
 * The lab's network: an underlay namespace with a bridge, a veth from the root namespace into it,
 * a "world" namespace outside the cluster, and one namespace per node on the bridge. Names start
 * with skl-<ID>; the underlay is an unused 198.18.X.0/24 chosen from the id.
 *
 *   root ns ── skl<ID>r (198.18.X.254) ─┐
 *   skl-<ID>-u: br0 ─┬─ n1 ── eth0 (198.18.X.11) skl-<ID>-n1
 *                    └─ w  ── eth0 (198.18.X.250, lo 203.0.113.10) skl-<ID>-w
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { mkdirSync, writeFileSync } from "node:fs";
import { ip, ipBatch, listRoutes } from "../loader/index.js";
import { renderRouterConfig } from "./bgp-router.js";
import { startDetached } from "./procs.js";
import { LabRecord, type LabNode, type LabWorld } from "./state.js";

/** The world's address, on its loopback: what pods reach "on the internet". */
export const WORLD_IP = "203.0.113.10";

/** Host numbers on the underlay. */
const HOST = { root: 254, world: 250, firstNode: 10, router: 1 } as const;

/** The rack router's address in rack `subnet` (with --racks). */
export function routerAddr(subnet: string): string {
  return underlayAddr(subnet, HOST.router);
}

/** The path `nsenter --net=` and CNI_NETNS take for namespace `name`. */
export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

/** Lab `id`'s namespace named `suffix` (u, w, n1, p<hash>). */
export function netnsName(id: string, suffix: string): string {
  return `skl-${id}-${suffix}`;
}

/** Address `host` in the underlay `subnet` (a /24 ending in .0/24). */
export function underlayAddr(subnet: string, host: number): string {
  return subnet.replace(/0\/24$/, String(host));
}

/** The root namespace's address on the underlay: the API server listens there. */
export function rootAddr(subnet: string): string {
  return underlayAddr(subnet, HOST.root);
}

/** Node `index`'s address on the underlay. */
export function nodeAddr(subnet: string, index: number): string {
  return underlayAddr(subnet, HOST.firstNode + index);
}

/** An unused 198.18.X.0/24 (benchmarking range, RFC 2544) for the underlay, derived from the id. */
export async function pickSubnet(id: string, recorded: readonly string[]): Promise<string> {
  const used = new Set((await listRoutes()).map((r) => r.dst));
  const start = createHash("sha256").update(id).digest()[0] ?? 0;
  for (let i = 0; i < 256; i++) {
    const subnet = `198.18.${(start + i) % 256}.0/24`;
    if (!used.has(subnet) && !recorded.includes(subnet)) return subnet;
  }
  throw new Error("no free 198.18.X.0/24 subnet for the lab underlay");
}

/**
 * The underlay namespace with its bridge, the root namespace's link into it, and the world
 * namespace on it; each recorded as soon as it exists. Returns the world's record: its workload
 * is the caller's to start.
 */
export async function buildUnderlay(record: LabRecord): Promise<LabWorld> {
  const s = record.state;
  const u = netnsName(s.id, "u");
  await ip(["netns", "add", u]);
  s.underlay = u;
  record.save();
  await ipBatch(["link set lo up", "link add br0 type bridge", "link set br0 up"], { netns: netnsPath(u) });
  // The root namespace's door into the lab: kubectl and the tests reach the API server and nodes.
  const rootLink = `skl${s.id}r`;
  await ip(["link", "add", rootLink, "type", "veth", "peer", "name", "root", "netns", u]);
  s.rootLink = rootLink;
  record.save();
  await ipBatch([`addr add ${rootAddr(s.subnet)}/24 dev ${rootLink}`, `link set ${rootLink} up`]);
  await ipBatch(["link set root master br0", "link set root up"], { netns: netnsPath(u) });

  const w = netnsName(s.id, "w");
  await ip(["netns", "add", w]);
  const world: LabWorld = { netns: w, workload: null, control: join(record.dir, "world.sock") };
  s.world = world;
  record.save();
  await bridgePort(u, "w", w);
  await ipBatch(
    [
      "link set lo up",
      `addr add ${WORLD_IP}/32 dev lo`,
      `addr add ${underlayAddr(s.subnet, HOST.world)}/24 dev eth0`,
      "link set eth0 up",
      // Answer from the address that was asked: a UDP server bound to 0.0.0.0 otherwise replies
      // from the bridge address, which no conntrack on the nodes expects.
      `route change ${s.subnet} dev eth0 src ${WORLD_IP}`,
    ],
    { netns: netnsPath(w) },
  );
  return world;
}

/**
 * Node `node`'s namespace (recorded in the state with the node as soon as it exists), on the
 * bridge as eth0 with its underlay address, its default route through the world. With racks, on
 * its rack's bridge: rack 0's nodes reach the other racks through the router, the others have the
 * router as their default route.
 */
export async function addNodeNetwork(record: LabRecord, node: LabNode): Promise<void> {
  await ip(["netns", "add", node.netns]);
  record.state.nodes.push(node);
  record.save();
  const u = record.state.underlay;
  if (u === null) throw new Error(`lab ${record.state.id} has no underlay`);
  const racks = record.state.racks;
  const rack = node.rack ?? 0;
  await bridgePort(u, `n${node.index}`, node.netns, rack === 0 ? "br0" : `br${rack}`);
  const subnets = racks?.subnets ?? [record.state.subnet];
  const routes =
    rack === 0
      ? [
          `route add default via ${underlayAddr(record.state.subnet, HOST.world)}`,
          ...subnets.slice(1).map((sn) => `route add ${sn} via ${routerAddr(record.state.subnet)}`),
        ]
      : [`route add default via ${routerAddr(subnets[rack] ?? "")}`];
  await ipBatch(["link set lo up", `addr add ${node.ip}/24 dev eth0`, "link set eth0 up", ...routes], {
    netns: netnsPath(node.netns),
  });
}

/**
 * `count` racks: rack 0 is the lab's underlay subnet and bridge; each other rack gets a subnet and
 * a bridge of its own in the underlay namespace. A router namespace has a leg (address .1) on every
 * rack and routes between them (default route: the world); the root namespace and the world reach
 * the other racks through it. The router runs BIRD as the route reflector of every rack's nodes
 * (dynamic neighbours: any node of a rack's subnet, in `asn`). Each step is recorded as it is made.
 */
export async function buildRacks(record: LabRecord, count: number, asn: number): Promise<void> {
  const s = record.state;
  const u = s.underlay;
  if (u === null || s.rootLink === null || s.world === null)
    throw new Error(`lab ${s.id} has no underlay yet`);
  const subnets = [s.subnet];
  for (let r = 1; r < count; r++)
    subnets.push(await pickSubnet(`${s.id}-rack${r}`, [...LabRecord.subnets(), ...subnets]));
  const birdDir = join(record.dir, "router");
  s.racks = { subnets, router: null, bird: null, birdDir, asn };
  record.save();
  const router = netnsName(s.id, "r");
  await ip(["netns", "add", router]);
  s.racks.router = router;
  record.save();
  await ipBatch(["link set lo up"], { netns: netnsPath(router) });
  for (const [i, subnet] of subnets.entries()) {
    const br = i === 0 ? "br0" : `br${i}`;
    if (i > 0) await ipBatch([`link add ${br} type bridge`, `link set ${br} up`], { netns: netnsPath(u) });
    await ip(["-n", u, "link", "add", `r${i}`, "type", "veth", "peer", "name", `rk${i}`, "netns", router]);
    await ipBatch([`link set r${i} master ${br}`, `link set r${i} up`], { netns: netnsPath(u) });
    await ipBatch([`addr add ${routerAddr(subnet)}/24 dev rk${i}`, `link set rk${i} up`], {
      netns: netnsPath(router),
    });
  }
  await ipBatch([`route add default via ${underlayAddr(s.subnet, HOST.world)}`], {
    netns: netnsPath(router),
  });
  await ip(["netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  const via = routerAddr(s.subnet);
  for (const sn of subnets.slice(1)) {
    await ip(["route", "add", sn, "via", via, "dev", s.rootLink]);
    await ip(["-n", s.world.netns, "route", "add", sn, "via", via]);
  }
  mkdirSync(birdDir, { recursive: true });
  const config = join(birdDir, "bird.conf");
  writeFileSync(
    config,
    renderRouterConfig({
      routerId: via,
      asn,
      clients: [],
      ranges: subnets.map((sn) => ({ prefix: sn, local: routerAddr(sn) })),
    }),
  );
  s.racks.bird = startDetached(
    ["bird", "-f", "-c", config, "-s", join(birdDir, "bird.ctl"), "-P", join(birdDir, "bird.pid")],
    { netns: netnsPath(router), log: join(birdDir, "bird.log"), role: "router bird", marker: config },
  );
  record.save();
}

/** A veth from the underlay's bridge `bridge` (port `port`, up) to `eth0` in namespace `netns`. */
async function bridgePort(underlay: string, port: string, netns: string, bridge = "br0"): Promise<void> {
  await ip(["-n", underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns]);
  await ipBatch([`link set ${port} master ${bridge}`, `link set ${port} up`], { netns: netnsPath(underlay) });
}

/** Deletes namespace `name`; one that is gone already counts as deleted. */
export async function deleteNetns(name: string): Promise<void> {
  await ip(["netns", "del", name]).catch(ignoreMissing);
}

/** Deletes link `name` in the root namespace; one that is gone already counts as deleted. */
export async function deleteLink(name: string): Promise<void> {
  await ip(["link", "del", name]).catch(ignoreMissing);
}

function ignoreMissing(err: unknown): void {
  const text = String(err);
  if (/No such file|Cannot find device|does not exist|Invalid argument/.test(text)) return;
  throw err instanceof Error ? err : new Error(text);
}
