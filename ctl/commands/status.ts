/** skeinctl status */
import { Program, type ProgramInfo } from "../../loader/index.js";
import { openOptional } from "../optional.js";
import { ConfigMap } from "../../maps/config.js";
import { EndpointsMap } from "../../maps/endpoints.js";
import { PROGRAM_NAMES, pinPath, type ProgramName } from "../../maps/pins.js";
import { listAttachments } from "../../maps/datapath/attach.js";
import { AgentClient, AgentUnreachableError, agentUrl, type AgentHealth } from "../agent-client.js";
import type { AgentStatus, BgpStatus } from "../../maps/agent-api.js";
import type { Command } from "../cli.js";
import { formatDuration } from "../describe.js";
import { renderJson, renderTable } from "../output.js";
import { MAP_COLUMNS, describePinnedMaps, type MapDescription } from "../pinned-maps.js";

/** A map at or above this fill is worth a warning. */
const PRESSURE_WARN_PERCENT = 80;

/** A datapath program as pinned, and how many hooks in this namespace run it. */
export interface ProgramStatus {
  name: ProgramName;
  pinned: boolean;
  id: number | null;
  tag: string | null;
  /** Hooks in this network namespace running it. */
  attachedTo: number;
}

/** One filter in Skein's TC slot on a link of this namespace. */
export interface AttachmentStatus {
  ifname: string;
  ifindex: number;
  direction: "ingress" | "egress";
  progId: number;
  /** Kernel name of the program running there. */
  program: string | null;
  /** True when it is the program pinned now (false: an older load still runs there). */
  current: boolean;
  /** What the interface is: `endpoint 10.244.0.2`, `overlay`, or null. */
  role: string | null;
  /** How the program is attached: tcx, or a cls_bpf filter in Skein's slot ("tc"). */
  hook: "tcx" | "tc";
}

/** What the agent said (or that it did not answer). */
export interface AgentReport {
  url: string;
  reachable: boolean;
  error: string | null;
  health: AgentHealth | null;
  node: string | null;
  nodeIp: string | null;
  podCidr: string | null;
  lastReconcile: { at: string; durationMs: number } | null;
  nodes: number | null;
  skipped: number | null;
  policyErrors: AgentStatus["policyErrors"];
  /** Native routing's BGP (BIRD): null when the agent runs none (or is older). */
  bgp: BgpStatus | null;
}

/** What `skeinctl status -o json` prints. */
export interface StatusReport {
  bpffsRoot: string;
  datapath: { loaded: boolean; programs: ProgramStatus[] };
  attachments: AttachmentStatus[];
  agent: AgentReport;
  maps: MapDescription[];
  /** Something is broken: the exit code is 1. */
  problems: string[];
  /** Worth a look, not broken. */
  warnings: string[];
}

function openProgramInfo(path: string): ProgramInfo | undefined {
  using prog = openOptional(() => Program.openPinned(path));
  return prog?.info();
}

function programNameById(id: number): string | null {
  try {
    using p = Program.fromId(id);
    return p.info().name;
  } catch {
    return null;
  }
}

/** ifindex → endpoint IP, the overlay's and the uplink's ifindex, from the maps when pinned. */
function roles(root: string): {
  endpoints: Map<number, string>;
  vxlanIfindex: number;
  uplinkIfindex: number;
} {
  const endpoints = new Map<number, string>();
  let vxlanIfindex = 0;
  let uplinkIfindex = 0;
  {
    using ep = openOptional(() => EndpointsMap.openPinned(root));
    for (const [ip, e] of ep?.entries() ?? []) endpoints.set(e.ifindex, ip);
  }
  {
    using cfg = openOptional(() => ConfigMap.openPinned(root));
    if (cfg !== undefined) ({ vxlanIfindex, uplinkIfindex } = cfg.read());
  }
  return { endpoints, vxlanIfindex, uplinkIfindex };
}

async function agentReport(url: string): Promise<AgentReport> {
  const client = new AgentClient(url);
  const empty: AgentReport = {
    url,
    reachable: false,
    error: null,
    health: null,
    node: null,
    nodeIp: null,
    podCidr: null,
    lastReconcile: null,
    nodes: null,
    skipped: null,
    policyErrors: [],
    bgp: null,
  };
  try {
    const [health, status] = await Promise.all([client.health(), client.status()]);
    return {
      ...empty,
      reachable: true,
      health,
      node: status.node,
      nodeIp: status.nodeIp,
      podCidr: status.podCidr,
      lastReconcile: status.lastReconcile,
      nodes: status.nodes.length,
      skipped: status.skipped.length,
      policyErrors: status.policyErrors,
      bgp: status.bgp ?? null,
    };
  } catch (err) {
    if (err instanceof AgentUnreachableError) return { ...empty, error: err.message };
    return { ...empty, reachable: true, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Gathers the node's status. Never throws for what it reports (missing pins, agent down). */
export async function nodeStatus(root: string, url: string): Promise<StatusReport> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const agentPromise = agentReport(url);

  const programs: ProgramStatus[] = PROGRAM_NAMES.map((name) => {
    const info = openProgramInfo(pinPath(root, name));
    return { name, pinned: info !== undefined, id: info?.id ?? null, tag: info?.tag ?? null, attachedTo: 0 };
  });
  const maps = describePinnedMaps(root);
  const missing = [
    ...programs.filter((p) => !p.pinned).map((p) => p.name),
    ...maps.filter((m) => !m.pinned).map((m) => m.name),
  ];
  const loaded = missing.length === 0;
  if (missing.length === programs.length + maps.length)
    problems.push(
      `the datapath is not loaded under ${root}: nothing is pinned there (start skein-agent, or run 'skeinctl datapath load --bpffs-root ${root}')`,
    );
  else if (missing.length > 0)
    problems.push(
      `${missing.join(", ")} not pinned under ${root}: the datapath is incomplete (restart skein-agent, or run 'skeinctl datapath load --bpffs-root ${root}')`,
    );

  const byId = new Map(programs.flatMap((p) => (p.id === null ? [] : [[p.id, p] as const])));
  const { endpoints, vxlanIfindex, uplinkIfindex } = roles(root);
  const attachments: AttachmentStatus[] = (await listAttachments()).map((a) => {
    const pinned = byId.get(a.progId);
    if (pinned !== undefined) pinned.attachedTo++;
    const ep = endpoints.get(a.ifindex);
    return {
      ifname: a.ifname,
      ifindex: a.ifindex,
      direction: a.direction,
      progId: a.progId,
      hook: a.kind,
      program: pinned?.name ?? programNameById(a.progId),
      current: pinned !== undefined,
      role:
        ep !== undefined
          ? `endpoint ${ep}`
          : a.ifindex === vxlanIfindex && vxlanIfindex !== 0
            ? "overlay"
            : a.ifindex === uplinkIfindex && uplinkIfindex !== 0
              ? "uplink"
              : null,
    };
  });
  attachments.sort(
    (a, b) =>
      a.ifname.localeCompare(b.ifname, "en", { numeric: true }) || a.direction.localeCompare(b.direction),
  );

  for (const a of attachments)
    if (!a.current && loaded)
      problems.push(
        `${a.ifname} ${a.direction} runs program id ${a.progId} (${a.program ?? "gone"}), not the one pinned under ${root}: restart skein-agent to move it to the pinned program`,
      );
  const hooked = new Set(attachments.map((a) => `${a.ifindex}/${a.direction}`));
  const unhooked: string[] = [];
  for (const [ifindex, ip] of endpoints)
    for (const direction of ["ingress", "egress"] as const)
      if (!hooked.has(`${ifindex}/${direction}`))
        unhooked.push(`endpoint ${ip} (ifindex ${ifindex}) ${direction}`);
  if (vxlanIfindex !== 0)
    for (const direction of ["ingress", "egress"] as const)
      if (!hooked.has(`${vxlanIfindex}/${direction}`))
        unhooked.push(`overlay (ifindex ${vxlanIfindex}) ${direction}`);
  if (uplinkIfindex !== 0 && !hooked.has(`${uplinkIfindex}/ingress`))
    unhooked.push(`uplink (ifindex ${uplinkIfindex}) ingress`);
  if (unhooked.length > 0 && attachments.length === 0)
    problems.push(
      `no interface in this network namespace has Skein's TC filters, though the maps name ${endpoints.size} endpoint(s)${vxlanIfindex === 0 ? "" : " and an overlay device"}: ` +
        `run skeinctl in the node's network namespace (on a lab node: nsenter --net=/var/run/netns/NODE), or restart skein-agent`,
    );
  else if (unhooked.length > 0)
    problems.push(
      `no Skein program on ${unhooked.join(", ")}: recreate the pod (CNI ADD attaches it) or restart skein-agent for the overlay and the uplink`,
    );

  for (const m of maps)
    if (m.pressurePercent !== null && m.pressurePercent >= PRESSURE_WARN_PERCENT)
      warnings.push(
        `${m.name} is ${m.pressurePercent}% full (${m.entries} of ${m.capacity})${m.name === "skn_policy" ? ": raise --policy-map-entries" : ""}`,
      );

  const agent = await agentPromise;
  if (!agent.reachable) problems.push(agent.error ?? `skein-agent at ${url} did not answer`);
  else if (agent.health === null) problems.push(`skein-agent at ${url}: ${agent.error ?? "no status"}`);
  else {
    if (!agent.health.datapathPinned)
      problems.push(`skein-agent at ${url} reports the datapath is not pinned under its bpffs root`);
    if (!agent.health.ready)
      problems.push(`skein-agent at ${url} is not ready: ${agent.health.reason || "no reason given"}`);
    if (agent.skipped !== null && agent.skipped > 0)
      warnings.push(`the agent skipped ${agent.skipped} Kubernetes object(s): see 'skeinctl node list'`);
    if (agent.policyErrors.length > 0)
      warnings.push(
        `${agent.policyErrors.length} NetworkPolicy error(s): ${agent.policyErrors
          .slice(0, 3)
          .map((e) => `${e.object}: ${e.message}`)
          .join("; ")}`,
      );
  }
  const bgp = agent.bgp;
  if (bgp !== null) {
    if (!bgp.bird.running)
      problems.push(
        `BIRD is not running (${bgp.bird.error ?? bgp.bird.lastExit ?? "not started"}): BGP routes are kept (graceful restart) but not updated; the agent restarts it (see its log)`,
      );
    for (const sess of bgp.sessions)
      if (sess.state !== "Established")
        warnings.push(
          `BGP session with ${sess.peer} (AS ${sess.asn ?? "?"}) is ${sess.state}${sess.lastError === "" ? "" : `: ${sess.lastError}`}`,
        );
    for (const rej of bgp.rejected)
      warnings.push(`BGP: ${rej.from} announced ${rej.prefix}, no node's pod CIDR: refused (${rej.at})`);
  }
  return { bpffsRoot: root, datapath: { loaded, programs }, attachments, agent, maps, problems, warnings };
}

function agentLine(a: AgentReport): string {
  if (!a.reachable || a.health === null) return `${a.url}: not answering`;
  const state = `${a.health.healthzStatus === 200 ? "healthy" : "unhealthy"}, ${a.health.ready ? "ready" : `not ready (${a.health.reason})`}`;
  const where =
    a.node === null
      ? ""
      : `; node ${a.node} ${a.nodeIp ?? "?"}, pod CIDR ${a.podCidr ?? "?"}, ${a.nodes ?? 0} node(s) known`;
  const last =
    a.lastReconcile === null
      ? "; not reconciled yet"
      : `; last reconcile ${formatDuration((Date.now() - Date.parse(a.lastReconcile.at)) / 1000)} ago, took ${a.lastReconcile.durationMs.toFixed(1)} ms`;
  return `${a.url}: ${state}${where}${last}`;
}

/** `skeinctl status`: exit 0 when nothing is broken, 1 otherwise (the report says what and how to fix it). */
export const status: Command = {
  name: "status",
  summary:
    "datapath pins, TC attachments in this network namespace, agent health, map pressure (exit 1 when something is broken)",
  usage: "status [--agent URL] [--bpffs-root DIR] [-o json|table]",
  async run(ctx) {
    const r = await nodeStatus(ctx.bpffsRoot, agentUrl(ctx));
    if (ctx.output === "json") {
      ctx.io.stdout(renderJson(r));
      return r.problems.length === 0 ? 0 : 1;
    }
    const out: string[] = [];
    const pinnedPrograms = r.datapath.programs.filter((p) => p.pinned).length;
    const pinnedMaps = r.maps.filter((m) => m.pinned).length;
    out.push(
      `Datapath:  ${r.datapath.loaded ? "loaded" : "NOT LOADED"} under ${r.bpffsRoot} (${pinnedPrograms}/${r.datapath.programs.length} programs, ${pinnedMaps}/${r.maps.length} maps pinned)`,
    );
    out.push(
      indent(
        renderTable(r.datapath.programs, [
          { header: "PROGRAM", value: (p) => p.name },
          { header: "ID", value: (p) => p.id ?? "not pinned" },
          { header: "TAG", value: (p) => p.tag ?? "-" },
          { header: "HOOKS HERE", value: (p) => p.attachedTo },
        ]),
      ),
    );
    out.push(`Attached:  ${r.attachments.length} TC hook(s) in this network namespace`);
    if (r.attachments.length > 0)
      out.push(
        indent(
          renderTable(r.attachments, [
            { header: "INTERFACE", value: (a) => a.ifname },
            { header: "DIRECTION", value: (a) => a.direction },
            { header: "HOOK", value: (a) => a.hook },
            {
              header: "PROGRAM",
              value: (a) => `${a.program ?? "?"}${a.current ? "" : " (not the pinned one)"}`,
            },
            { header: "ID", value: (a) => a.progId },
            { header: "ROLE", value: (a) => a.role ?? "-" },
          ]),
        ),
      );
    out.push(`Agent:     ${agentLine(r.agent)}`);
    const bgp = r.agent.bgp;
    if (bgp !== null) {
      out.push(
        `BGP:       AS ${bgp.asn}, router id ${bgp.routerId ?? "?"}${bgp.mesh ? ", node mesh" : ""}; BIRD ${bgp.bird.running ? `pid ${bgp.bird.pid ?? "?"}` : "NOT RUNNING"}${bgp.bird.restarts > 0 ? `, restarted ${bgp.bird.restarts}x (last: ${bgp.bird.lastExit ?? "?"})` : ""}`,
      );
      if (bgp.sessions.length > 0)
        out.push(
          indent(
            renderTable(bgp.sessions, [
              { header: "PEER", value: (x) => (x.node === undefined ? x.peer : `${x.peer} (${x.node})`) },
              { header: "AS", value: (x) => x.asn ?? "?" },
              { header: "STATE", value: (x) => x.state },
              { header: "UPTIME", value: (x) => (x.uptimeS === null ? "-" : formatDuration(x.uptimeS)) },
              { header: "IMPORTED", value: (x) => x.imported ?? "-" },
              { header: "EXPORTED", value: (x) => x.exported ?? "-" },
            ]),
          ),
        );
    }
    out.push("Maps:");
    out.push(indent(renderTable(r.maps, MAP_COLUMNS)));
    out.push(
      r.problems.length === 0
        ? "Problems:  none"
        : `Problems:  ${r.problems.length}\n${r.problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    if (r.warnings.length > 0)
      out.push(`Warnings:  ${r.warnings.length}\n${r.warnings.map((w) => `  - ${w}`).join("\n")}`);
    ctx.io.stdout(out.join("\n") + "\n");
    return r.problems.length === 0 ? 0 : 1;
  },
};

function indent(text: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}
