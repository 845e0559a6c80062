/** Running skeinctl against a lab node: as a process inside the node's network namespace, or in-process. */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { DIST, Lab, type LabNode, type LabPod } from "../../lab/lab.js";
import { runCtl } from "../../ctl/cli.js";
import { COMMANDS } from "../../ctl/commands/index.js";
import { requireRoot } from "../helpers/privileged.js";

/** The built skeinctl entry point. */
export const SKEINCTL = join(DIST, "ctl", "main.js");

/** How a skeinctl run ended. */
export interface CtlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The flags that point skeinctl at `node`: its bpffs root and its agent. */
export function nodeFlags(node: LabNode): string[] {
  return ["--bpffs-root", node.bpffsRoot, "--agent", `http://${node.ip}:9879`];
}

/** Starts `skeinctl ARGS` in `node`'s network namespace (nsenter, as an operator on the node would). */
export function spawnCtl(node: LabNode, args: readonly string[]): ChildProcessWithoutNullStreams {
  return spawn("nsenter", [`--net=/var/run/netns/${node.netns}`, process.execPath, SKEINCTL, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs `skeinctl ARGS` in `node`'s network namespace to completion. */
export function ctl(node: LabNode, args: readonly string[], timeoutMs = 30000): Promise<CtlRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCtl(node, args);
    child.stdin.end();
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `skeinctl ${args.join(" ")}: no exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs skeinctl in this process through runCtl and COMMANDS (root network namespace; bpffs is shared). */
export async function ctlInProcess(args: readonly string[], signal?: AbortSignal): Promise<CtlRun> {
  let stdout = "";
  let stderr = "";
  const code = await runCtl(
    args,
    {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      ...(signal === undefined ? {} : { signal }),
    },
    COMMANDS,
  );
  return { code, stdout, stderr };
}

/** A running monitor: its output so far, and a promise of its end. */
export interface MonitorProc {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  done: Promise<CtlRun>;
}

/** Starts `skeinctl monitor ARGS` on `node` and resolves once it is reading the ring buffer. */
export async function startMonitor(
  node: LabNode,
  args: readonly string[],
  readyTimeoutMs = 15000,
): Promise<MonitorProc> {
  const child = spawnCtl(node, ["monitor", ...args]);
  child.stdin.end();
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CtlRun>((resolve) => {
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
  const deadline = Date.now() + readyTimeoutMs;
  while (!stderr.includes("monitoring skn_events")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      const r = await done;
      throw new Error(`skeinctl monitor did not start (exit ${r.code}): ${r.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Lines of `-o json` monitor output, parsed. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A lab built by hand: nodes with their own agent flags. Torn down in `after`, also on failure. */
export interface CtlLab {
  lab: Lab;
  nodes: LabNode[];
  pods: Record<string, LabPod>;
}

/**
 * Registers before/after hooks: a lab with one node per entry of `nodeAgentArgs`, then `setup`.
 * The holder is filled in by `before`.
 */
export function useCtlLab(
  nodeAgentArgs: readonly (readonly string[])[],
  setup: (fx: CtlLab) => Promise<void>,
): CtlLab {
  const fx = { pods: {} } as CtlLab;
  let created: Lab | undefined;
  before(async function () {
    requireRoot(this);
    this.timeout(180000);
    fx.lab = created = await Lab.create({});
    fx.nodes = [];
    for (const args of nodeAgentArgs)
      fx.nodes.push(await fx.lab.addNode({ waitReady: false, agentArgs: [...args] }));
    await Promise.all(fx.nodes.map((n) => fx.lab.waitAgentReady(n)));
    await setup(fx);
  });
  after(async function () {
    this.timeout(120000);
    if (created === undefined) return;
    const problems = await created.teardown();
    if (problems.length > 0) throw new Error(`lab teardown: ${problems.join("; ")}`);
  });
  return fx;
}

/** A deny-all-ingress NetworkPolicy for pods matching `labels` in `namespace`. */
export function denyAllIngress(namespace: string, name: string, labels: Record<string, string>) {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
    spec: { podSelector: { matchLabels: labels }, policyTypes: ["Ingress"] },
  };
}
