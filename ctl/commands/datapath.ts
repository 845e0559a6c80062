/** skeinctl datapath load|unload|detach */
import { DEFAULT_BPFFS_ROOT, SKEIN_HOOKS } from "../../maps/pins.js";
import { hookDetach } from "../../loader/index.js";
import { listAttachments, moveAttachmentsToReplacements } from "../../maps/datapath/attach.js";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { render, renderJson } from "../output.js";
import { CtlError, type Command } from "../cli.js";

export const datapathLoad: Command = {
  name: "datapath load",
  summary:
    "mount bpffs if needed, load the datapath object, pin its programs and maps (adopts what is pinned)",
  usage: `datapath load [--bpffs-root DIR (default ${DEFAULT_BPFFS_ROOT})] [--object PATH] [--policy-map-entries N] [-o json]`,
  options: { object: { type: "string" }, "policy-map-entries": { type: "string" } },
  async run(ctx) {
    const entries = ctx.values["policy-map-entries"];
    const policyMapEntries = typeof entries === "string" ? Number(entries) : undefined;
    if (policyMapEntries !== undefined && !(Number.isInteger(policyMapEntries) && policyMapEntries > 0))
      throw new CtlError(`--policy-map-entries must be a positive integer, not ${String(entries)}`);
    const object = ctx.values.object;
    const report = loadPinnedDatapath(ctx.bpffsRoot, {
      ...(typeof object === "string" ? { objectPath: object } : {}),
      ...(policyMapEntries === undefined ? {} : { policyMapEntries }),
    });
    const moved = await moveAttachmentsToReplacements(ctx.bpffsRoot, report);
    if (ctx.output === "json") {
      ctx.io.stdout(renderJson({ ...report, moved }));
      return 0;
    }
    ctx.io.stdout(`datapath pinned under ${report.root}\n`);
    ctx.io.stdout(
      render(
        "table",
        [
          ...report.programs.map((p) => ({
            kind: "program",
            name: p.name,
            action: p.action,
            id: String(p.id),
          })),
          ...report.maps.map((m) => ({ kind: "map", name: m.name, action: m.action, id: "" })),
        ],
        [
          { header: "KIND", value: (r) => r.kind },
          { header: "NAME", value: (r) => r.name },
          { header: "ACTION", value: (r) => r.action },
          { header: "ID", value: (r) => r.id },
        ],
      ),
    );
    for (const m of moved)
      ctx.io.stdout(`moved ${m.ifname} ${m.direction} from program ${m.from} to ${m.to}\n`);
    return 0;
  },
};

export const datapathUnload: Command = {
  name: "datapath unload",
  summary: "remove exactly the pins 'datapath load' made (programs still attached keep running)",
  usage: "datapath unload [--bpffs-root DIR] [-o json]",
  run(ctx) {
    const removed = unloadPinnedDatapath(ctx.bpffsRoot);
    if (ctx.output === "json") ctx.io.stdout(renderJson({ root: ctx.bpffsRoot, removed }));
    else
      ctx.io.stdout(
        removed.length === 0
          ? `nothing pinned under ${ctx.bpffsRoot}\n`
          : `removed ${removed.join(", ")} from ${ctx.bpffsRoot}\n`,
      );
    return 0;
  },
};

export const datapathDetach: Command = {
  name: "datapath detach",
  summary:
    "remove Skein's programs from every interface hook in this network namespace (tcx and TC filters); for uninstalling a drained node",
  usage: "datapath detach [-o json]",
  async run(ctx) {
    const removed: string[] = [];
    for (const a of await listAttachments())
      if (hookDetach({ ifindex: a.ifindex, direction: a.direction, ifname: a.ifname }, SKEIN_HOOKS))
        removed.push(`${a.ifname} ${a.direction}`);
    if (ctx.output === "json") ctx.io.stdout(renderJson({ removed }));
    else
      ctx.io.stdout(
        removed.length === 0
          ? "no Skein program on any interface here\n"
          : `removed Skein's programs from ${removed.join(", ")}\n`,
      );
    return 0;
  },
};
