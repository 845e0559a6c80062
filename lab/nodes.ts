/**
 * A lab node: where it lives (namespace, underlay address, pod CIDR, its own bpffs root and CNI
 * directories under the lab's) and its skein-agent, a process inside the node's namespace.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { removeEmptyDir } from "../loader/index.js";
import { CNI_SERVER_BUNDLE } from "../maps/cni-server.js";
import { unloadPinnedDatapath } from "../maps/datapath/pinned.js";
import { DIST } from "./dist.js";
import { isRunning, signal, startDetached, stop, tailLog, type ProcRecord } from "./procs.js";
import type { LabNode, LabRecord } from "./state.js";
import { netnsName, netnsPath, nodeAddr, routerAddr } from "./topology.js";

/** The agent's health port (/readyz, the agent API) in every lab node. */
const HEALTH_PORT = 9879;

/** Where lab `id` keeps its nodes' bpffs roots. */
export function labBpffsRoot(id: string): string {
  return `/sys/fs/bpf/skein-lab-${id}`;
}

/**
 * The next node of the lab, not made yet: index one past the highest, name lab-n<index> unless
 * given, pod CIDR 10.244.<index-1>.0/24 unless given. Makes its directory under the lab's.
 */
export function planNode(record: LabRecord, opts: { name?: string; podCidr?: string } = {}): LabNode {
  const { state } = record;
  const index = state.nodes.reduce((m, n) => Math.max(m, n.index), 0) + 1;
  const ndir = join(record.dir, `n${index}`);
  mkdirSync(ndir, { recursive: true });
  // With racks, nodes alternate between them and peer with the rack router over BGP.
  const racks = state.racks;
  const rack = racks === undefined ? undefined : (index - 1) % racks.subnets.length;
  return {
    ...(rack === undefined ? {} : { rack, birdDir: join(ndir, "bird") }),
    name: opts.name ?? `lab-n${index}`,
    index,
    netns: netnsName(state.id, `n${index}`),
    ip: nodeAddr(racks?.subnets[rack ?? 0] ?? state.subnet, index),
    podCidr: opts.podCidr ?? `10.244.${index - 1}.0/24`,
    bpffsRoot: `${labBpffsRoot(state.id)}/n${index}`,
    confDir: join(ndir, "net.d"),
    ipamDir: join(ndir, "ipam"),
    agent: null,
    workload: null,
    control: join(ndir, "node.sock"),
    ...(state.cniServer === true ? { cniServer: null, cniSocket: join(ndir, "cni.sock") } : {}),
  };
}

/**
 * The resident CNI server's command for plugin `cniBin`: the installed form's own runtime and
 * bundle beside it when there, the tsc output on this Node otherwise.
 */
export function cniServerCommand(cniBin: string): string[] {
  const payload = join(dirname(cniBin), "skein-cni.d");
  if (existsSync(join(payload, CNI_SERVER_BUNDLE)))
    return [join(payload, "node"), join(payload, CNI_SERVER_BUNDLE)];
  return [process.execPath, join(DIST, "cni", "server-main.js")];
}

/**
 * Starts `node`'s resident CNI server inside its namespace (socket `node.cniSocket`) and records it;
 * resolves once it listens. Throws, with its log's tail, when it exits or does not listen in 15 s.
 */
export async function startCniServer(record: LabRecord, node: LabNode): Promise<ProcRecord> {
  const socket = node.cniSocket;
  if (socket === undefined) throw new Error(`node ${node.name} has no CNI server socket (--cni-server off)`);
  const log = join(record.dir, `n${node.index}`, "cni-server.log");
  const proc = startDetached([...cniServerCommand(record.state.cniBin), "--socket", socket], {
    netns: netnsPath(node.netns),
    log,
    role: `cni-server ${node.name}`,
    // The socket path is unique to the node and part of the command line.
    marker: socket,
  });
  node.cniServer = proc;
  record.save();
  const deadline = Date.now() + 15000;
  for (;;) {
    if (existsSync(socket) && tailLog(log, 50).includes(`listening on ${socket}`)) return proc;
    if (!isRunning(proc)) throw new Error(`CNI server of ${node.name} exited: see ${log}\n${tailLog(log)}`);
    if (Date.now() > deadline)
      throw new Error(`CNI server of ${node.name} not listening within 15 s: see ${log}\n${tailLog(log)}`);
    await sleep(50);
  }
}

/** Stops `node`'s CNI server (SIGTERM by PID, then SIGKILL) and removes its socket. */
export async function stopCniServer(node: LabNode): Promise<void> {
  if (node.cniServer !== null && node.cniServer !== undefined) await stop(node.cniServer, 5000);
  // A server that stopped cleanly removed it; a killed one left it behind.
  if (node.cniSocket !== undefined) rmSync(node.cniSocket, { force: true });
}

/** Starts (or restarts) `node`'s agent against `kubeconfig` and records it. The record stops it. */
export function startAgent(
  record: LabRecord,
  node: LabNode,
  kubeconfig: string,
  extraArgs: string[] = [],
): ProcRecord {
  const marker = `--bpffs-root=${node.bpffsRoot}`;
  node.agent = startDetached(
    [
      process.execPath,
      join(DIST, "agent", "main.js"),
      `--node-name=${node.name}`,
      `--kubeconfig=${kubeconfig}`,
      marker,
      `--cni-conf-dir=${node.confDir}`,
      `--cni-data-dir=${node.ipamDir}`,
      `--health-addr=0.0.0.0:${HEALTH_PORT}`,
      "--metrics-addr=0.0.0.0:9878",
      ...bgpArgs(record, node),
      ...extraArgs,
    ],
    {
      netns: netnsPath(node.netns),
      log: join(record.dir, `n${node.index}`, "agent.log"),
      role: `agent ${node.name}`,
      marker,
    },
  );
  record.save();
  return node.agent;
}

/** A racked node's BGP settings: the lab's ASN, its rack router as the one peer, its own BIRD dir. */
function bgpArgs(record: LabRecord, node: LabNode): string[] {
  const racks = record.state.racks;
  if (racks === undefined || node.birdDir === undefined) return [];
  const subnet = racks.subnets[node.rack ?? 0] ?? record.state.subnet;
  return [
    `--bgp-asn=${racks.asn}`,
    `--bgp-peers=${racks.asn}@${routerAddr(subnet)}`,
    `--bird-dir=${node.birdDir}`,
  ];
}

/**
 * Ends the BIRD a node's agent left behind (an agent killed with SIGKILL leaves its BIRD running):
 * the pid in its pid file, when that process still runs the node's BIRD configuration.
 */
export async function stopNodeBird(node: LabNode): Promise<void> {
  if (node.birdDir === undefined) return;
  const pidFile = join(node.birdDir, "bird.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  const rec = { pid, role: `bird ${node.name}`, marker: join(node.birdDir, "bird.conf"), log: "" };
  if (!isRunning(rec)) return;
  signal(rec, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (isRunning(rec) && Date.now() < deadline) await sleep(50);
  signal(rec, "SIGKILL");
}

/** Sends `sig` to the node's agent; with SIGKILL/SIGTERM waits (up to 10 s) for it to be gone. */
export async function signalAgent(node: LabNode, sig: NodeJS.Signals): Promise<void> {
  if (node.agent === null) return;
  signal(node.agent, sig);
  if (sig === "SIGKILL" || sig === "SIGTERM") {
    const deadline = Date.now() + 10000;
    while (isRunning(node.agent) && Date.now() < deadline) await sleep(20);
  }
}

export function agentUrl(node: LabNode, path: string, port = HEALTH_PORT): string {
  return `http://${node.ip}:${port}${path}`;
}

/** Resolves when the agent answers /readyz. Throws, with its log's tail, when it exits or times out. */
export async function waitAgentReady(node: LabNode, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(agentUrl(node, "/readyz"));
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (node.agent !== null && !isRunning(node.agent))
      throw new Error(`agent of ${node.name} exited: see ${node.agent.log}\n${tailLog(node.agent.log)}`);
    if (Date.now() > deadline)
      throw new Error(
        `agent of ${node.name} not ready within ${timeoutMs} ms: see ${node.agent?.log}\n${tailLog(node.agent?.log)}`,
      );
    await sleep(100);
  }
}

/** Unloads what the node's datapath pinned under its bpffs root (nothing when the root is gone). */
export function unloadNodeBpffs(node: LabNode): void {
  if (existsSync(node.bpffsRoot)) unloadPinnedDatapath(node.bpffsRoot);
}

/** Removes lab `id`'s bpffs directory once its nodes' roots are gone. */
export function removeLabBpffs(id: string): void {
  removeEmptyDir(labBpffsRoot(id));
}
