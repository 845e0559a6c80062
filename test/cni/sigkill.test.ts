/**
 * SIGKILL at any point of ADD leaks nothing that DEL cannot take back: the installed plugin is
 * killed at spread-out moments of many ADDs (before, during and after each step), then the runtime's
 * DEL runs for each, and the node must be as it was: no host veth, no reservation, no endpoint
 * entry, no route, no neighbour entry, no clsact qdisc, and nothing left in the pods.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { Netns, inNetns } from "../../loader/index.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";
import {
  SYSTEM_PATH,
  cniEnv,
  createNetns,
  deleteNetns,
  installToTemp,
  netnsPath,
  nodeState,
  run,
} from "./plugin-harness.js";

const KILLS = 20;

interface Ended {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

describe("cni: SIGKILL during ADD, then DEL, leaves nothing behind", function () {
  this.timeout(300000);
  const network = "sknkill";
  let bpffsRoot = "";
  let nodeName = "";
  let node: Netns | undefined;
  let dataDir = "";
  let installRoot = "";
  let plugin = "";
  const pods: string[] = [];

  const config = () => ({
    cniVersion: "1.0.0",
    name: network,
    type: "skein-cni",
    podCIDR: "10.122.0.0/24",
    bpffsRoot,
    dataDir,
    mtu: 1400,
  });

  /** Starts the plugin in the node's namespace; kills it after `killAfterMs` when given. */
  function start(env: Record<string, string>, killAfterMs?: number): Promise<Ended> {
    const ns = node;
    if (ns === undefined) throw new Error("no node namespace");
    return inNetns(ns, () => {
      const started = performance.now();
      // The wrapper execs node: the pid is the plugin's own for its whole life.
      const child = spawn(plugin, [], {
        env: { PATH: SYSTEM_PATH, ...env },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.stdin.end(JSON.stringify(config()));
      const timer =
        killAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
            }, killAfterMs);
      return new Promise<Ended>((resolve, reject) => {
        child.on("error", reject);
        child.on("close", (status, signal) => {
          clearTimeout(timer);
          resolve({ status, signal, stdout, stderr, ms: performance.now() - started });
        });
      });
    });
  }

  before(function () {
    requireRoot(this);
    bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnikill-")}`;
    loadPinnedDatapath(bpffsRoot);
    nodeName = createNetns("sknkn");
    node = Netns.open(netnsPath(nodeName));
    dataDir = mkdtempSync(join(tmpdir(), "skn-cni-kill-"));
    const installed = installToTemp();
    installRoot = installed.root;
    plugin = join(installed.binDir, "skein-cni");
  });

  after(function () {
    for (const p of pods) deleteNetns(p);
    node?.close();
    if (nodeName !== "") deleteNetns(nodeName);
    if (bpffsRoot !== "") unloadPinnedDatapath(bpffsRoot);
    if (dataDir !== "") rmSync(dataDir, { recursive: true, force: true });
    if (installRoot !== "") rmSync(installRoot, { recursive: true, force: true });
  });

  it(`${KILLS} ADDs killed at spread-out moments; DEL of each restores the node`, async function () {
    const empty = nodeState(nodeName, dataDir, network, bpffsRoot);

    // How long a whole ADD takes here now (the quickest of three, traced), so the kills spread over it.
    let full: Ended | undefined;
    for (let i = 0; i < 3; i++) {
      const probe = createNetns("sknkp");
      pods.push(probe);
      const added = await start({ ...cniEnv("ADD", probe, probe), SKEIN_CNI_TRACE: "1" });
      assert.equal(added.status, 0, `ADD: ${added.stdout} ${added.stderr}`);
      const deleted = await start(cniEnv("DEL", probe, probe));
      assert.equal(deleted.status, 0, `DEL: ${deleted.stdout} ${deleted.stderr}`);
      if (full === undefined || added.ms < full.ms) full = added;
    }
    assert.ok(full !== undefined);
    const fullMs = full.ms;
    // Where the plugin starts touching the node (its trace says, in ms since its start).
    const workStartMs = Number(/([\d.]+) ms kernel loaded/.exec(full.stderr)?.[1] ?? fullMs / 2);
    const reached = new Map<string, number>();
    for (let i = 0; i < KILLS; i++) {
      const pod = createNetns("sknkp");
      pods.push(pod);
      // A few during Node's start-up, the rest spread over the kernel work and a little past the end.
      const early = 4;
      const at =
        i < early
          ? (workStartMs * (i + Math.random())) / early
          : workStartMs + ((fullMs * 1.05 - workStartMs) * (i - early + Math.random())) / (KILLS - early);
      const killed = await start({ ...cniEnv("ADD", pod, pod), SKEIN_CNI_TRACE: "1" }, at);
      const steps = killed.stderr.match(/ms ([^\n]+)/g) ?? [];
      const last =
        killed.signal === "SIGKILL" ? (steps.at(-1)?.replace(/^ms | \(.*$/g, "") ?? "start-up") : "finished";
      reached.set(last, (reached.get(last) ?? 0) + 1);

      const deleted = await start(cniEnv("DEL", pod, pod));
      assert.equal(
        deleted.status,
        0,
        `DEL after a kill at ${at.toFixed(0)} ms: ${deleted.stdout} ${deleted.stderr}`,
      );
      const links = run("nsenter", [`--net=${netnsPath(pod)}`, "--", "ip", "-o", "link", "show"]).stdout;
      assert.equal(links.trim().split("\n").length, 1, `only lo left in the pod: ${links}`);
    }
    assert.ok(reached.size >= 3, `the kills landed in too few phases: ${JSON.stringify([...reached])}`);

    // A killed ADD may leave a temporary file (never a reservation); the next ADD sweeps it.
    const last = createNetns("sknkp");
    pods.push(last);
    assert.equal((await start(cniEnv("ADD", last, last))).status, 0);
    assert.equal((await start(cniEnv("DEL", last, last))).status, 0);

    assert.deepEqual(nodeState(nodeName, dataDir, network, bpffsRoot), empty);
    const leftovers = readdirSync(join(dataDir, network)).filter(
      (f) => f !== "lock" && f !== "last_reserved_ip",
    );
    assert.deepEqual(leftovers, [], "IPAM directory holds only the lock and the rotation mark");
  });
});
