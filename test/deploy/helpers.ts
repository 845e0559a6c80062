/**
 * Shared by the deploy tests: the manifests of deploy/skein.yaml as typed objects, a parser for the
 * Containerfile, and podman (runc, a private storage root) running a root filesystem assembled from
 * this machine's Debian 12 /usr, which stands in for the image's base (no registry is reachable).
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { parseAllDocuments } from "yaml";
import { containersConf, releaseStorage, storageFlags } from "../helpers/podman.js";

/** The repository (this file runs from dist/test/deploy). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BUNDLE = join(REPO, "deploy", "skein.yaml");

/** A Kubernetes object as parsed from YAML. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** Every document of `path` (deploy/skein.yaml by default), empty documents skipped. Throws on YAML errors. */
export function readManifests(path = BUNDLE): KubeObject[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  const out: KubeObject[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${path}: ${d.errors.map((e) => e.message).join("; ")}`);
    const value = d.toJS() as KubeObject | null;
    if (value !== null) out.push(value);
  }
  return out;
}

/** The one object of `kind` (and `name`, when given), typed as the caller says. Throws unless exactly one matches. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a checked cast to the kind's model type
export function the<T = KubeObject>(objects: KubeObject[], kind: string, name?: string): T {
  const hits = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (hits.length !== 1)
    throw new Error(`expected one ${kind}${name === undefined ? "" : ` ${name}`}, found ${hits.length}`);
  return hits[0] as T;
}

/** The agent DaemonSet and its containers. */
export function agentDaemonSet(objects = readManifests()): {
  ds: IDaemonSet;
  agent: IContainer;
  init: IContainer[];
} {
  const ds = the<IDaemonSet>(objects, "DaemonSet", "skein-agent");
  const spec = ds.spec?.template.spec;
  const agent = spec?.containers.find((c) => c.name === "agent");
  if (spec === undefined || agent === undefined)
    throw new Error("DaemonSet skein-agent has no container named agent");
  return { ds, agent, init: spec.initContainers ?? [] };
}

/** The agent settings file carried by the ConfigMap (data["agent.yaml"]), text and parsed. */
export function agentSettings(objects = readManifests()): {
  text: string;
  values: Record<string, unknown>;
  configMap: KubeObject;
} {
  const configMap = the(objects, "ConfigMap", "skein-agent-config");
  const text = (configMap.data as Record<string, string> | undefined)?.["agent.yaml"];
  if (text === undefined) throw new Error("ConfigMap skein-agent-config has no agent.yaml");
  const values = (parseAllDocuments(text)[0]?.toJS() ?? {}) as Record<string, unknown>;
  return { text, values, configMap };
}

/** One instruction of a Containerfile: keyword, raw argument text, and for COPY its parts. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
  copy?: { from?: string; sources: string[]; dest: string };
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Parses a Containerfile: comments dropped, `\` continuations joined, one Stage per FROM. Throws on a malformed COPY. */
export function parseContainerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? "";
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith("\\")) line = line.slice(0, -1) + " " + (lines[++i] ?? "").trim();
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`Containerfile line ${start}: cannot parse ${JSON.stringify(line)}`);
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (keyword === "FROM") {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (f === null) throw new Error(`Containerfile line ${start}: bad FROM`);
      stages.push({ name: f[2] ?? String(stages.length), from: f[1]!, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new Error(`Containerfile line ${start}: ${keyword} before FROM`);
    const ins: Instruction = { keyword, args, line: start };
    if (keyword === "COPY") {
      const words = args.split(/\s+/);
      const fromFlag =
        words[0]?.startsWith("--from=") === true ? words.shift()!.slice("--from=".length) : undefined;
      const dest = words.pop();
      if (dest === undefined || words.length === 0)
        throw new Error(`Containerfile line ${start}: COPY needs sources and a destination`);
      ins.copy = { sources: words, dest, ...(fromFlag === undefined ? {} : { from: fromFlag }) };
    }
    stage.instructions.push(ins);
  }
  return stages;
}

/** Packages an `apt-get install` in a RUN installs (flags dropped). */
export function aptPackages(run: string): string[] {
  const m = /apt-get install ([^&;|]*)/.exec(run);
  if (m === null) return [];
  return m[1]!.split(/\s+/).filter((w) => w !== "" && !w.startsWith("-"));
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; resolves with its exit code (never rejects for a non-zero one). Killed after `timeoutMs`. */
export function exec(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (sig === null ? -1 : 128),
        stdout,
        stderr: stderr + (sig === null ? "" : `\nkilled by ${sig}`),
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/**
 * podman with its own storage under `work`, runc, cgroupfs and file events (what this machine's
 * podman 4.3 needs; see DESIGN.md). Containers it starts are named by the caller and removed by
 * `removeAll`.
 */
export class Podman {
  readonly work: string;
  readonly #names = new Set<string>();

  constructor(work: string) {
    this.work = work;
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, "containers.conf"), containersConf(work));
  }

  /** `podman ARGS` with this instance's storage and configuration. */
  run(args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<Result> {
    const nameAt = args.indexOf("--name");
    if (nameAt >= 0 && args[nameAt + 1] !== undefined) this.#names.add(args[nameAt + 1]!);
    return exec("podman", [...storageFlags(this.work), ...args], {
      env: { ...process.env, CONTAINERS_CONF: join(this.work, "containers.conf") },
      ...options,
    });
  }

  /** Removes every container this instance named, running or not. */
  async removeAll(): Promise<void> {
    if (this.#names.size === 0) return;
    await this.run(["rm", "--force", "--time", "1", "--ignore", ...this.#names], { timeoutMs: 60_000 });
    this.#names.clear();
  }

  /** Removes the containers, then releases the storage (helpers/podman.ts) so `work` can be deleted. */
  async dispose(): Promise<void> {
    await this.removeAll();
    await releaseStorage(this.work);
  }
}

/**
 * A root filesystem skeleton whose /usr is this machine's (bind-mounted read-only by `usrMounts`)
 * and whose /usr/local is its own writable directory, as in the node:20-bookworm-slim image (whose
 * node lives in /usr/local/bin; here node comes from /usr/bin). Returns the rootfs path.
 */
export function skeletonRootfs(dir: string): { rootfs: string; usrLocal: string } {
  const rootfs = join(dir, "rootfs");
  for (const d of [
    "proc",
    "sys",
    "dev",
    "tmp",
    "run",
    "etc/skein",
    "etc/cni/net.d",
    "opt/skein",
    "usr",
    "var/tmp",
    "root",
    "host/opt/cni/bin",
  ])
    mkdirSync(join(rootfs, d), { recursive: true });
  for (const [link, target] of [
    ["bin", "usr/bin"],
    ["lib", "usr/lib"],
    ["lib64", "usr/lib64"],
    ["sbin", "usr/sbin"],
  ] as const)
    symlinkSync(target, join(rootfs, link));
  const usrLocal = join(dir, "usr-local");
  for (const d of ["bin", "lib", "sbin", "share"]) mkdirSync(join(usrLocal, d), { recursive: true });
  writeFileSync(
    join(rootfs, "etc", "passwd"),
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  );
  writeFileSync(join(rootfs, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n");
  return { rootfs, usrLocal };
}

/** podman -v arguments that put this machine's /usr (read-only) and `usrLocal` into a skeleton rootfs. */
export function usrMounts(usrLocal: string): string[] {
  return ["-v", "/usr:/usr:ro", "-v", `${usrLocal}:/usr/local`];
}

/** True when `cmd` is on PATH. */
export async function have(cmd: string): Promise<boolean> {
  return (await exec("sh", ["-c", `command -v ${cmd}`])).code === 0;
}
