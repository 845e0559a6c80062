/**
 * The one-machine lab: N Kubernetes "nodes" as network namespaces joined by an underlay bridge,
 * each with its own skein-agent and bpffs root, a Kubernetes-API-compatible server they all watch,
 * pods wired by the real skein-cni as a runtime would, and a "world" namespace outside the cluster.
 *
 *   root ns ── skl<ID>r (198.18.X.254) ─┐
 *   skl-<ID>-u: br0 ─┬─ n1 ── eth0 (198.18.X.11) skl-<ID>-n1 ── pods (10.244.0.0/24)
 *                    ├─ n2 ── eth0 (198.18.X.12) skl-<ID>-n2 ── pods (10.244.1.0/24)
 *                    └─ w  ── eth0 (198.18.X.250, lo 203.0.113.10) skl-<ID>-w  ("the internet")
 *
 * Everything the lab makes is recorded in /run/skein-lab/<ID>/state.json as it is made, so
 * `teardown` removes exactly that, even after a crash.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1NetworkPolicy,
  type V1Pod,
} from "@kubernetes/client-node";
import { ip, ipBatch, listRoutes, removeEmptyDir } from "../loader/index.js";
import { CNI_CONF_FILE, type SkeinConflist } from "../maps/cni-conflist.js";
import { unloadPinnedDatapath } from "../maps/datapath/pinned.js";
import { NAMESPACE_NAME_LABEL } from "../policy/identity.js";
import { writeKubeconfig } from "./apiserver/kubeconfig.js";
import { startDetached, stop, isRunning, signal, type ProcRecord } from "./procs.js";
import { isAlive, probe as probeWorkload, transfer as transferWorkload } from "./workload/workload-client.js";
import type { ProbeProtocol, ProbeResult, TransferResult } from "./workload/workload.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist/ of this build. */
export const DIST = resolve(here, "..");

export const STATE_ROOT = "/run/skein-lab";
export const WORLD_IP = "203.0.113.10";
export const POD_PORTS = { tcp: [80, 81, 8080], udp: [80, 81, 5353], sctp: [80, 81] };

export interface LabNode {
  name: string;
  index: number;
  netns: string;
  ip: string;
  podCidr: string;
  bpffsRoot: string;
  confDir: string;
  ipamDir: string;
  agent: ProcRecord | null;
  workload: ProcRecord | null;
  control: string;
}

export interface LabPod {
  namespace: string;
  name: string;
  node: string;
  netns: string;
  containerId: string;
  ip: string;
  labels: Record<string, string>;
  workload: ProcRecord | null;
  control: string;
}

export interface LabState {
  id: string;
  subnet: string;
  createdAt: string;
  rootLink: string | null;
  underlay: string | null;
  world: { netns: string; workload: ProcRecord | null; control: string } | null;
  api: { proc: ProcRecord; url: string } | null;
  nodes: LabNode[];
  pods: LabPod[];
  namespaces: string[];
  cniBin: string;
}

export interface LabOptions {
  id?: string;
  /** Where skein-cni is (a CNI bin dir layout: the executable itself). */
  cniBin?: string;
  log?: (line: string) => void;
}

function run(
  file: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolvePromise) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? process.env, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolvePromise({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The skein-cni to use: the self-contained installed form when built, the dev shim otherwise. */
export function defaultCniBin(): string {
  const installed = join(DIST, "cni-install", "skein-cni");
  return existsSync(installed) ? installed : join(DIST, "bin", "skein-cni");
}

export class Lab {
  readonly state: LabState;
  readonly dir: string;
  readonly #log: (line: string) => void;
  #kc: KubeConfig | undefined;

  private constructor(state: LabState, log: (line: string) => void) {
    this.state = state;
    this.dir = join(STATE_ROOT, state.id);
    this.#log = log;
  }

  get id(): string {
    return this.state.id;
  }

  get kubeconfigPath(): string {
    return join(this.dir, "kubeconfig");
  }

  /** A lab with no nodes yet: underlay, world, API server. Throws, after removing what it made. */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const id = options.id ?? randomBytes(3).toString("hex");
    if (!/^[a-z0-9]{1,8}$/.test(id))
      throw new Error(`lab id must be 1-8 lowercase letters or digits, got ${JSON.stringify(id)}`);
    const dir = join(STATE_ROOT, id);
    if (existsSync(join(dir, "state.json")))
      throw new Error(`lab ${id} exists already (teardown it first: npm run lab -- teardown --id ${id})`);
    mkdirSync(dir, { recursive: true });
    const subnet = await pickSubnet(id);
    const lab = new Lab(
      {
        id,
        subnet,
        createdAt: new Date().toISOString(),
        rootLink: null,
        underlay: null,
        world: null,
        api: null,
        nodes: [],
        pods: [],
        namespaces: [],
        cniBin: options.cniBin ?? defaultCniBin(),
      },
      options.log ?? (() => undefined),
    );
    try {
      await lab.#buildUnderlay();
      await lab.#startApi();
      return lab;
    } catch (err) {
      await lab.teardown().catch(() => undefined);
      throw err;
    }
  }

  /** The lab recorded under `id`. Throws when there is none. */
  static open(id: string, log: (line: string) => void = () => undefined): Lab {
    const file = join(STATE_ROOT, id, "state.json");
    if (!existsSync(file)) throw new Error(`no lab ${id} (${file} missing)`);
    return new Lab(JSON.parse(readFileSync(file, "utf8")) as LabState, log);
  }

  /** Ids of every lab with a state file. */
  static list(): string[] {
    if (!existsSync(STATE_ROOT)) return [];
    return readdirSync(STATE_ROOT).filter((d) => existsSync(join(STATE_ROOT, d, "state.json")));
  }

  #save(): void {
    writeFileSync(join(this.dir, "state.json"), JSON.stringify(this.state, null, 2));
  }

  #addr(host: number): string {
    return this.state.subnet.replace(/0\/24$/, String(host));
  }

  get #prefix(): string {
    return `skl-${this.state.id}`;
  }

  async #buildUnderlay(): Promise<void> {
    const u = `${this.#prefix}-u`;
    await ip(["netns", "add", u]);
    this.state.underlay = u;
    this.#save();
    await ipBatch(["link set lo up", "link add br0 type bridge", "link set br0 up"], {
      netns: `/var/run/netns/${u}`,
    });
    // The root namespace's door into the lab: kubectl and the tests reach the API server and nodes.
    const rootLink = `skl${this.state.id}r`;
    await ip(["link", "add", rootLink, "type", "veth", "peer", "name", "root", "netns", u]);
    this.state.rootLink = rootLink;
    this.#save();
    await ipBatch([`addr add ${this.#addr(254)}/24 dev ${rootLink}`, `link set ${rootLink} up`]);
    await ipBatch(["link set root master br0", "link set root up"], { netns: `/var/run/netns/${u}` });

    const w = `${this.#prefix}-w`;
    await ip(["netns", "add", w]);
    this.state.world = { netns: w, workload: null, control: join(this.dir, "world.sock") };
    this.#save();
    await ip(["-n", u, "link", "add", "w", "type", "veth", "peer", "name", "eth0", "netns", w]);
    await ipBatch(["link set w master br0", "link set w up"], { netns: `/var/run/netns/${u}` });
    await ipBatch(
      [
        "link set lo up",
        `addr add ${WORLD_IP}/32 dev lo`,
        `addr add ${this.#addr(250)}/24 dev eth0`,
        "link set eth0 up",
        // Answer from the address that was asked: a UDP server bound to 0.0.0.0 otherwise replies
        // from the bridge address, which no conntrack on the nodes expects.
        `route change ${this.state.subnet} dev eth0 src ${WORLD_IP}`,
      ],
      { netns: `/var/run/netns/${w}` },
    );
    this.state.world.workload = this.#startWorkload("world", `/var/run/netns/${w}`, this.state.world.control);
    this.#save();
  }

  #startWorkload(name: string, netns: string, control: string): ProcRecord {
    return startDetached(
      [
        process.execPath,
        join(DIST, "lab", "workload", "workload.js"),
        "--name",
        name,
        "--control",
        control,
        "--tcp",
        POD_PORTS.tcp.join(","),
        "--udp",
        POD_PORTS.udp.join(","),
        "--sctp",
        POD_PORTS.sctp.join(","),
      ],
      {
        netns,
        log: join(this.dir, `workload-${name.replaceAll("/", "-")}.log`),
        role: `workload ${name}`,
        marker: control,
      },
    );
  }

  async #startApi(): Promise<void> {
    const portFile = join(this.dir, "api.port");
    rmSync(portFile, { force: true });
    const proc = startDetached(
      [
        process.execPath,
        join(DIST, "lab", "apiserver", "main.js"),
        "--listen",
        `${this.#addr(254)}:0`,
        "--port-file",
        portFile,
      ],
      { log: join(this.dir, "apiserver.log"), role: "apiserver", marker: portFile },
    );
    this.state.api = { proc, url: "" };
    this.#save();
    const deadline = Date.now() + 15000;
    while (!existsSync(portFile) || readFileSync(portFile, "utf8").trim() === "") {
      if (!isRunning(proc)) throw new Error(`lab API server exited: see ${join(this.dir, "apiserver.log")}`);
      if (Date.now() > deadline) throw new Error("lab API server did not start within 15 s");
      await sleep(50);
    }
    const url = `http://${this.#addr(254)}:${readFileSync(portFile, "utf8").trim()}`;
    this.state.api.url = url;
    this.#save();
    await writeKubeconfig(this.kubeconfigPath, url);
    await this.core()
      .createNamespace({ body: { metadata: { name: "default" } } })
      .catch(() => undefined);
  }

  kubeConfig(): KubeConfig {
    if (this.#kc === undefined) {
      this.#kc = new KubeConfig();
      this.#kc.loadFromFile(this.kubeconfigPath);
    }
    return this.#kc;
  }

  core(): CoreV1Api {
    return this.kubeConfig().makeApiClient(CoreV1Api);
  }

  networking(): NetworkingV1Api {
    return this.kubeConfig().makeApiClient(NetworkingV1Api);
  }

  /** Adds a node: namespace on the underlay, Node object, agent. Resolves when the agent is ready. */
  async addNode(
    opts: { name?: string; podCidr?: string; waitReady?: boolean; agentArgs?: string[] } = {},
  ): Promise<LabNode> {
    const index = this.state.nodes.reduce((m, n) => Math.max(m, n.index), 0) + 1;
    const name = opts.name ?? `lab-n${index}`;
    const netns = `${this.#prefix}-n${index}`;
    const ndir = join(this.dir, `n${index}`);
    mkdirSync(ndir, { recursive: true });
    const node: LabNode = {
      name,
      index,
      netns,
      ip: this.#addr(10 + index),
      podCidr: opts.podCidr ?? `10.244.${index - 1}.0/24`,
      bpffsRoot: `/sys/fs/bpf/skein-lab-${this.state.id}/n${index}`,
      confDir: join(ndir, "net.d"),
      ipamDir: join(ndir, "ipam"),
      agent: null,
      workload: null,
      control: join(ndir, "node.sock"),
    };
    await ip(["netns", "add", netns]);
    this.state.nodes.push(node);
    this.#save();
    const u = this.state.underlay;
    if (u === null) throw new Error(`lab ${this.id} has no underlay`);
    await ip(["-n", u, "link", "add", `n${index}`, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    await ipBatch([`link set n${index} master br0`, `link set n${index} up`], {
      netns: `/var/run/netns/${u}`,
    });
    await ipBatch(
      [
        "link set lo up",
        `addr add ${node.ip}/24 dev eth0`,
        "link set eth0 up",
        `route add default via ${this.#addr(250)}`,
      ],
      {
        netns: `/var/run/netns/${netns}`,
      },
    );
    node.workload = this.#startWorkload(`node/${name}`, `/var/run/netns/${netns}`, node.control);
    this.#save();
    await this.core().createNode({
      body: {
        metadata: { name, labels: { "kubernetes.io/hostname": name } },
        spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
        status: {
          addresses: [
            { type: "InternalIP", address: node.ip },
            { type: "Hostname", address: name },
          ],
        },
      },
    });
    this.startAgent(node, opts.agentArgs ?? []);
    if (opts.waitReady !== false) await this.waitAgentReady(node);
    return node;
  }

  /** Starts (or restarts) the node's agent process. */
  startAgent(node: LabNode, extraArgs: string[] = []): ProcRecord {
    const marker = `--bpffs-root=${node.bpffsRoot}`;
    node.agent = startDetached(
      [
        process.execPath,
        join(DIST, "agent", "main.js"),
        `--node-name=${node.name}`,
        `--kubeconfig=${this.kubeconfigPath}`,
        marker,
        `--cni-conf-dir=${node.confDir}`,
        `--cni-data-dir=${node.ipamDir}`,
        "--health-addr=0.0.0.0:9879",
        "--metrics-addr=0.0.0.0:9878",
        ...extraArgs,
      ],
      {
        netns: `/var/run/netns/${node.netns}`,
        log: join(this.dir, `n${node.index}`, "agent.log"),
        role: `agent ${node.name}`,
        marker,
      },
    );
    this.#save();
    return node.agent;
  }

  /** Sends `sig` to the node's agent; with SIGKILL/SIGTERM waits for it to be gone. */
  async signalAgent(node: LabNode, sig: NodeJS.Signals): Promise<void> {
    if (node.agent === null) return;
    signal(node.agent, sig);
    if (sig === "SIGKILL" || sig === "SIGTERM") {
      const deadline = Date.now() + 10000;
      while (isRunning(node.agent) && Date.now() < deadline) await sleep(20);
    }
  }

  agentUrl(node: LabNode, path: string, port = 9879): string {
    return `http://${node.ip}:${port}${path}`;
  }

  async waitAgentReady(node: LabNode, timeoutMs = 30000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(this.agentUrl(node, "/readyz"));
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      if (node.agent !== null && !isRunning(node.agent))
        throw new Error(`agent of ${node.name} exited: see ${node.agent.log}\n${tail(node.agent.log)}`);
      if (Date.now() > deadline)
        throw new Error(
          `agent of ${node.name} not ready within ${timeoutMs} ms: see ${node.agent?.log}\n${tail(node.agent?.log)}`,
        );
      await sleep(100);
    }
  }

  /** The plugin configuration the node's agent wrote (what a runtime would read). */
  pluginConfig(node: LabNode): Record<string, unknown> {
    const conflist = JSON.parse(readFileSync(join(node.confDir, CNI_CONF_FILE), "utf8")) as SkeinConflist;
    return { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
  }

  /** Runs skein-cni inside the node's namespace exactly as a runtime does (env + stdin). */
  async cni(
    node: LabNode,
    command: "ADD" | "DEL" | "CHECK",
    pod: { containerId: string; netns: string; namespace: string; name: string },
    extra: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    const env = {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: pod.netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: dirname(this.state.cniBin),
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
    };
    const config = { ...this.pluginConfig(node), ...extra };
    const r = await run("nsenter", [`--net=/var/run/netns/${node.netns}`, this.state.cniBin], {
      input: JSON.stringify(config),
      env,
    });
    const out = r.stdout.trim() === "" ? {} : (JSON.parse(r.stdout) as Record<string, unknown>);
    if (r.code !== 0)
      throw new Error(
        `skein-cni ${command} ${pod.namespace}/${pod.name}: ${r.stdout.trim() || r.stderr.trim()}`,
      );
    return out;
  }

  async ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    const body = { metadata: { name, labels: { [NAMESPACE_NAME_LABEL]: name, ...labels } } };
    try {
      await this.core().createNamespace({ body });
    } catch {
      await this.core().patchNamespace(
        { name, body: { metadata: { labels: body.metadata.labels } } },
        mergePatch(),
      );
    }
    if (!this.state.namespaces.includes(name)) this.state.namespaces.push(name);
    this.#save();
  }

  /**
   * Deletes a namespace the way the namespace controller would (the lab API server does not
   * cascade): its pods (CNI DEL, netns, workload), its policies, then the Namespace.
   */
  async deleteNamespace(name: string): Promise<void> {
    for (const pod of this.state.pods.filter((p) => p.namespace === name)) await this.deletePod(pod);
    await this.networking().deleteCollectionNamespacedNetworkPolicy({ namespace: name });
    await this.core().deleteNamespace({ name });
    this.state.namespaces = this.state.namespaces.filter((n) => n !== name);
    this.#save();
  }

  /**
   * Creates a pod: its network namespace, skein-cni ADD in the node, a workload serving the lab
   * ports, and the Pod object with its IP (what the kubelet would report).
   */
  async addPod(opts: {
    namespace: string;
    name: string;
    node: LabNode;
    labels?: Record<string, string>;
    containerPorts?: { name?: string; containerPort: number; protocol?: string }[];
  }): Promise<LabPod> {
    const { namespace, name, node } = opts;
    if (!this.state.namespaces.includes(namespace)) await this.ensureNamespace(namespace);
    const short = createHash("sha256").update(`${namespace}/${name}`).digest("hex").slice(0, 8);
    const netns = `${this.#prefix}-p${short}`;
    const containerId = createHash("sha256")
      .update(`${this.state.id}/${namespace}/${name}/${Date.now()}`)
      .digest("hex");
    await ip(["netns", "add", netns]);
    const pod: LabPod = {
      namespace,
      name,
      node: node.name,
      netns,
      containerId,
      ip: "",
      labels: opts.labels ?? { app: name },
      workload: null,
      control: join(this.dir, `pod-${short}.sock`),
    };
    this.state.pods.push(pod);
    this.#save();
    await ip(["-n", netns, "link", "set", "lo", "up"]);
    const result = await this.cni(node, "ADD", {
      containerId,
      netns: `/var/run/netns/${netns}`,
      namespace,
      name,
    });
    const ipText =
      ((result.ips as { address: string }[] | undefined)?.[0]?.address ?? "").split("/")[0] ?? "";
    if (ipText === "") throw new Error(`skein-cni ADD returned no address: ${JSON.stringify(result)}`);
    pod.ip = ipText;
    pod.workload = this.#startWorkload(`${namespace}/${name}`, `/var/run/netns/${netns}`, pod.control);
    this.#save();
    const body: V1Pod = {
      metadata: { name, namespace, labels: pod.labels },
      spec: {
        nodeName: node.name,
        containers: [
          {
            name: "workload",
            image: "skein-lab-workload",
            ports: opts.containerPorts ?? [
              ...POD_PORTS.tcp.map((p) => ({ containerPort: p, protocol: "TCP", name: `tcp-${p}` })),
              ...POD_PORTS.udp.map((p) => ({ containerPort: p, protocol: "UDP", name: `udp-${p}` })),
            ],
          },
        ],
      },
    };
    await this.core().createNamespacedPod({ namespace, body });
    await this.core().patchNamespacedPodStatus(
      {
        name,
        namespace,
        body: { status: { phase: "Running", podIP: ipText, podIPs: [{ ip: ipText }], hostIP: node.ip } },
      },
      mergePatch(),
    );
    await this.#waitWorkload(pod.control);
    return pod;
  }

  async #waitWorkload(control: string): Promise<void> {
    const deadline = Date.now() + 10000;
    while (!(await isAlive(control))) {
      if (Date.now() > deadline) throw new Error(`workload at ${control} did not start`);
      await sleep(30);
    }
  }

  /** Deletes the Pod object, runs CNI DEL, removes its namespace and workload. */
  async deletePod(pod: LabPod): Promise<void> {
    await this.core()
      .deleteNamespacedPod({ name: pod.name, namespace: pod.namespace })
      .catch(() => undefined);
    if (pod.workload !== null) await stop(pod.workload);
    const node = this.state.nodes.find((n) => n.name === pod.node);
    if (node !== undefined)
      await this.cni(node, "DEL", {
        containerId: pod.containerId,
        netns: `/var/run/netns/${pod.netns}`,
        namespace: pod.namespace,
        name: pod.name,
      }).catch((err: unknown) => {
        this.#log(`DEL ${pod.name}: ${String(err)}`);
      });
    await ip(["netns", "del", pod.netns]).catch(() => undefined);
    this.state.pods = this.state.pods.filter((p) => p !== pod);
    this.#save();
  }

  pod(nsName: string): LabPod {
    const [namespace, name] = nsName.includes("/") ? nsName.split("/") : ["default", nsName];
    const p = this.state.pods.find((x) => x.namespace === namespace && x.name === name);
    if (p === undefined) throw new Error(`no pod ${nsName} in lab ${this.id}`);
    return p;
  }

  /** A probe from inside `from` (a pod, a node, or the world) to host:port. */
  probe(
    from: LabPod | LabNode | "world",
    protocol: ProbeProtocol,
    host: string,
    port: number,
    timeoutMs = 1000,
  ): Promise<ProbeResult> {
    const world = this.state.world;
    if (from === "world" && world === null) throw new Error(`lab ${this.id} has no world namespace`);
    const control = from === "world" ? (world?.control ?? "") : from.control;
    return probeWorkload(control, { protocol, host, port, timeoutMs });
  }

  transfer(
    from: LabPod | LabNode,
    host: string,
    port: number,
    bytes: number,
    writeSize: number,
    timeoutMs = 60000,
  ): Promise<TransferResult> {
    return transferWorkload(from.control, { host, port, bytes, writeSize, timeoutMs });
  }

  async applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    const namespace = policy.metadata?.namespace ?? "default";
    const name = policy.metadata?.name ?? "";
    try {
      await this.networking().readNamespacedNetworkPolicy({ name, namespace });
      await this.networking().replaceNamespacedNetworkPolicy({ name, namespace, body: policy });
    } catch {
      await this.networking().createNamespacedNetworkPolicy({ namespace, body: policy });
    }
  }

  async deletePolicy(namespace: string, name: string): Promise<void> {
    await this.networking().deleteNamespacedNetworkPolicy({ name, namespace });
  }

  /** Removes everything the lab made, in reverse, tolerating what is already gone. */
  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const s = this.state;
    const stopProc = async (what: string, rec: ProcRecord | null | undefined) => {
      if (rec !== null && rec !== undefined) await attempt(what, () => stop(rec));
    };
    const delNetns = (name: string) =>
      attempt(`netns ${name}`, () => ip(["netns", "del", name]).catch(ignoreMissing));
    for (const p of [...s.pods]) {
      await stopProc(`workload ${p.name}`, p.workload);
      const node = s.nodes.find((n) => n.name === p.node);
      if (
        node !== undefined &&
        existsSync(`/var/run/netns/${node.netns}`) &&
        existsSync(join(node.confDir, CNI_CONF_FILE))
      )
        await attempt(`CNI DEL ${p.name}`, () =>
          this.cni(node, "DEL", {
            containerId: p.containerId,
            netns: `/var/run/netns/${p.netns}`,
            namespace: p.namespace,
            name: p.name,
          }),
        );
      await delNetns(p.netns);
    }
    for (const n of s.nodes) {
      await stopProc(`agent ${n.name}`, n.agent);
      await stopProc(`workload ${n.name}`, n.workload);
    }
    await stopProc("apiserver", s.api?.proc);
    await stopProc("world workload", s.world?.workload);
    for (const n of s.nodes) {
      await delNetns(n.netns);
      await attempt(`bpffs ${n.bpffsRoot}`, () => {
        if (existsSync(n.bpffsRoot)) unloadPinnedDatapath(n.bpffsRoot);
        return Promise.resolve();
      });
    }
    await attempt("bpffs lab root", () => Promise.resolve(removeEmptyDir(`/sys/fs/bpf/skein-lab-${s.id}`)));
    if (s.world !== null) await delNetns(s.world.netns);
    const rootLink = s.rootLink;
    if (rootLink !== null)
      await attempt(`link ${rootLink}`, () => ip(["link", "del", rootLink]).catch(ignoreMissing));
    if (s.underlay !== null) await delNetns(s.underlay);
    if (problems.length === 0) rmSync(this.dir, { recursive: true, force: true });
    else this.#save();
    return problems;
  }
}

function ignoreMissing(err: unknown): void {
  const text = String(err);
  if (/No such file|Cannot find device|does not exist|Invalid argument/.test(text)) return;
  throw err instanceof Error ? err : new Error(text);
}

function tail(path: string | undefined, lines = 15): string {
  if (path === undefined || !existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** client-node's way to send a JSON merge patch. */
function mergePatch(): ReturnType<typeof setHeaderOptions> {
  return setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
}

/** An unused 198.18.X.0/24 (benchmarking range, RFC 2544) for the underlay, derived from the id. */
async function pickSubnet(id: string): Promise<string> {
  const used = new Set((await listRoutes()).map((r) => r.dst));
  const labs = Lab.list()
    .map((l) => {
      try {
        return (JSON.parse(readFileSync(join(STATE_ROOT, l, "state.json"), "utf8")) as LabState).subnet;
      } catch {
        return "";
      }
    })
    .filter((x) => x !== "");
  const start = createHash("sha256").update(id).digest()[0] ?? 0;
  for (let i = 0; i < 256; i++) {
    const subnet = `198.18.${(start + i) % 256}.0/24`;
    if (!used.has(subnet) && !labs.includes(subnet)) return subnet;
  }
  throw new Error("no free 198.18.X.0/24 subnet for the lab underlay");
}
