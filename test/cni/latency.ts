/**
 * Measures what ADD and DEL cost, end to end as a runtime sees them (process start to exit), and
 * how many processes each spawns. Privileged; cleans up after itself.
 *
 *   node dist/test/cni/latency.js [--form built|installed] [--runs N] [--mtu BYTES]
 *
 * Without --mtu, ADD derives the MTU from the uplink (one more `ip` process).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { uniqueName } from "../helpers/names.js";
import {
  builtForm,
  cniEnv,
  createNetns,
  deleteNetns,
  installToTemp,
  installedForm,
  invoke,
  type PluginForm,
} from "./plugin-harness.js";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function summary(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, min ${s[0]!.toFixed(1)} ms, max ${s.at(-1)!.toFixed(1)} ms (n=${s.length})`;
}

const formName = option("form", "installed");
const runs = Number(option("runs", "25"));
const mtu = Number(option("mtu", "0"));
const bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnilat-")}`;
const dataDir = mkdtempSync(join(tmpdir(), "skn-cni-lat-"));
const cleanups: (() => void)[] = [
  () => {
    rmSync(dataDir, { recursive: true, force: true });
  },
];
try {
  loadPinnedDatapath(bpffsRoot);
  cleanups.push(() => unloadPinnedDatapath(bpffsRoot));
  const nodeNs = createNetns("sknln");
  cleanups.push(() => {
    deleteNetns(nodeNs);
  });
  let form: PluginForm = builtForm();
  if (formName === "installed") {
    const installed = installToTemp();
    cleanups.push(() => {
      rmSync(installed.root, { recursive: true, force: true });
    });
    form = installedForm(installed.binDir, installed.root);
  }
  const config = {
    cniVersion: "1.1.0",
    name: "latency",
    type: "skein-cni",
    podCIDR: "10.127.0.0/24",
    bpffsRoot,
    dataDir,
    ...(mtu > 0 ? { mtu } : {}),
  };
  const addMs: number[] = [];
  const delMs: number[] = [];
  const spawned = { add: 0, del: 0 };
  for (let i = 0; i < runs; i++) {
    const pod = createNetns("sknlp");
    cleanups.push(() => {
      deleteNetns(pod);
    });
    let t = performance.now();
    const added = invoke(form, nodeNs, { env: cniEnv("ADD", pod, pod, { SKEIN_CNI_TRACE: "1" }), config });
    addMs.push(performance.now() - t);
    if (added.exit !== 0) throw new Error(`ADD failed: ${added.stdout} ${added.stderr}`);
    spawned.add = (added.stderr.match(/spawned/g) ?? []).length;
    t = performance.now();
    const deleted = invoke(form, nodeNs, {
      env: cniEnv("DEL", pod, pod, { SKEIN_CNI_TRACE: "1" }),
      config: { ...config, prevResult: added.json },
    });
    delMs.push(performance.now() - t);
    if (deleted.exit !== 0) throw new Error(`DEL failed: ${deleted.stdout} ${deleted.stderr}`);
    spawned.del = (deleted.stderr.match(/spawned/g) ?? []).length;
  }
  const note = formName === "installed" ? " (includes unshare + bind mounts hiding the system node)" : "";
  const mtuNote = mtu > 0 ? `mtu ${mtu} configured` : "mtu derived from the uplink";
  process.stdout.write(
    `skein-cni ${formName} form${note}, ${mtuNote}, load average ${loadavg()[0]!.toFixed(2)}\n`,
  );
  process.stdout.write(`ADD: ${summary(addMs)}; spawns ${spawned.add} processes\n`);
  process.stdout.write(`DEL: ${summary(delMs)}; spawns ${spawned.del} processes\n`);
} finally {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch (err) {
      process.stderr.write(`cleanup: ${String(err)}\n`);
    }
  }
}
