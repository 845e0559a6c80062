/**
 * What every benchmark shares: root, `--runs N --seconds S` (validated), the compiled
 * request/response tool, a lab, the kernel-only baseline topology, the rr servers, and the teardown
 * of all of it, also when the benchmark fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Lab } from "../lab/lab.js";
import { buildKernelBaseline, type KernelBaseline } from "./kernel-baseline.js";
import { buildRr, type Server } from "./measure.js";

export interface Bench {
  runs: number;
  seconds: number;
  /** The request/response executable. */
  rr: string;
  lab: Lab;
  /** Servers started here are stopped at the end. */
  servers: Server[];
  /** Builds the kernel-only baseline (removed at the end); `prefix` keeps its names apart. */
  kernelBaseline: (prefix: string) => Promise<KernelBaseline>;
}

export function say(line = ""): void {
  process.stdout.write(line + "\n");
}

function positiveInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag}: expected a positive integer, got ${value}`);
  return n;
}

/**
 * Runs `body` as the command `name` (for messages), exiting non-zero with the error when it fails.
 * `extraOptions` are the benchmark's own flags (it parses them again itself); others are refused.
 */
export function runBench(
  name: string,
  defaultSeconds: number,
  body: (b: Bench) => Promise<void>,
  extraOptions: ParseArgsConfig["options"] = {},
): void {
  const main = async () => {
    const { values } = parseArgs({
      options: { ...extraOptions, runs: { type: "string" }, seconds: { type: "string" } },
    });
    const runs = positiveInteger("runs", values.runs, 3);
    const seconds = positiveInteger("seconds", values.seconds, defaultSeconds);
    if (process.getuid?.() !== 0) throw new Error("the benchmark needs root");
    const tmp = mkdtempSync(join(tmpdir(), `skein-${name.replace(/\W+/g, "-")}-`));
    const baselines: KernelBaseline[] = [];
    const servers: Server[] = [];
    let lab: Lab | undefined;
    try {
      const rr = buildRr(tmp);
      const created = await Lab.create({});
      lab = created;
      await body({
        runs,
        seconds,
        rr,
        lab: created,
        servers,
        kernelBaseline: async (prefix) => {
          const kb = await buildKernelBaseline(`${prefix}${created.id}`);
          baselines.push(kb);
          return kb;
        },
      });
    } finally {
      for (const s of servers) s.stop();
      for (const kb of baselines) await kb.teardown();
      const problems = lab === undefined ? [] : await lab.teardown();
      if (problems.length > 0) say(`teardown problems: ${problems.join("; ")}`);
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
