/**
 * npm run bench:cni [-- --runs N --parallel P --rounds R] [--baseline PATH]
 *
 * Pod start-up cost as a container runtime sees it (process start to exit, env + stdin): ADD,
 * CHECK and DEL latency over N sequential pod lifecycles, and the wall time of P ADDs started at
 * once, for skein-cni in its installed form (against a real datapath pinned in a private bpffs
 * root) and for the reference plugins `ptp` + `host-local` (Debian's containernetworking-plugins)
 * in the same run, interleaved so both see the same machine. Both are started the same way: forked
 * straight from this process while its thread sits in the node's network namespace (no nsenter,
 * no shell). Prints p50/p99 side by side with ratios, the CPU time each invocation used (user +
 * system, from getrusage: what a busy machine distorts least), and the issue's targets.
 * `--trace` runs skein-cni's sequential ADDs and DELs with SKEIN_CNI_TRACE=1 and prints, per
 * step, the median time since the process started: how much of a verb is Node's start-up.
 * `--baseline PATH` adds another skein-cni build (its installed `skein-cni`, e.g. a release's
 * dist/cni-install/skein-cni) to the same run, for before/after comparisons.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../maps/datapath/pinned.js";
import { Netns, childrenCpuMs, inNetns } from "../loader/index.js";
import { uniqueName } from "../test/helpers/names.js";
import {
  SYSTEM_PATH,
  cniEnv,
  createNetns,
  deleteNetns,
  installToTemp,
  netnsPath,
} from "../test/cni/plugin-harness.js";
import { say } from "./harness.js";

const REFERENCE_DIR = "/usr/lib/cni";

interface Plugin {
  name: string;
  /** The executable the runtime runs. */
  file: string;
  config: (podNetns: string) => Record<string, unknown>;
  /** Where its IPAM state lives (removed at the end). */
  dataDir: string;
}

interface Timed {
  ms: number;
  /** CPU time (user + system) of the plugin and its children; sequential runs only. */
  cpuMs?: number;
  status: number;
  stdout: string;
  stderr: string;
}

function positiveInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag}: expected a positive integer, got ${value}`);
  return n;
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)] ?? Number.NaN;
}

function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

/** Runs the plugin to completion from inside `node`, timing process start to exit. */
function invokeSync(node: Netns, plugin: Plugin, env: Record<string, string>, config: unknown): Timed {
  return inNetns(node, () => {
    const cpuBefore = childrenCpuMs();
    const started = performance.now();
    const r = spawnSync(plugin.file, [], {
      input: JSON.stringify(config),
      encoding: "utf8",
      env: { PATH: SYSTEM_PATH, ...env, CNI_PATH: REFERENCE_DIR },
      timeout: 60000,
    });
    const ms = performance.now() - started;
    const cpuMs = childrenCpuMs() - cpuBefore;
    if (r.error !== undefined) throw r.error;
    return { ms, cpuMs, status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  });
}

/** The same, started now and resolved at exit: for concurrent invocations. */
function invokeAsync(
  node: Netns,
  plugin: Plugin,
  env: Record<string, string>,
  config: unknown,
): Promise<Timed> {
  // fork happens synchronously on this thread, so the child starts in the node's namespace.
  return inNetns(node, () => {
    const started = performance.now();
    const child = spawn(plugin.file, [], {
      env: { PATH: SYSTEM_PATH, ...env, CNI_PATH: REFERENCE_DIR },
      stdio: ["pipe", "pipe", "pipe"],
    });
    return new Promise<Timed>((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => {
        resolve({ ms: performance.now() - started, status: code ?? -1, stdout, stderr });
      });
      child.stdin.end(JSON.stringify(config));
    });
  });
}

function mustSucceed(t: Timed, what: string): Record<string, unknown> | undefined {
  if (t.status !== 0) throw new Error(`${what} failed (${t.status}): ${t.stdout.trim()} ${t.stderr.trim()}`);
  return t.stdout.trim() === "" ? undefined : (JSON.parse(t.stdout) as Record<string, unknown>);
}

/** `list` rotated by `n`, so each plugin takes every position in turn. */
function rotated<T>(list: readonly T[], n: number): T[] {
  const k = n % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

interface Samples {
  /** CPU time per invocation, by verb. */
  cpu: { add: number[]; check: number[]; del: number[] };
  add: number[];
  check: number[];
  del: number[];
  parallel: number[];
  version: number[];
}

function emptySamples(): Samples {
  return { cpu: { add: [], check: [], del: [] }, add: [], check: [], del: [], parallel: [], version: [] };
}

const main = async (): Promise<void> => {
  const { values } = parseArgs({
    options: {
      runs: { type: "string" },
      parallel: { type: "string" },
      rounds: { type: "string" },
      baseline: { type: "string" },
      trace: { type: "boolean" },
    },
  });
  const traceOn = values.trace === true;
  /** Step label → ms since process start, one sample per traced invocation, by verb. */
  const traces = { ADD: new Map<string, number[]>(), DEL: new Map<string, number[]>() };
  const noteTrace = (verb: "ADD" | "DEL", stderr: string): void => {
    for (const m of stderr.matchAll(
      /^skein-cni: ([\d.]+) ms (.*?)(?: \(node bootstrap took ([\d.]+) ms\))?$/gm,
    )) {
      const label = (m[2] ?? "").replace(/^(ADD|DEL) /, "").replace(/skn[0-9a-f]+/g, "<veth>");
      const at = traces[verb].get(label) ?? [];
      at.push(Number(m[1]));
      traces[verb].set(label, at);
      if (m[3] !== undefined) {
        const boot = traces[verb].get("node bootstrap complete") ?? [];
        boot.push(Number(m[3]));
        traces[verb].set("node bootstrap complete", boot);
      }
    }
  };
  const runs = positiveInteger("runs", values.runs, 100);
  const parallel = positiveInteger("parallel", values.parallel, 32);
  const rounds = positiveInteger("rounds", values.rounds, 3);
  if (process.getuid?.() !== 0) throw new Error("the benchmark needs root");
  for (const p of ["ptp", "host-local"])
    if (!existsSync(join(REFERENCE_DIR, p)))
      throw new Error(`${REFERENCE_DIR}/${p} is missing (apt-get install containernetworking-plugins)`);

  const cleanups: (() => void)[] = [];
  const pods = new Set<string>();
  try {
    const bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnibench-")}`;
    loadPinnedDatapath(bpffsRoot);
    cleanups.push(() => {
      unloadPinnedDatapath(bpffsRoot);
    });
    const nodeName = createNetns("skncbn");
    cleanups.push(() => {
      deleteNetns(nodeName);
    });
    const node = Netns.open(netnsPath(nodeName));
    cleanups.push(() => {
      node.close();
    });
    const installed = installToTemp();
    cleanups.push(() => {
      rmSync(installed.root, { recursive: true, force: true });
    });
    const tmp = mkdtempSync(join(tmpdir(), "skn-cnibench-"));
    cleanups.push(() => {
      rmSync(tmp, { recursive: true, force: true });
    });

    const skein: Plugin = {
      name: "skein-cni",
      file: join(installed.binDir, "skein-cni"),
      dataDir: join(tmp, "skein"),
      config: () => ({
        cniVersion: "1.0.0",
        name: "bench",
        type: "skein-cni",
        podCIDR: "10.125.0.0/22",
        bpffsRoot,
        dataDir: join(tmp, "skein"),
        mtu: 1400,
      }),
    };
    const reference: Plugin = {
      name: "ptp + host-local",
      file: join(REFERENCE_DIR, "ptp"),
      dataDir: join(tmp, "host-local"),
      config: () => ({
        cniVersion: "1.0.0",
        name: "bench",
        type: "ptp",
        mtu: 1400,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: "10.126.0.0/22" }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: join(tmp, "host-local"),
        },
      }),
    };
    const baseline: Plugin | undefined =
      values.baseline === undefined
        ? undefined
        : {
            name: "skein-cni baseline",
            file: values.baseline,
            dataDir: join(tmp, "baseline"),
            config: () => ({
              ...skein.config(""),
              podCIDR: "10.124.0.0/22",
              dataDir: join(tmp, "baseline"),
            }),
          };
    const plugins = baseline === undefined ? [skein, reference] : [skein, baseline, reference];
    const samples = new Map(plugins.map((p) => [p, emptySamples()]));
    const samplesOf = (p: Plugin): Samples => {
      const found = samples.get(p);
      if (found === undefined) throw new Error(`no samples for ${p.name}`);
      return found;
    };
    const skeinSamples = samplesOf(skein);
    const newPod = (): string => {
      const name = createNetns("skncbp");
      pods.add(name);
      return name;
    };
    const dropPod = (name: string): void => {
      deleteNetns(name);
      pods.delete(name);
    };
    // A pod the benchmark could not DEL is removed with its namespace; its host side with the node's.
    cleanups.push(() => {
      for (const p of pods) deleteNetns(p);
    });

    say(
      `bench:cni: ${runs} sequential pod lifecycles and ${rounds} × ${parallel} parallel ADDs per plugin, ` +
        `${cpus().length} CPUs, load average ${loadavg()[0]?.toFixed(2) ?? "?"} at start`,
    );
    say(`skein-cni: installed form (${installed.binDir}); reference: ${REFERENCE_DIR}/ptp + host-local`);

    for (let i = 0; i < 5; i++)
      for (const p of plugins.filter((x) => x !== reference))
        samplesOf(p).version.push(
          invokeSync(node, p, { CNI_COMMAND: "VERSION" }, { cniVersion: "1.0.0" }).ms,
        );

    // Sequential lifecycles, the two plugins alternating so both meet the same machine.
    for (let i = 0; i < runs; i++) {
      for (const plugin of rotated(plugins, i)) {
        const s = samplesOf(plugin);
        const pod = newPod();
        const config = plugin.config(pod);
        const traced = traceOn && plugin === skein ? { SKEIN_CNI_TRACE: "1" } : undefined;
        const added = invokeSync(node, plugin, cniEnv("ADD", pod, pod, traced), config);
        const result = mustSucceed(added, `${plugin.name} ADD`);
        if (traced !== undefined) noteTrace("ADD", added.stderr);
        s.add.push(added.ms);
        s.cpu.add.push(added.cpuMs ?? Number.NaN);
        const withPrev = { ...config, prevResult: result };
        const checked = invokeSync(node, plugin, cniEnv("CHECK", pod, pod), withPrev);
        mustSucceed(checked, `${plugin.name} CHECK`);
        s.check.push(checked.ms);
        s.cpu.check.push(checked.cpuMs ?? Number.NaN);
        const deleted = invokeSync(node, plugin, cniEnv("DEL", pod, pod, traced), withPrev);
        mustSucceed(deleted, `${plugin.name} DEL`);
        if (traced !== undefined) noteTrace("DEL", deleted.stderr);
        s.del.push(deleted.ms);
        s.cpu.del.push(deleted.cpuMs ?? Number.NaN);
        dropPod(pod);
      }
      if ((i + 1) % 25 === 0) say(`  ${i + 1}/${runs} lifecycles`);
    }

    // P ADDs at once, as a node starting many pods; then their DELs (not timed).
    for (let round = 0; round < rounds; round++) {
      for (const plugin of rotated(plugins, round)) {
        const many = Array.from({ length: parallel }, newPod);
        const config = plugin.config("");
        const started = performance.now();
        const added = await Promise.all(
          many.map((p) => invokeAsync(node, plugin, cniEnv("ADD", p, p), config)),
        );
        samplesOf(plugin).parallel.push(performance.now() - started);
        const results = added.map((a, i) => mustSucceed(a, `${plugin.name} parallel ADD ${i}`));
        const deleted = await Promise.all(
          many.map((p, i) =>
            invokeAsync(node, plugin, cniEnv("DEL", p, p), { ...config, prevResult: results[i] }),
          ),
        );
        deleted.forEach((d, i) => mustSucceed(d, `${plugin.name} parallel DEL ${i}`));
        for (const p of many) dropPod(p);
      }
    }

    const s = skeinSamples;
    const columns = plugins.filter((p) => p !== skein);
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
    const metrics: [string, (x: Samples) => number][] = [
      ["ADD p50", (x) => median(x.add)],
      ["ADD p99", (x) => percentile(x.add, 0.99)],
      ["CHECK p50", (x) => median(x.check)],
      ["CHECK p99", (x) => percentile(x.check, 0.99)],
      ["DEL p50", (x) => median(x.del)],
      ["DEL p99", (x) => percentile(x.del, 0.99)],
      [`${parallel} parallel ADDs (wall, median of ${rounds})`, (x) => median(x.parallel)],
      ["ADD CPU time p50", (x) => median(x.cpu.add)],
      ["CHECK CPU time p50", (x) => median(x.cpu.check)],
      ["DEL CPU time p50", (x) => median(x.cpu.del)],
    ];
    say("");
    say(`| | skein-cni | ${columns.map((p) => `${p.name} | ratio`).join(" | ")} |`);
    say(`|---|---|${columns.map(() => "---|---").join("|")}|`);
    for (const [what, f] of metrics) {
      const mine = f(s);
      say(
        `| ${what} | ${ms(mine)} | ${columns.map((p) => `${ms(f(samplesOf(p)))} | ${ratio(mine, f(samplesOf(p)))}`).join(" | ")} |`,
      );
    }
    say(
      `| VERSION p50 (start-up only) | ${ms(median(s.version))} | ${columns
        .map((p) =>
          p === reference
            ? " | "
            : `${ms(median(samplesOf(p).version))} | ${ratio(median(s.version), median(samplesOf(p).version))}`,
        )
        .join(" | ")} |`,
    );
    say("");
    say(
      `parallel rounds: ${plugins
        .map(
          (p) =>
            `${p.name} ${samplesOf(p)
              .parallel.map((x) => x.toFixed(0))
              .join(", ")} ms`,
        )
        .join("; ")}; ` + `load average ${loadavg()[0]?.toFixed(2) ?? "?"} at end`,
    );
    const targets: [string, number, number][] = [
      ["ADD p50 ≤ 45 ms", median(s.add), 45],
      ["ADD p99 ≤ 80 ms", percentile(s.add, 0.99), 80],
      ["DEL p50 ≤ 40 ms", median(s.del), 40],
      [`${parallel} parallel ADDs ≤ 1000 ms`, median(s.parallel), 1000],
    ];
    say(
      "targets: " +
        targets.map(([what, v, max]) => `${what}: ${v.toFixed(1)} ${v <= max ? "met" : "MISSED"}`).join("; "),
    );
    for (const [verb, steps] of Object.entries(traces)) {
      if (steps.size === 0) continue;
      say(`\nskein-cni ${verb}, median ms since process start at each traced step (${runs} runs):`);
      const rows = [...steps].map(([label, at]) => [label, median(at)] as const).sort((a, b) => a[1] - b[1]);
      for (const [label, ms] of rows) say(`  ${ms.toFixed(1).padStart(7)}  ${label}`);
    }
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        fn();
      } catch (err) {
        process.stderr.write(`bench:cni cleanup: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
};

main().catch((err: unknown) => {
  process.stderr.write(`bench:cni: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
