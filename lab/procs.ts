/** Background processes of the lab: started detached, logged to files, stopped by PID only. */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";

export interface ProcRecord {
  pid: number;
  role: string;
  /** A string its command line contains, checked before signalling (the PID may have been reused). */
  marker: string;
  log: string;
}

/** Starts `argv` detached (optionally inside network namespace `netns`), output appended to `log`. */
export function startDetached(
  argv: string[],
  opts: { netns?: string; log: string; role: string; marker: string; env?: NodeJS.ProcessEnv },
): ProcRecord {
  const fd = openSync(opts.log, "a");
  try {
    const [first, ...rest] = argv;
    if (first === undefined) throw new Error(`start ${opts.role}: empty command`);
    const [file, args] =
      opts.netns === undefined ? [first, rest] : ["nsenter", [`--net=${opts.netns}`, ...argv]];
    const child = spawn(file, args, {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: opts.env ?? process.env,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${opts.role}`);
    return { pid: child.pid, role: opts.role, marker: opts.marker, log: opts.log };
  } finally {
    closeSync(fd);
  }
}

/**
 * True when `rec`'s process is alive and still ours: our own child (between fork and exec its
 * command line is still ours, without the marker), or a process whose command line holds the
 * marker (a record from an earlier run; the PID may have been reused meanwhile).
 */
export function isRunning(rec: ProcRecord): boolean {
  try {
    const stat = readFileSync(`/proc/${rec.pid}/stat`, "utf8");
    // Fields after the command name: state, ppid, ...
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state === "Z" || state === "X") return false;
    if (Number(ppid) === process.pid) return true;
    return readFileSync(`/proc/${rec.pid}/cmdline`, "utf8").includes(rec.marker);
  } catch {
    return false;
  }
}

/** Signals the process if it is still ours. Returns whether a signal was sent. */
export function signal(rec: ProcRecord, sig: NodeJS.Signals): boolean {
  if (!isRunning(rec)) return false;
  try {
    process.kill(rec.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves when the process is gone. */
export async function stop(rec: ProcRecord, graceMs = 3000): Promise<void> {
  if (!signal(rec, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (isRunning(rec) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (signal(rec, "SIGKILL")) while (isRunning(rec)) await new Promise((r) => setTimeout(r, 20));
}

/** The last `lines` lines of log file `path` ("" when there is none), for error messages. */
export function tailLog(path: string | undefined, lines = 15): string {
  if (path === undefined || !existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}
