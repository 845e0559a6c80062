/**
 * iproute2 through child processes: one `ip -batch -` per network namespace and step, entered
 * with `nsenter --net=PATH` for the pod (not `ip netns exec`, which remounts /sys and hides bpffs;
 * `ip -n` only takes names under /run/netns). Binaries are resolved to absolute paths, because
 * runtimes call plugins with whatever PATH they have.
 */
import { spawnSync } from "node:child_process";
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
    `${name} not found in PATH or ${FALLBACK_DIRS.join(":")} (skein-cni needs iproute2 and util-linux)`,
  );
}

/** Every process spawned so far, with its duration: `SKEIN_CNI_TRACE=1` prints them on stderr. */
export const spawnLog: { argv: string[]; ms: number }[] = [];

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
 * Runs `ip [-j] -batch -` with `lines` (already quoted with batchArg), inside `netns` when given.
 * Never throws for a failing command: the outcome says which line failed. Throws Error when the
 * process cannot be started.
 */
export function ipBatch(
  lines: readonly string[],
  options: { netns?: string; json?: boolean } = {},
): BatchOutcome {
  const ip = findExecutable("ip");
  const ipArgs = [...(options.json === true ? ["-j"] : []), "-batch", "-"];
  const [file, argv] =
    options.netns === undefined
      ? [ip, ipArgs]
      : [findExecutable("nsenter"), [`--net=${options.netns}`, "--", ip, ...ipArgs]];
  const started = performance.now();
  const r = spawnSync(file, argv, {
    input: lines.join("\n") + "\n",
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", LC_ALL: "C" },
  });
  const ms = performance.now() - started;
  spawnLog.push({ argv: [file, ...argv], ms });
  if (process.env.SKEIN_CNI_TRACE === "1")
    process.stderr.write(`skein-cni: spawned ${[file, ...argv].join(" ")} (${ms.toFixed(1)} ms)\n`);
  if (r.error !== undefined) throw new Error(`cannot run ${file}: ${r.error.message}`, { cause: r.error });
  const stderr = r.stderr;
  const m = /Command failed -:(\d+)/.exec(stderr);
  const outcome: BatchOutcome = { ok: r.status === 0, stdout: r.stdout, stderr: stderr.trim() };
  if (m?.[1] !== undefined) outcome.failedLine = Number(m[1]);
  return outcome;
}

/** The first meaningful line of iproute2's complaint ("RTNETLINK answers: File exists"). */
export function ipComplaint(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("Command failed"));
  return lines.join("; ") || "unknown error";
}
