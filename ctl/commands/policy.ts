/** skeinctl policy simulate */
import { readFileSync } from "node:fs";
import type { KubernetesObject } from "@kubernetes/client-node";
import { readObjectFiles } from "../../policy/object-files.js";
import { Simulator, type Probe, type SimResult } from "../simulate/simulator.js";
import { CtlError, type Command } from "../cli.js";

function parseProbes(text: string, source: string): Probe[] {
  const out: Probe[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) return;
    let p: unknown;
    try {
      p = JSON.parse(t);
    } catch (err) {
      throw new CtlError(`${source}:${i + 1}: not JSON: ${(err as Error).message}`);
    }
    const o = p as Partial<Probe> & { protocol?: string };
    const protocol = (o.protocol ?? "TCP").toUpperCase();
    if (typeof o.from !== "string" || typeof o.to !== "string" || typeof o.port !== "number")
      throw new CtlError(
        `${source}:${i + 1}: a probe needs "from", "to" (namespace/pod, svc/namespace/name or an IPv4) and a numeric "port"`,
      );
    if (protocol !== "TCP" && protocol !== "UDP" && protocol !== "SCTP")
      throw new CtlError(`${source}:${i + 1}: protocol must be TCP, UDP or SCTP, not ${protocol}`);
    out.push({ from: o.from, to: o.to, port: o.port, protocol });
  });
  return out;
}

function oneLine(r: SimResult): Record<string, unknown> {
  const side = r.deniedBy === undefined || r.deniedBy === "service" ? undefined : r[r.deniedBy];
  return {
    from: r.from,
    to: r.to,
    port: r.port,
    protocol: r.protocol,
    allowed: r.allowed,
    ...(r.deniedBy === undefined
      ? {}
      : {
          deniedBy: r.deniedBy,
          why: r.deniedBy === "service" ? r.service?.why : side?.why,
          reason: r.deniedBy === "service" ? "no_backend" : side?.datapathReason,
        }),
    egress: r.egress,
    ingress: r.ingress,
    ...(r.service === undefined ? {} : { service: r.service }),
  };
}

/** The allowing rules, or why it was denied, in one line. */
function why(r: SimResult): string {
  if (r.deniedBy === "service") return r.service?.why ?? "no backend";
  if (r.service !== undefined)
    return r.service.backends
      .map(
        (b) =>
          `${b.pod ?? b.address}: ${b.allowed ? "allowed" : `denied (${b.deniedBy ?? "?"}): ${(b.deniedBy === undefined ? undefined : b[b.deniedBy].why) ?? ""}`}`,
      )
      .join("; ");
  if (r.deniedBy !== undefined) return r[r.deniedBy].why ?? r[r.deniedBy].datapathReason ?? "denied";
  return [r.egress.rule, r.ingress.rule].filter((x) => x !== undefined).join("; ") || "no policy applies";
}

export const policySimulate: Command = {
  name: "policy simulate",
  summary:
    "offline what-if: run probe packets through the real BPF programs against a set of Kubernetes objects",
  usage:
    "policy simulate --objects DIR|FILE [--objects ...] [--probes FILE|-] [-o json|table]   (root: it loads BPF programs)",
  options: { objects: { type: "string", multiple: true }, probes: { type: "string" } },
  async run(ctx) {
    if (process.getuid?.() !== 0)
      throw new CtlError(
        "policy simulate loads the BPF programs into the kernel (privately, nothing is pinned): run it as root",
      );
    const objectPaths = (ctx.values.objects as string[] | undefined) ?? [];
    if (objectPaths.length === 0)
      throw new CtlError(
        "--objects DIR|FILE is required (Namespaces, Pods with status.podIP, NetworkPolicies; YAML or JSON)",
      );
    const probePath = typeof ctx.values.probes === "string" ? ctx.values.probes : "-";
    const probes = parseProbes(
      readFileSync(probePath === "-" ? 0 : probePath, "utf8"),
      probePath === "-" ? "stdin" : probePath,
    );
    const objects = (await readObjectFiles(objectPaths)).map((s) => s.object as unknown as KubernetesObject);
    using sim = new Simulator();
    const ignored = sim.apply(objects);
    for (const o of ignored)
      ctx.io.stderr(
        `skeinctl policy simulate: ignoring ${o.kind ?? "object"} ${o.metadata?.name ?? ""} (only Namespaces, Pods, NetworkPolicies, Services and EndpointSlices matter)\n`,
      );
    for (const e of sim.errors()) ctx.io.stderr(`skeinctl policy simulate: ${e.object}: ${e.message}\n`);
    let denied = 0;
    const rows: SimResult[] = [];
    for (const p of probes) {
      const r = sim.probe(p);
      if (!r.allowed) denied++;
      rows.push(r);
      if (ctx.output === "json") ctx.io.stdout(JSON.stringify(oneLine(r)) + "\n");
    }
    if (ctx.output === "table") {
      const { renderTable } = await import("../output.js");
      ctx.io.stdout(
        renderTable(rows, [
          { header: "FROM", value: (r) => r.from },
          {
            header: "TO",
            value: (r) => (r.service === undefined ? r.to : `${r.to} (${r.service.frontend})`),
          },
          { header: "PORT", value: (r) => `${r.protocol}/${r.port}` },
          { header: "VERDICT", value: (r) => (r.allowed ? "allowed" : `denied (${r.deniedBy})`) },
          { header: "WHY", value: why },
        ]),
      );
    }
    ctx.io.stderr(`${probes.length} probes: ${probes.length - denied} allowed, ${denied} denied\n`);
    return 0;
  },
};
