/** skeinctl map list | map dump NAME */
import { PINNED_MAPS } from "../../maps/pins.js";
import { CtlError, type Command } from "../cli.js";
import { skeinLinkNames } from "../links.js";
import { render, renderJson } from "../output.js";
import { MAP_COLUMNS, describePinnedMaps, dumpPinnedMap, resolveMapName } from "../pinned-maps.js";

/** `skeinctl map list`: exit 1 when any map is not pinned. */
export const mapList: Command = {
  name: "map list",
  summary: "every pinned map: type, key/value size, entries, capacity, pressure",
  usage: "map list [--bpffs-root DIR] [-o json|table]",
  run(ctx) {
    const maps = describePinnedMaps(ctx.bpffsRoot);
    const missing = maps.filter((m) => !m.pinned);
    if (missing.length === maps.length)
      throw new CtlError(
        `no Skein map is pinned under ${ctx.bpffsRoot}: the datapath is not loaded there (start skein-agent, or run 'skeinctl datapath load --bpffs-root ${ctx.bpffsRoot}'; a lab node has its own --bpffs-root)`,
      );
    ctx.io.stdout(render(ctx.output, maps, MAP_COLUMNS));
    if (missing.length > 0) {
      ctx.io.stderr(
        `skeinctl map list: ${missing.map((m) => m.name).join(", ")} not pinned under ${ctx.bpffsRoot}: the datapath is incomplete (restart skein-agent, or run 'skeinctl datapath load --bpffs-root ${ctx.bpffsRoot}')\n`,
      );
      return 1;
    }
    return 0;
  },
};

/** `skeinctl map dump NAME`: decoded through maps/ codecs; the ring buffer is refused with a pointer to monitor. */
export const mapDump: Command = {
  name: "map dump",
  summary: `decoded contents of one pinned map (${PINNED_MAPS.filter((m) => m !== "skn_events").join(", ")})`,
  usage:
    "map dump NAME [--all] [--bpffs-root DIR] [-o json|table]   (NAME: skn_ipcache or ipcache; --all: zero metrics too)",
  options: { all: { type: "boolean" } },
  async run(ctx) {
    const [name, ...extra] = ctx.positionals;
    if (name === undefined) throw new CtlError(`map dump needs a map name: one of ${PINNED_MAPS.join(", ")}`);
    if (extra.length > 0) throw new CtlError(`map dump takes one map name, got ${ctx.positionals.join(" ")}`);
    const mapName = resolveMapName(name);
    const ifnames =
      mapName === "skn_endpoints" || mapName === "skn_config"
        ? await skeinLinkNames(ctx.bpffsRoot)
        : new Map<number, string>();
    const dump = dumpPinnedMap(ctx.bpffsRoot, mapName, { ifnames, all: ctx.values.all === true });
    if (ctx.output === "json") ctx.io.stdout(renderJson(dump.rows));
    else {
      ctx.io.stdout(
        dump.rows.length === 0 ? `${dump.name} is empty\n` : render("table", dump.rows, dump.columns),
      );
      if (dump.note !== undefined) ctx.io.stdout(`(${dump.note})\n`);
    }
    return 0;
  },
};
