/** skeinctl monitor: drop and policy-verdict events from the pinned ring buffer, live, with names. */
import { RawMap, RingBuffer } from "../../loader/index.js";
import { openOptional } from "../optional.js";
import { ConfigFlag, ConfigMap } from "../../maps/config.js";
import { EVENTS_MAP, decodeEvent, type DatapathEvent } from "../../maps/events.js";
import { pinPath } from "../../maps/pins.js";
import { AgentClient, agentUrl, type AgentPod, type AgentRule } from "../agent-client.js";
import { CtlError, type Command, type CtlContext } from "../cli.js";
import {
  reasonText,
  configFlagNames,
  hasPorts,
  monotonicNowNs,
  protocolName,
  wallClockOf,
} from "../describe.js";
import { skeinLinkNames } from "../links.js";
import { acquireMonitorLock } from "../monitor-lock.js";
import { Names, ruleText, type IdentityName } from "../names.js";

/** How often the ring buffer is polled. */
const POLL_MS = 50;
/** How often unknown interface indexes may trigger a new look at the links. */
const LINKS_REFRESH_MS = 2000;

/** `--type`: which events to print. */
export type MonitorType = "drop" | "verdict" | "all";

/** One side of a flow as the monitor prints it. */
export interface MonitorPeer {
  ip: string;
  /** null for protocols without ports (ICMP). */
  port: number | null;
  identity: number;
  /** `host`, `demo:app=web`, `cidr 10.0.0.0/8`; null when the agent is not answering. */
  identityName: string | null;
  pod: { namespace: string; name: string; node: string } | null;
}

/** One line of `monitor -o json`. */
export interface MonitorRecord {
  time: string;
  tsNs: bigint;
  type: DatapathEvent["type"];
  /** For drops, why; for verdicts, what happened to the allowed packet (fwd_deliver, fwd_stack). */
  reason: string;
  direction: "ingress" | "egress";
  protocol: string;
  ifindex: number;
  ifname: string | null;
  src: MonitorPeer;
  dst: MonitorPeer;
  /** The allowing rule (verdicts); null for drops and for rules the agent cannot name. */
  rule: ({ id: number } & Partial<AgentRule>) | null;
  /** The verdict in one sentence. */
  summary: string;
}

function peerName(p: MonitorPeer): string {
  if (p.pod !== null) return `${p.pod.namespace}/${p.pod.name}`;
  return p.identityName === null ? `identity ${p.identity}` : `${p.identityName} (identity ${p.identity})`;
}

function peerText(p: MonitorPeer): string {
  const addr = p.port === null ? p.ip : `${p.ip}:${p.port}`;
  if (p.pod !== null) return `${addr} (${p.pod.namespace}/${p.pod.name}, identity ${p.identity})`;
  return `${addr} (${p.identityName === null ? "" : `${p.identityName}, `}identity ${p.identity})`;
}

function service(protocol: string, dst: MonitorPeer): string {
  return dst.port === null ? protocol : `${protocol}/${dst.port}`;
}

/** The sentence for an event: the allowing rule, "no rule allows ...", or the drop reason. */
export function summarize(
  ev: Pick<MonitorRecord, "type" | "reason" | "direction" | "protocol" | "src" | "dst" | "rule">,
): string {
  if (ev.type === "verdict") {
    if (ev.rule === null) return `allowed (${ev.direction} rule unknown)`;
    if (ev.rule.policy === undefined) return `allowed by rule id ${ev.rule.id} (the agent does not name it)`;
    return `allowed by ${ruleText(ev.rule as AgentRule)} (rule id ${ev.rule.id})`;
  }
  if (ev.reason === "drop_policy") {
    return ev.direction === "ingress"
      ? `no rule allows ingress to ${peerName(ev.dst)} from ${peerName(ev.src)} on ${service(ev.protocol, ev.dst)}`
      : `no rule allows egress from ${peerName(ev.src)} to ${peerName(ev.dst)} on ${service(ev.protocol, ev.dst)}`;
  }
  return `${ev.reason}: ${reasonText(ev.reason) ?? "unknown reason"}`;
}

/** Names the numbers of `ev`. */
export async function describeEvent(
  ev: DatapathEvent,
  names: Names,
  ifnames: ReadonlyMap<number, string>,
): Promise<MonitorRecord> {
  const ports = hasPorts(ev.proto);
  const peer = async (ip: string, port: number, identity: number): Promise<MonitorPeer> => {
    const [pod, id]: [AgentPod | undefined, IdentityName] = await Promise.all([
      names.pod(ip),
      names.identity(identity),
    ]);
    return {
      ip,
      port: ports ? port : null,
      identity,
      identityName: id.text ?? null,
      pod: pod === undefined ? null : { namespace: pod.namespace, name: pod.name, node: pod.node },
    };
  };
  const [src, dst] = await Promise.all([
    peer(ev.saddr, ev.sport, ev.srcIdentity),
    peer(ev.daddr, ev.dport, ev.dstIdentity),
  ]);
  let rule: MonitorRecord["rule"] = null;
  if (ev.ruleId !== 0) {
    const r = await names.rule(ev.ruleId);
    rule = r === undefined ? { id: ev.ruleId } : { id: ev.ruleId, ...r };
  }
  const base = {
    time: wallClockOf(ev.tsNs).toISOString(),
    tsNs: ev.tsNs,
    type: ev.type,
    reason: ev.reason,
    direction: ev.direction,
    protocol: protocolName(ev.proto),
    ifindex: ev.ifindex,
    ifname: ifnames.get(ev.ifindex) ?? null,
    src,
    dst,
    rule,
  };
  return { ...base, summary: summarize(base) };
}

/** One human line for `rec`. */
export function formatLine(rec: MonitorRecord): string {
  const time = rec.time.slice(11, 23);
  const label = rec.type === "drop" ? "DROP" : rec.type === "verdict" ? "ALLOW" : rec.type.toUpperCase();
  const via = rec.ifname ?? `ifindex ${rec.ifindex}`;
  const what =
    rec.type === "drop"
      ? `${rec.reason}: ${rec.summary.startsWith(rec.reason) ? (reasonText(rec.reason) ?? "") : rec.summary}`
      : rec.summary;
  return `${time} ${label.padEnd(5)} ${rec.direction.padEnd(7)} ${rec.protocol.padEnd(4)} ${peerText(rec.src)} -> ${peerText(rec.dst)} on ${via}: ${what}`;
}

function positiveNumber(
  value: CtlContext["values"][string],
  flag: string,
  integer: boolean,
): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "string" ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new CtlError(
      `--${flag} must be a positive ${integer ? "integer" : "number"}, not ${typeof value === "string" ? value : JSON.stringify(value)}`,
    );
  return n;
}

/**
 * `skeinctl monitor`: consumes the pinned ring buffer every POLL_MS until --count, --duration,
 * SIGINT/SIGTERM or the caller's AbortSignal. Holds the node's monitor lock while it runs.
 */
export const monitor: Command = {
  name: "monitor",
  summary:
    "follow drops and policy verdicts live, with pod names, identities and the rule that allowed a flow",
  usage:
    "monitor [--type drop|verdict|all] [--count N] [--duration S] [--backlog] [--force] [--agent URL] [--bpffs-root DIR] [-o json]\n" +
    "  -o json prints one JSON object per line. Stops on Ctrl-C, after N events, or after S seconds (exit 1 if fewer than N came).\n" +
    "  One monitor per node: the ring buffer has a single reader position, so a second monitor is refused (--force reads anyway; both then miss events).\n" +
    "  Verdicts for allowed flows exist only when the agent runs with --verdict-events. --backlog also prints events queued before the monitor started.",
  options: {
    type: { type: "string" },
    count: { type: "string" },
    duration: { type: "string" },
    backlog: { type: "boolean" },
    force: { type: "boolean" },
  },
  async run(ctx) {
    const typeValue = ctx.values.type ?? "all";
    if (typeValue !== "drop" && typeValue !== "verdict" && typeValue !== "all")
      throw new CtlError(`--type must be drop, verdict or all, not ${String(typeValue)}`);
    const type: MonitorType = typeValue;
    const count = positiveNumber(ctx.values.count, "count", true);
    const durationS = positiveNumber(ctx.values.duration, "duration", false);
    const root = ctx.bpffsRoot;
    const note = (text: string) => {
      ctx.io.stderr(`skeinctl monitor: ${text}\n`);
    };

    using events = RawMap.openPinned(pinPath(root, EVENTS_MAP));
    if (type !== "drop") {
      using cfg = openOptional(() => ConfigMap.openPinned(root));
      const flags = cfg?.read().flags;
      if (flags !== undefined && (flags & ConfigFlag.verdictEvents) === 0)
        note(
          `verdict events are off on this node (skn_config flags: ${configFlagNames(flags).join(",") || "none"}): only drops will show. ` +
            `Start skein-agent with --verdict-events (verdictEvents: true in its config) to see allowed flows.`,
        );
    }
    const lock = ctx.values.force === true ? undefined : acquireMonitorLock(root, note);
    if (ctx.values.force === true)
      note(
        "--force: not checking for other monitors; if one runs, each of you misses the events the other reads",
      );
    try {
      const names = new Names(new AgentClient(agentUrl(ctx)), {
        onAgentState: (up, err) => {
          note(
            up
              ? "the agent answers again: naming pods and rules"
              : `${err?.message ?? "the agent does not answer"}; printing addresses and identity numbers until it answers`,
          );
        },
      });
      const startNs = monotonicNowNs();
      await names.load();
      const ifnames = await skeinLinkNames(root);
      let linksAt = Date.now();

      const queue: DatapathEvent[] = [];
      const reader = new RingBuffer(events, (record) => {
        queue.push(decodeEvent(record));
      });
      let printed = 0;
      let skipped = 0;
      const tally = { drop: 0, verdict: 0 };
      let stopReason = undefined as "count" | "duration" | "signal" | "error" | undefined;
      let failure: unknown;
      try {
        await new Promise<void>((resolve) => {
          let busy = false;
          let durationTimer: NodeJS.Timeout | undefined;
          const stopped = () => stopReason !== undefined;
          const tick = async () => {
            if (busy || stopped()) return;
            busy = true;
            try {
              reader.consume();
              for (let ev = queue.shift(); ev !== undefined && !stopped(); ev = queue.shift()) {
                if (ctx.values.backlog !== true && ev.tsNs < startNs) {
                  skipped++;
                  continue;
                }
                if (type !== "all" && ev.type !== type) continue;
                if (!ifnames.has(ev.ifindex) && Date.now() - linksAt > LINKS_REFRESH_MS) {
                  // A link made since start (a new pod's veth): learn the names again, now and then.
                  linksAt = Date.now();
                  for (const [k, v] of await skeinLinkNames(root)) ifnames.set(k, v);
                }
                const rec = await describeEvent(ev, names, ifnames);
                ctx.io.stdout(
                  ctx.output === "json"
                    ? JSON.stringify(rec, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) +
                        "\n"
                    : formatLine(rec) + "\n",
                );
                printed++;
                if (ev.type === "drop" || ev.type === "verdict") tally[ev.type]++;
                if (count !== undefined && printed >= count) stop("count");
              }
            } catch (err) {
              failure = err;
              stop("error");
            } finally {
              busy = false;
            }
          };
          const timer = setInterval(() => void tick(), POLL_MS);
          const onSignal = () => {
            stop("signal");
          };
          const stop = (why: NonNullable<typeof stopReason>) => {
            if (stopped()) return;
            stopReason = why;
            clearInterval(timer);
            clearTimeout(durationTimer);
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
            ctx.io.signal?.removeEventListener("abort", onSignal);
            resolve();
          };
          if (durationS !== undefined)
            durationTimer = setTimeout(() => {
              stop("duration");
            }, durationS * 1000);
          process.once("SIGINT", onSignal);
          process.once("SIGTERM", onSignal);
          ctx.io.signal?.addEventListener("abort", onSignal, { once: true });
          const what = type === "all" ? "drops and verdicts" : `${type}s only`;
          note(
            `monitoring ${EVENTS_MAP} under ${root} (${what}${count === undefined ? "" : `, until ${count} event(s)`}${durationS === undefined ? "" : `, for ${durationS} s`}); Ctrl-C stops`,
          );
          if (ctx.io.signal?.aborted === true) stop("signal");
          else void tick();
        });
      } finally {
        reader.close();
      }
      if (stopReason === "error") throw failure instanceof Error ? failure : new Error(String(failure));
      note(
        `${printed} event(s): ${tally.drop} drop(s), ${tally.verdict} verdict(s)${skipped > 0 ? `; ${skipped} queued before start not shown (--backlog shows them)` : ""}`,
      );
      if (stopReason === "duration" && count !== undefined && printed < count) {
        note(`only ${printed} of ${count} event(s) within ${durationS} s`);
        return 1;
      }
      return 0;
    } finally {
      lock?.release();
    }
  },
};
