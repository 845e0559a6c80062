/**
 * skeinctl service list: every Service frontend the node translates, with its backends in slot
 * order, read from the pinned maps (skn_lb_svc → skn_lb_slot → skn_lb_backend), as the datapath
 * sees them. Works without the agent.
 */
import { LbBackendFlag, LbBackendMap, type LbBackendEntry } from "../../maps/lb-backend.js";
import { LbSlotMap } from "../../maps/lb-slot.js";
import { LbProto, LbSvcFlag, LbSvcMap, type LbSvcEntry, type LbSvcKey } from "../../maps/lb-svc.js";
import { parseIPv4 } from "../../maps/net.js";
import type { Command } from "../cli.js";
import { renderJson, renderTable } from "../output.js";

/** One backend of a frontend, in slot order. */
export interface ServiceBackendRow {
  slot: number;
  backendId: number;
  /** null when the slot points to a backend id skn_lb_backend does not hold. */
  address: string | null;
  /** active, terminating (used only while no backend is ready), or missing (a dangling slot). */
  state: "active" | "terminating" | "missing";
  local: boolean;
}

export interface ServiceRow {
  frontend: string;
  addr: string;
  port: number;
  protocol: "TCP" | "UDP" | "SCTP";
  /** ClusterIP, NodePort or External (an externalIP or LoadBalancer IP). */
  type: "ClusterIP" | "NodePort" | "External";
  svcId: number;
  flags: string[];
  affinityTimeoutS: number;
  count: number;
  localCount: number;
  backends: ServiceBackendRow[];
}

function protocolName(p: number): ServiceRow["protocol"] {
  return p === LbProto.udp ? "UDP" : p === LbProto.sctp ? "SCTP" : "TCP";
}

/** LbSvcFlag bits by name. */
export function lbSvcFlagNames(flags: number): string[] {
  const names: [string, number][] = [
    ["affinity", LbSvcFlag.affinity],
    ["ext-local", LbSvcFlag.extLocal],
    ["int-local", LbSvcFlag.intLocal],
    ["maglev", LbSvcFlag.consistent],
    ["nodeport", LbSvcFlag.nodePort],
    ["external", LbSvcFlag.external],
  ];
  return names.filter(([, bit]) => (flags & bit) !== 0).map(([n]) => n);
}

/**
 * Joins the three maps' contents into one row per frontend (pure; sorted by address, port,
 * protocol). `slots` maps `svcId#slot` to a backend id.
 */
export function serviceRows(
  frontends: Iterable<[LbSvcKey, LbSvcEntry]>,
  slots: ReadonlyMap<string, number>,
  backends: ReadonlyMap<number, LbBackendEntry>,
): ServiceRow[] {
  const rows: ServiceRow[] = [];
  for (const [k, v] of frontends) {
    const list: ServiceBackendRow[] = [];
    for (let slot = 0; slot < v.count; slot++) {
      const backendId = slots.get(`${v.svcId}#${slot}`);
      if (backendId === undefined) {
        list.push({ slot, backendId: 0, address: null, state: "missing", local: false });
        continue;
      }
      const b = backends.get(backendId);
      list.push({
        slot,
        backendId,
        address: b === undefined ? null : `${b.addr}:${b.port}`,
        state:
          b === undefined
            ? "missing"
            : (b.flags & LbBackendFlag.terminating) !== 0
              ? "terminating"
              : "active",
        local: slot < v.localCount,
      });
    }
    const type =
      (v.flags & LbSvcFlag.nodePort) !== 0
        ? "NodePort"
        : (v.flags & LbSvcFlag.external) !== 0
          ? "External"
          : "ClusterIP";
    rows.push({
      frontend: `${k.addr}:${k.port}/${protocolName(k.proto)}`,
      addr: k.addr,
      port: k.port,
      protocol: protocolName(k.proto),
      type,
      svcId: v.svcId,
      flags: lbSvcFlagNames(v.flags),
      affinityTimeoutS: v.affinityTimeoutS,
      count: v.count,
      localCount: v.localCount,
      backends: list,
    });
  }
  return rows.sort(
    (a, b) =>
      parseIPv4(a.addr) - parseIPv4(b.addr) || a.port - b.port || a.protocol.localeCompare(b.protocol),
  );
}

/** Reads the pinned Service maps under `root`. Throws SysError (ENOENT: not loaded there). */
export function readServiceRows(root: string): ServiceRow[] {
  using svc = LbSvcMap.openPinned(root);
  using slot = LbSlotMap.openPinned(root);
  using backend = LbBackendMap.openPinned(root);
  const slots = new Map<string, number>();
  for (const [k, v] of slot.entries()) slots.set(`${k.svcId}#${k.slot}`, v.backendId);
  return serviceRows(svc.entries(), slots, new Map(backend.entries()));
}

/** The table, one line per backend (the frontend's columns on its first line only), like cilium-dbg's. */
export function renderServiceTable(rows: readonly ServiceRow[]): string {
  const lines: {
    id: string;
    frontend: string;
    type: string;
    flags: string;
    slot: string;
    backend: string;
  }[] = [];
  for (const r of rows) {
    const head = {
      id: String(r.svcId),
      frontend: r.frontend,
      type: r.type,
      flags:
        r.flags.filter((f) => f !== "nodeport" && f !== "external").join(",") +
        (r.affinityTimeoutS > 0 ? ` (${r.affinityTimeoutS}s)` : ""),
    };
    if (r.backends.length === 0) {
      lines.push({ ...head, slot: "", backend: "(no backend: rejects)" });
      continue;
    }
    r.backends.forEach((b, i) => {
      const cells = i === 0 ? head : { id: "", frontend: "", type: "", flags: "" };
      lines.push({
        ...cells,
        slot: String(b.slot + 1),
        backend: `${b.address ?? `backend ${b.backendId}`} (${b.state}${b.local ? ", local" : ""})`,
      });
    });
  }
  return renderTable(lines, [
    { header: "ID", value: (l) => l.id },
    { header: "FRONTEND", value: (l) => l.frontend },
    { header: "TYPE", value: (l) => l.type },
    { header: "FLAGS", value: (l) => l.flags },
    { header: "#", value: (l) => l.slot },
    { header: "BACKEND", value: (l) => l.backend },
  ]);
}

/** `skeinctl service list`: exit 1 when a slot points to a missing backend (a broken map set). */
export const serviceList: Command = {
  name: "service list",
  summary: "Service frontends this node translates → backends with state, from the pinned skn_lb_* maps",
  usage: "service list [--json] [--bpffs-root DIR] [-o json|table]",
  options: { json: { type: "boolean" } },
  run(ctx) {
    const rows = readServiceRows(ctx.bpffsRoot);
    if (ctx.output === "json" || ctx.values.json === true) ctx.io.stdout(renderJson(rows));
    else
      ctx.io.stdout(
        rows.length === 0
          ? `no Service frontend in ${ctx.bpffsRoot}/skn_lb_svc (the agent runs with --service-lb off, or no Service exists)\n`
          : renderServiceTable(rows),
      );
    const broken = rows.filter((r) => r.backends.some((b) => b.state === "missing"));
    if (broken.length > 0) {
      ctx.io.stderr(
        `skeinctl service list: ${broken.map((r) => r.frontend).join(", ")}: a slot points to no backend (the agent is writing, or the maps are inconsistent)\n`,
      );
      return 1;
    }
    return 0;
  },
};
