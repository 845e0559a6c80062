/**
 * Network configuration through iproute2 (`ip`, `ip -batch`), the netlink client every node has.
 * Commands run in the caller's network namespace, or in another one given by path through
 * `nsenter --net=PATH` (`ip netns exec` would remount /sys and hide bpffs).
 */
import { execFile, spawn } from "node:child_process";

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
  return opts.netns === undefined ? ["ip", [...args]] : ["nsenter", [`--net=${opts.netns}`, "ip", ...args]];
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
export function ipBatch(commands: readonly string[], opts: NetnsOption & { force?: boolean } = {}): Promise<void> {
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
      else reject(new IpCommandError(`${file} ${list.join(" ")} <<${JSON.stringify(commands)}`, code, stderr));
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
    if (err instanceof IpCommandError && /does not exist|Cannot find device/.test(err.stderr)) return undefined;
    throw err;
  }
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
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
