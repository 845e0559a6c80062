/** The lab's connectivity matrix: every source to every destination, TCP and ICMP, in parallel. */
import type { Lab, LabNode, LabPod } from "./lab.js";
import { WORLD_IP } from "./lab.js";
import type { ProbeProtocol } from "./workload/workload.js";

export interface Path {
  from: string;
  to: string;
  kind:
    | "same node"
    | "cross node"
    | "node → pod"
    | "pod → node"
    | "pod → world"
    | "pod → ClusterIP (same node)"
    | "pod → ClusterIP (cross node)"
    | "pod → ClusterIP (every backend)"
    | "node → ClusterIP"
    | "world → NodePort";
  protocol: ProbeProtocol;
  ok: boolean;
  ms: number;
  /** Source address the destination saw (TCP), e.g. the node's for masqueraded traffic. */
  seenAs?: string;
  error?: string;
}

type Endpoint = {
  label: string;
  kind: "pod" | "node" | "world";
  node: string;
  ip: string;
  ref: LabPod | LabNode | "world";
};

function endpoints(lab: Lab): Endpoint[] {
  return [
    ...lab.state.pods.map((p): Endpoint => ({
      label: `${p.namespace}/${p.name}`,
      kind: "pod",
      node: p.node,
      ip: p.ip,
      ref: p,
    })),
    ...lab.state.nodes.map((n): Endpoint => ({
      label: n.name,
      kind: "node",
      node: n.name,
      ip: n.ip,
      ref: n,
    })),
  ];
}

function kindOf(a: Endpoint, b: Endpoint): Path["kind"] | undefined {
  if (a.kind === "pod" && b.kind === "pod") return a.node === b.node ? "same node" : "cross node";
  if (a.kind === "node" && b.kind === "pod") return "node → pod";
  if (a.kind === "pod" && b.kind === "node") return "pod → node";
  return undefined;
}

/** Probes every pair (and every pod to the world) with TCP 8080 and ICMP. */
export async function connectivityMatrix(
  lab: Lab,
  opts: { timeoutMs?: number; concurrency?: number } = {},
): Promise<Path[]> {
  const eps = endpoints(lab);
  const probePath = async (
    a: Endpoint,
    to: string,
    ip: string,
    kind: Path["kind"],
    protocol: ProbeProtocol,
  ): Promise<Path> => {
    const r = await lab.probe(a.ref, protocol, ip, 8080, opts.timeoutMs ?? 2000);
    return {
      from: a.label,
      to,
      kind,
      protocol,
      ok: r.ok,
      ms: r.ms,
      ...(r.reply ? { seenAs: r.reply.peer } : {}),
      ...(r.error === undefined ? {} : { error: r.error }),
    };
  };
  const jobs: (() => Promise<Path>)[] = [];
  for (const a of eps) {
    for (const b of eps) {
      if (a === b) continue;
      const kind = kindOf(a, b);
      if (kind === undefined) continue;
      for (const protocol of ["TCP", "ICMP"] as const)
        jobs.push(() => probePath(a, b.label, b.ip, kind, protocol));
    }
    if (a.kind === "pod")
      for (const protocol of ["TCP", "ICMP"] as const)
        jobs.push(() => probePath(a, `world ${WORLD_IP}`, WORLD_IP, "pod → world", protocol));
  }
  return runLimited(jobs, opts.concurrency ?? 16);
}

export async function runLimited<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, jobs.length) }, async () => {
    for (let i = next++; i < jobs.length; i = next++) {
      const job = jobs[i];
      if (job !== undefined) out[i] = await job();
    }
  });
  await Promise.all(workers);
  return out;
}

/** FROM × TO grid; each cell "tcp icmp" with ✓/✗. */
export function renderMatrix(paths: readonly Path[]): string {
  const froms = [...new Set(paths.map((p) => p.from))];
  // Columns in the same order as rows, then destinations that never send (the world).
  const tos = [
    ...froms.filter((f) => paths.some((p) => p.to === f)),
    ...new Set(paths.map((p) => p.to).filter((t) => !froms.includes(t))),
  ];
  const cell = (from: string, to: string): string => {
    const ps = paths.filter((p) => p.from === from && p.to === to);
    if (ps.length === 0) return "·";
    return ps.map((p) => `${p.protocol === "TCP" ? "tcp" : "icmp"}${p.ok ? "✓" : "✗"}`).join(" ");
  };
  const header = ["FROM \\ TO", ...tos];
  const rows = froms.map((f) => [f, ...tos.map((t) => cell(f, t))]);
  // Width in code points: the cells hold ✓ and ✗, one column each.
  const width = (text: string) => Array.from(text).length;
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => c + " ".repeat(Math.max(0, (widths[i] ?? 0) - width(c))))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

export function summarize(paths: readonly Path[]): string {
  const kinds = [...new Set(paths.map((p) => p.kind))];
  const width = Math.max(12, ...kinds.map((k) => Array.from(k).length));
  return kinds
    .map((k) => {
      const ps = paths.filter((p) => p.kind === k);
      const ok = ps.filter((p) => p.ok).length;
      const ms = ps.filter((p) => p.ok).map((p) => p.ms);
      const median = ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)] ?? 0;
      return `${k.padEnd(width)} ${ok}/${ps.length} ok${ok > 0 ? `, median ${median} ms` : ""}`;
    })
    .join("\n");
}
