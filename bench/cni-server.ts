/**
 * node dist/bench/cni-server.js [--runs N] [--lifecycles L] [--parallel P]
 *
 * The resident CNI server's share of a CNI call: latency from the client's connect() to the end of
 * the server's answer, for ADD, CHECK and DEL over L sequential pod lifecycles (p50/p99), and the
 * wall time of P ADDs sent at once (queued, one at a time). The server is the installed bundle
 * (dist/cni-install/skein-cni.d/skein-cni-server.cjs) running in a node namespace against a real
 * datapath pinned in a private bpffs root; the client speaks the shim's protocol in-process, so a
 * shim's own cost (exec of a static binary, a few hundred µs) comes on top. bench/cni.ts measures
 * the installed plugin as a runtime runs it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../maps/datapath/pinned.js";
import { uniqueName } from "../test/helpers/names.js";
import { SYSTEM_PATH, cniEnv, createNetns, deleteNetns, installToTemp } from "../test/cni/plugin-harness.js";
import { callServer, type ServerAnswer } from "../test/cni/server-client.js";
import { installedServer, startServer } from "../test/cni/server-harness.js";
import { say } from "./harness.js";

function percentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)] ?? Number.NaN;
}

function positive(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag}: expected a positive integer, got ${value}`);
  return n;
}

const { values } = parseArgs({
  options: { runs: { type: "string" }, lifecycles: { type: "string" }, parallel: { type: "string" } },
});
const runs = positive("runs", values.runs, 3);
const lifecycles = positive("lifecycles", values.lifecycles, 100);
const parallel = positive("parallel", values.parallel, 32);

const bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnisb-")}`;
const dataDir = mkdtempSync(join(tmpdir(), "skn-cnisb-ipam-"));
const installed = installToTemp();
const socket = join(installed.root, "run", "cni.sock");
const nodeNs = createNetns("skncbn");
const pods: string[] = [];
loadPinnedDatapath(bpffsRoot);
const server = await startServer(nodeNs, socket, installedServer(installed.binDir));

const config = JSON.stringify({
  cniVersion: "1.0.0",
  name: "sknbench",
  type: "skein-cni",
  podCIDR: "10.126.0.0/22",
  bpffsRoot,
  dataDir,
  mtu: 1400,
});
const call = (command: string, pod: string, extra = ""): Promise<ServerAnswer> =>
  callServer(
    socket,
    { PATH: SYSTEM_PATH, ...cniEnv(command, pod, pod) },
    extra === "" ? config : config.replace(/}$/, `,"prevResult":${extra}}`),
  );
function must(a: ServerAnswer, what: string): ServerAnswer {
  if (a.exitCode !== 0) throw new Error(`${what}: ${a.stdout} ${a.stderr}`);
  return a;
}

interface Run {
  add: number[];
  check: number[];
  del: number[];
  parallelMs: number;
}

try {
  say(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const results: Run[] = [];
  for (let r = 0; r < runs; r++) {
    const run: Run = { add: [], check: [], del: [], parallelMs: 0 };
    for (let i = 0; i < lifecycles + 3; i++) {
      const pod = createNetns("skncb");
      pods.push(pod);
      const added = must(await call("ADD", pod), "ADD");
      const checked = must(await call("CHECK", pod, added.stdout.trim()), "CHECK");
      const deleted = must(await call("DEL", pod, added.stdout.trim()), "DEL");
      deleteNetns(pod);
      // The first lifecycles warm the server up (modules, libbpf): a node's server is warm.
      if (i < 3) continue;
      run.add.push(added.ms);
      run.check.push(checked.ms);
      run.del.push(deleted.ms);
    }
    const many = Array.from({ length: parallel }, () => {
      const pod = createNetns("skncb");
      pods.push(pod);
      return pod;
    });
    const started = performance.now();
    const answers = await Promise.all(many.map((p) => call("ADD", p)));
    run.parallelMs = performance.now() - started;
    answers.forEach((a, i) => must(a, `parallel ADD ${i}`));
    for (const [i, p] of many.entries()) must(await call("DEL", p, answers[i]?.stdout.trim() ?? ""), "DEL");
    for (const p of many) deleteNetns(p);
    results.push(run);
    const fmt = (v: number[]) =>
      `p50 ${percentile(v, 0.5).toFixed(1)} ms, p99 ${percentile(v, 0.99).toFixed(1)} ms`;
    say(
      `run ${r + 1}: ADD ${fmt(run.add)} | CHECK ${fmt(run.check)} | DEL ${fmt(run.del)} | ${parallel} parallel ADDs ${run.parallelMs.toFixed(0)} ms`,
    );
  }
  const med = (xs: number[]) => percentile(xs, 0.5);
  const spread = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  say();
  say(
    `resident server, client connect → answer, ${lifecycles} lifecycles × ${runs} runs (median of runs, spread):`,
  );
  for (const verb of ["add", "check", "del"] as const) {
    const p50 = results.map((x) => percentile(x[verb], 0.5));
    const p99 = results.map((x) => percentile(x[verb], 0.99));
    say(
      `  ${verb.toUpperCase().padEnd(5)} p50 ${med(p50).toFixed(1)} ms (${spread(p50)})   p99 ${med(p99).toFixed(1)} ms (${spread(p99)})`,
    );
  }
  const par = results.map((x) => x.parallelMs);
  say(`  ${parallel} parallel ADDs: ${med(par).toFixed(0)} ms (${spread(par)})`);
  say(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
} finally {
  await server.stop();
  for (const p of pods) deleteNetns(p);
  deleteNetns(nodeNs);
  unloadPinnedDatapath(bpffsRoot);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(installed.root, { recursive: true, force: true });
}
