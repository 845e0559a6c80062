/**
 * Network configuration through iproute2 (`ip`, `ip -batch`), the netlink client every node has.
 * Commands run in the caller's network namespace, or in another one given by path through
 * `nsenter --net=PATH` (`ip netns exec` would remount /sys and hide bpffs; `ip -n` only takes names
 * under /run/netns). Binaries are resolved to absolute paths, because CNI runtimes call plugins
 * with whatever PATH they have. Two flavours: async for the agent, synchronous `ipBatchSync` for the
 * short-lived plugin, which waits for each step anyway.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const FALLBACK_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const resolved = new Map<string, string>();

/** Absolute path of `name` from PATH or the usual system directories. Throws Error when absent. */
export function findExecutable(name: string): string {
  const cached = resolved.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/")), ...FALLBACK_DIRS];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      resolved.set(name, path);
      return path;
    } catch {
      // next
    }
  }
  throw new Error(
    `${name} not found in PATH or ${FALLBACK_DIRS.join(":")} (Skein needs iproute2 and util-linux)`,
  );
}

/** How an `ip -batch` run ended. */
export interface BatchOutcome {
  ok: boolean;
  /** 1-based line of the batch that failed (iproute2 stops there), when known. */
  failedLine?: number;
  stdout: string;
  stderr: string;
}

/** Quotes one argument for iproute2's batch parser. Throws RangeError when it cannot be quoted. */
export function batchArg(arg: string): string {
  if (/^[A-Za-z0-9_.:/@+=,%-]+$/.test(arg)) return arg;
  if (/["\\\n]/.test(arg)) throw new RangeError(`cannot pass ${JSON.stringify(arg)} to ip -batch`);
  return `"${arg}"`;
}

/**
 * Runs `ip [-j] -batch -` with `lines` (already quoted with batchArg), inside `netns` when given,
 * and waits for it. Never throws for a failing command: the outcome says which line failed.
 * Throws Error when the process cannot be started.
 */
export function ipBatchSync(
  lines: readonly string[],
  options: { netns?: string; json?: boolean } = {},
): BatchOutcome {
  const [file, list] = argv([...(options.json === true ? ["-j"] : []), "-batch", "-"], options);
  const started = performance.now();
  const r = spawnSync(file, list, {
    input: lines.join("\n") + "\n",
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", LC_ALL: "C" },
  });
  const ms = performance.now() - started;
  if (process.env.SKEIN_CNI_TRACE === "1")
    process.stderr.write(`skein-cni: spawned ${[file, ...list].join(" ")} (${ms.toFixed(1)} ms)\n`);
  if (r.error !== undefined) throw new Error(`cannot run ${file}: ${r.error.message}`, { cause: r.error });
  const m = /Command failed -:(\d+)/.exec(r.stderr);
  const outcome: BatchOutcome = { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr.trim() };
  if (m?.[1] !== undefined) outcome.failedLine = Number(m[1]);
  return outcome;
}

/** The first meaningful line of iproute2's complaint ("RTNETLINK answers: File exists"). */
export function ipComplaint(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("Command failed"));
  return lines.join("; ") || "unknown error";
}

/** A failed iproute2 (or nsenter) command, with what it printed. */
export class IpCommandError extends Error {
  override readonly name: string = "IpCommandError";
  readonly command: string;
  readonly stderr: string;
  readonly exitCode: number | null;

  constructor(command: string, exitCode: number | null, stderr: string) {
    super(`${command}: ${stderr.trim() || `exit code ${exitCode}`}`);
    this.command = command;
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

export interface NetnsOption {
  /** Path of the network namespace to act in (e.g. /var/run/netns/x); the caller's when absent. */
  netns?: string;
}

function argv(args: readonly string[], opts: NetnsOption): [string, string[]] {
  const ipPath = findExecutable("ip");
  return opts.netns === undefined
    ? [ipPath, [...args]]
    : [findExecutable("nsenter"), [`--net=${opts.netns}`, "--", ipPath, ...args]];
}

/** Runs `ip ARGS` and returns stdout. Throws IpCommandError. */
export function ip(args: readonly string[], opts: NetnsOption = {}): Promise<string> {
  const [file, list] = argv(args, opts);
  return new Promise((resolve, reject) => {
    execFile(file, list, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) {
        const code = typeof err.code === "number" ? err.code : null;
        reject(new IpCommandError(`${file} ${list.join(" ")}`, code, stderr || err.message));
      } else resolve(stdout);
    });
  });
}

/** Runs `ip -j ARGS` and parses the JSON. Throws IpCommandError. */
export async function ipJson<T>(args: readonly string[], opts: NetnsOption = {}): Promise<T> {
  const out = await ip(["-j", ...args], opts);
  return (out.trim() === "" ? [] : JSON.parse(out)) as T;
}

/**
 * Runs several commands in one `ip -batch -` process (one fork instead of many). Stops at the first
 * failing line unless `force`. Throws IpCommandError naming the batch.
 */
export function ipBatch(
  commands: readonly string[],
  opts: NetnsOption & { force?: boolean } = {},
): Promise<void> {
  if (commands.length === 0) return Promise.resolve();
  const [file, list] = argv([...(opts.force === true ? ["-force"] : []), "-batch", "-"], opts);
  return new Promise((resolve, reject) => {
    const child = spawn(file, list, { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err) => {
      reject(new IpCommandError(`${file} ${list.join(" ")}`, null, err.message));
    });
    child.on("close", (code) => {
      if (code === 0) resolve();
      else
        reject(new IpCommandError(`${file} ${list.join(" ")} <<${JSON.stringify(commands)}`, code, stderr));
    });
    child.stdin.end(commands.join("\n") + "\n");
  });
}

/** One link as `ip -j link show` reports it (the fields Skein reads). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  operstate?: string;
  flags?: string[];
  link_type?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** Every link in the namespace, with details. */
export function listLinks(opts: NetnsOption = {}): Promise<LinkInfo[]> {
  return ipJson<LinkInfo[]>(["-d", "link", "show"], opts);
}

/** The link named `name`, or undefined when there is none. */
export async function findLink(name: string, opts: NetnsOption = {}): Promise<LinkInfo | undefined> {
  try {
    const links = await ipJson<LinkInfo[]>(["-d", "link", "show", "dev", name], opts);
    return links[0];
  } catch (err) {
    if (err instanceof IpCommandError && /does not exist|Cannot find device/.test(err.stderr))
      return undefined;
    throw err;
  }
}

export interface RouteInfo {
  dst: string;
  /** Present for routes other than unicast: "blackhole", "unreachable", ... */
  type?: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
}

export interface RuleInfo {
  priority: number;
  src?: string;
  table?: string;
  [key: string]: unknown;
}

/** IPv4 policy routing rules (`ip -4 rule show`). */
export function listRules(opts: NetnsOption = {}): Promise<RuleInfo[]> {
  return ipJson<RuleInfo[]>(["-4", "rule", "show"], opts);
}

/** IPv4 routes of the main table. */
export function listRoutes(opts: NetnsOption = {}): Promise<RouteInfo[]> {
  return ipJson<RouteInfo[]>(["-4", "route", "show"], opts);
}

export interface AddrInfo {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** IPv4 addresses of every link. */
export function listAddresses(opts: NetnsOption = {}): Promise<AddrInfo[]> {
  return ipJson<AddrInfo[]>(["-4", "addr", "show"], opts);
}
