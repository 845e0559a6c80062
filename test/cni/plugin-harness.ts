/**
 * Running skein-cni the way a runtime does (env + stdin, run inside a "node" network namespace)
 * in its two forms, and reading the node's state back for before/after comparisons.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EndpointsMap, type Endpoint } from "../../maps/endpoints.js";
import { uniqueName } from "../helpers/names.js";

/** The repository (this file runs from dist/test/cni). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BUILT_PLUGIN = join(REPO, "dist", "bin", "skein-cni");
export const INSTALL_SOURCE = join(REPO, "dist", "cni-install");
export const INSTALL_SCRIPT = join(REPO, "scripts", "install-cni.sh");
/** A PATH with system tools only: neither the repository nor node_modules/.bin. */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface Outcome {
  exit: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. Never throws for a non-zero exit; throws when it cannot start. */
export function run(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): RunResult {
  const r = spawnSync(file, args, {
    encoding: "utf8",
    input: options.input ?? "",
    timeout: options.timeoutMs ?? 60000,
  });
  if (r.error !== undefined) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a command and throws with its stderr when it fails. */
export function must(file: string, args: readonly string[], input?: string): string {
  const r = run(file, args, input === undefined ? {} : { input });
  if (r.status !== 0) throw new Error(`${file} ${args.join(" ")} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

/** Creates a named network namespace with a unique name. The caller deletes it (deleteNetns). */
export function createNetns(prefix: string): string {
  const name = uniqueName(prefix);
  must("ip", ["netns", "add", name]);
  return name;
}

/** Deletes a named network namespace; absent is fine. */
export function deleteNetns(name: string): void {
  if (existsSync(netnsPath(name))) run("ip", ["netns", "del", name]);
}

/** Where node binaries are that the installed-form test must hide. */
function nodeBinaries(): string[] {
  const found = new Set<string>();
  for (const dir of SYSTEM_PATH.split(":")) {
    const p = join(dir, "node");
    if (existsSync(p)) found.add(realpathSync(p));
  }
  return [...found];
}

/** How to start one form of the plugin inside the node namespace. */
export interface PluginForm {
  /** "server": through the resident server (test/cni/server-harness.ts). */
  name: "built" | "installed" | "server";
  /** argv (file first) running the plugin in `nodeNetns`. */
  command(nodeNetns: string): string[];
  /** Directory to run in. */
  cwd: string;
}

/** dist/bin/skein-cni: the tsc output run by the system node. */
export function builtForm(): PluginForm {
  return {
    name: "built",
    command: (nodeNetns) => ["nsenter", `--net=${netnsPath(nodeNetns)}`, "--", BUILT_PLUGIN],
    cwd: REPO,
  };
}

/**
 * The installed form in `binDir`, run from a directory outside the repository with every system
 * node binary hidden (a private mount namespace bind-mounts /dev/null over them) and a PATH
 * without the repository.
 */
export function installedForm(binDir: string, cwd: string): PluginForm {
  const hide = nodeBinaries()
    .map((p) => `mount --bind /dev/null '${p}' || exit 96; `)
    .join("");
  const script =
    `${hide}if node -e 0 >/dev/null 2>&1; then echo 'a system node is still reachable' >&2; exit 97; fi; ` +
    `exec nsenter --net="$1" -- "$2"`;
  return {
    name: "installed",
    command: (nodeNetns) => [
      "unshare",
      "-m",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      script,
      "sh",
      netnsPath(nodeNetns),
      join(binDir, "skein-cni"),
    ],
    cwd,
  };
}

/** Installs dist/cni-install into a fresh temporary CNI bin dir with scripts/install-cni.sh. The caller removes `root`. */
export function installToTemp(): { root: string; binDir: string } {
  const root = mkdtempSync(join(tmpdir(), "skn-cni-installed-"));
  const binDir = join(root, "opt-cni-bin");
  must("sh", [INSTALL_SCRIPT, binDir]);
  return { root, binDir };
}

function outcome(status: number, stdout: string, stderr: string): Outcome {
  let json: Record<string, unknown> | undefined;
  try {
    if (stdout.trim() !== "") json = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { exit: status, stdout, stderr, json };
}

export interface Invocation {
  env: Record<string, string>;
  config: unknown;
}

/** Runs the plugin like a runtime: CNI_* env (and nothing else but PATH), config on stdin. */
export function invoke(form: PluginForm, nodeNetns: string, inv: Invocation): Outcome {
  const [file, ...args] = form.command(nodeNetns);
  const stdin = typeof inv.config === "string" ? inv.config : JSON.stringify(inv.config);
  const r = spawnSync(file!, args, {
    encoding: "utf8",
    input: stdin,
    cwd: form.cwd,
    env: { PATH: SYSTEM_PATH, ...inv.env },
    timeout: 60000,
  });
  if (r.error !== undefined) throw r.error;
  return outcome(r.status ?? -1, r.stdout, r.stderr);
}

/** The same, without blocking: for concurrent invocations. */
export function invokeAsync(form: PluginForm, nodeNetns: string, inv: Invocation): Promise<Outcome> {
  const [file, ...args] = form.command(nodeNetns);
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, {
      cwd: form.cwd,
      env: { PATH: SYSTEM_PATH, ...inv.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve(outcome(code ?? -1, stdout, stderr));
    });
    child.stdin.end(typeof inv.config === "string" ? inv.config : JSON.stringify(inv.config));
  });
}

export function cniEnv(
  command: string,
  containerId: string,
  podNetns: string | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    ...(podNetns === undefined ? {} : { CNI_NETNS: netnsPath(podNetns) }),
    CNI_IFNAME: "eth0",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${containerId}`,
    CNI_PATH: "/opt/cni/bin",
    ...extra,
  };
}

/** Everything skein-cni may leave on a node, for before/after comparisons. */
export interface NodeState {
  reservations: string[];
  links: string[];
  qdiscs: string[];
  routes: string[];
  neighbours: string[];
  endpoints: [string, Endpoint][];
}

export function reservations(dataDir: string, network: string): string[] {
  try {
    return readdirSync(join(dataDir, network))
      .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
      .sort();
  } catch {
    return [];
  }
}

export function endpointEntries(bpffsRoot: string): [string, Endpoint][] {
  const map = EndpointsMap.openPinned(bpffsRoot);
  try {
    return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
  } finally {
    map.close();
  }
}

export function nodeState(nodeNetns: string, dataDir: string, network: string, bpffsRoot: string): NodeState {
  const links = (JSON.parse(must("ip", ["-n", nodeNetns, "-j", "link", "show"])) as { ifname: string }[])
    .map((l) => l.ifname)
    .sort();
  const qdiscs = (
    JSON.parse(must("tc", ["-n", nodeNetns, "-j", "qdisc", "show"])) as { kind: string; dev: string }[]
  )
    .filter((q) => q.kind === "clsact")
    .map((q) => q.dev)
    .sort();
  const routes = must("ip", ["-n", nodeNetns, "route", "show"])
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .sort();
  const neighbours = must("ip", ["-n", nodeNetns, "neigh", "show", "nud", "permanent"])
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .sort();
  return {
    reservations: reservations(dataDir, network),
    links,
    qdiscs,
    routes,
    neighbours,
    endpoints: endpointEntries(bpffsRoot),
  };
}
