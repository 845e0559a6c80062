/**
 * Reading BIRD through its control socket: `birdc -s SOCK show protocols all` and `show route`
 * parsed into plain objects (the parsers are pure; birdc runs as a child process).
 */
import { execFile } from "node:child_process";

/** One protocol of `show protocols all`. */
export interface BirdProtocol {
  name: string;
  /** BGP, Kernel, Static, Device, Direct. */
  proto: string;
  /** up, start, down, flush. */
  state: string;
  /** The state's start as BIRD prints it (`timeformat protocol iso long`: local time). */
  since: string;
  /** The summary column: the BGP state (Established, Active, Connect...) and its last error. */
  info: string;
  description?: string;
  /** BGP: `BGP state:` line. */
  bgpState?: string;
  neighborAddress?: string;
  neighborAs?: number;
  imported?: number;
  exported?: number;
  /** `Last error:` of a BGP protocol. */
  lastError?: string;
}

/** Parses `birdc show protocols all` output (with or without the `BIRD x ready.` banner). */
export function parseProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  let cur: BirdProtocol | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.startsWith("BIRD ") || line.startsWith("Name ")) continue;
    if (!/^\s/.test(line)) {
      // name proto table state since(2 words with iso long) info...
      const m =
        /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)\s*(.*)$/.exec(line);
      if (m === null) continue;
      cur = {
        name: m[1] ?? "",
        proto: m[2] ?? "",
        state: m[4] ?? "",
        since: m[5] ?? "",
        info: (m[6] ?? "").trim(),
      };
      out.push(cur);
      continue;
    }
    if (cur === undefined) continue;
    const kv = /^\s+([A-Za-z][A-Za-z ]*?):\s*(.*)$/.exec(line);
    if (kv === null) continue;
    const k = kv[1] ?? "";
    const v = (kv[2] ?? "").trim();
    switch (k) {
      case "Description":
        cur.description = v;
        break;
      case "BGP state":
        cur.bgpState = v;
        break;
      case "Neighbor address":
        cur.neighborAddress = v.split("%")[0] ?? v;
        break;
      case "Neighbor AS":
        cur.neighborAs = Number(v);
        break;
      case "Last error":
        cur.lastError = v;
        break;
      case "Routes": {
        const imp = /(\d+) imported/.exec(v);
        const exp = /(\d+) exported/.exec(v);
        // The first channel's counts (one ipv4 channel per protocol here).
        if (cur.imported === undefined && imp !== null) cur.imported = Number(imp[1]);
        if (cur.exported === undefined && exp !== null) cur.exported = Number(exp[1]);
        break;
      }
    }
  }
  return out;
}

/** One route of `show route`: prefix and the protocol that gave the best (or only) path. */
export interface BirdRoute {
  prefix: string;
  protocol: string;
  /** `from A.B.C.D`: the BGP neighbour it was learned from, when BIRD prints it. */
  from?: string;
  via?: string;
  primary: boolean;
}

/** Parses `birdc show route [all]` output: each path line and its `via` line. */
export function parseRoutes(text: string): BirdRoute[] {
  const out: BirdRoute[] = [];
  let prefix = "";
  let last: BirdRoute | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const head = /^(\d+\.\d+\.\d+\.\d+\/\d+)?\s+\S+\s+\[(\S+)\s+[^\]]*?(?:from (\S+))?\]\s*(\*)?/.exec(line);
    if (head !== null && line.includes("[")) {
      if (head[1] !== undefined) prefix = head[1];
      if (prefix === "") continue;
      last = {
        prefix,
        protocol: head[2] ?? "",
        primary: head[4] === "*",
        ...(head[3] === undefined ? {} : { from: head[3] }),
      };
      out.push(last);
      continue;
    }
    const via = /^\s+via (\S+)/.exec(line);
    if (via !== null && last !== undefined) last.via = via[1] ?? "";
  }
  return out;
}

/** Runs `birdc -s socket ARGS...`; resolves with its output, rejects with it on a non-zero exit. */
export function birdc(
  socket: string,
  args: readonly string[],
  birdcPath = "birdc",
  timeoutMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(birdcPath, ["-s", socket, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(
          new Error(`birdc ${args.join(" ")}: ${(stderr || stdout || err.message).trim()}`, { cause: err }),
        );
        return;
      }
      resolve(stdout);
    });
  });
}

/** BIRD's `iso long` time (local time, as the agent's process sees it) as a Date, or null. */
export function parseBirdTime(text: string): Date | null {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?$/.exec(text);
  if (m === null) return null;
  const d = new Date(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
    m[7] === undefined ? 0 : Math.round(Number(m[7]) * 1000),
  );
  return Number.isNaN(d.getTime()) ? null : d;
}
