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
 * `Lab` is the entry point; the parts are one concept each: topology.ts (namespaces, bridge,
 * veths, subnet), state.ts (/run/skein-lab/<ID>/state.json, recorded as things are made, so that
 * teardown.ts removes exactly that, even after a crash), apiserver-process.ts, cluster.ts (the
 * Kubernetes objects), nodes.ts (node records, agents, bpffs roots), cni.ts (skein-cni as a runtime
 * runs it), pods.ts (pod sandboxes), workloads.ts (the processes serving and probing in each namespace).
 */
import { randomBytes } from "node:crypto";
import type { CoreV1Api, KubeConfig, NetworkingV1Api, V1NetworkPolicy } from "@kubernetes/client-node";
import { kubeconfigPath, startApiServer } from "./apiserver-process.js";
import { LabCluster, type ContainerPorts } from "./cluster.js";
import { defaultCniBin, invokeCni, pluginConfig, type CniAttachment, type CniCommand } from "./cni.js";
import * as nodes from "./nodes.js";
import { findPod, planPod, unwirePod, wirePod } from "./pods.js";
import type { ProcRecord } from "./procs.js";
import { LabRecord, type LabNode, type LabPod, type LabState } from "./state.js";
import { teardownLab } from "./teardown.js";
import { addNodeNetwork, buildRacks, buildUnderlay, netnsPath, pickSubnet } from "./topology.js";

/** The lab's BGP ASN with racks (a private 2-byte ASN, RFC 6996): nodes and rack router alike. */
export const LAB_BGP_ASN = 64512;
import { probe as probeWorkload, transfer as transferWorkload } from "./workload/workload-client.js";
import type { ProbeProtocol, ProbeResult, TransferResult } from "./workload/workload.js";
import { startWorkload, waitWorkload } from "./workloads.js";

export { DIST } from "./dist.js";
export { defaultCniBin } from "./cni.js";
export { STATE_ROOT, type LabNode, type LabPod, type LabState } from "./state.js";
export { WORLD_IP } from "./topology.js";
export { POD_PORTS } from "./workloads.js";

export interface LabOptions {
  id?: string;
  /** Where skein-cni is (a CNI bin dir layout: the executable itself). */
  cniBin?: string;
  /**
   * One resident CNI server per node (default true), in the node's namespace, its socket in the
   * node's directory; the lab's CNI calls name it in SKEIN_CNI_SOCKET.
   */
  cniServer?: boolean;
  /** The API server's --service-cidr (ClusterIPs); its default 10.96.0.0/16 when absent. */
  serviceCidr?: string;
  /**
   * Racks (native routing with BGP): that many underlay subnets joined by a router whose BIRD is
   * the route reflector; nodes alternate racks and their agents peer with it (ASN `bgpAsn`).
   */
  racks?: number;
  bgpAsn?: number;
  log?: (line: string) => void;
}

export class Lab {
  readonly state: LabState;
  readonly dir: string;
  readonly #record: LabRecord;
  readonly #cluster: LabCluster;
  readonly #log: (line: string) => void;

  private constructor(record: LabRecord, log: (line: string) => void) {
    this.#record = record;
    this.state = record.state;
    this.dir = record.dir;
    this.#cluster = new LabCluster(this.kubeconfigPath);
    this.#log = log;
  }

  get id(): string {
    return this.state.id;
  }

  get kubeconfigPath(): string {
    return kubeconfigPath(this.dir);
  }

  /** A lab with no nodes yet: underlay, world, API server. Throws, after removing what it made. */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const id = options.id ?? randomBytes(3).toString("hex");
    LabRecord.reserve(id);
    const subnet = await pickSubnet(id, LabRecord.subnets());
    const record = new LabRecord({
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
      cniServer: options.cniServer ?? true,
    });
    const lab = new Lab(record, options.log ?? (() => undefined));
    try {
      const world = await buildUnderlay(record);
      if (options.racks !== undefined && options.racks > 1)
        await buildRacks(record, options.racks, options.bgpAsn ?? LAB_BGP_ASN);
      world.workload = startWorkload(record.dir, "world", netnsPath(world.netns), world.control);
      record.save();
      await startApiServer(
        record,
        options.serviceCidr === undefined ? {} : { serviceCidr: options.serviceCidr },
      );
      await lab.#cluster.createDefaultNamespace();
      return lab;
    } catch (err) {
      await lab.teardown().catch(() => undefined);
      throw err;
    }
  }

  /** The lab recorded under `id`. Throws when there is none. */
  static open(id: string, log: (line: string) => void = () => undefined): Lab {
    return new Lab(LabRecord.open(id), log);
  }

  /** Ids of every lab with a state file. */
  static list(): string[] {
    return LabRecord.list();
  }

  kubeConfig(): KubeConfig {
    return this.#cluster.kubeConfig();
  }

  core(): CoreV1Api {
    return this.#cluster.core();
  }

  networking(): NetworkingV1Api {
    return this.#cluster.networking();
  }

  /** Adds a node: namespace on the underlay, Node object, agent. Resolves when the agent is ready. */
  async addNode(
    opts: { name?: string; podCidr?: string; waitReady?: boolean; agentArgs?: string[] } = {},
  ): Promise<LabNode> {
    const node = nodes.planNode(this.#record, {
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.podCidr === undefined ? {} : { podCidr: opts.podCidr }),
    });
    await addNodeNetwork(this.#record, node);
    node.workload = startWorkload(this.dir, `node/${node.name}`, netnsPath(node.netns), node.control);
    this.#record.save();
    if (node.cniSocket !== undefined) await nodes.startCniServer(this.#record, node);
    await this.#cluster.createNode(node);
    this.startAgent(node, opts.agentArgs ?? []);
    if (opts.waitReady !== false) await this.waitAgentReady(node);
    return node;
  }

  /** Starts (or restarts) the node's agent process. */
  startAgent(node: LabNode, extraArgs: string[] = []): ProcRecord {
    return nodes.startAgent(this.#record, node, this.kubeconfigPath, extraArgs);
  }

  /** Starts (or restarts) the node's resident CNI server; resolves once it listens. */
  startCniServer(node: LabNode): Promise<ProcRecord> {
    return nodes.startCniServer(this.#record, node);
  }

  /** Stops the node's resident CNI server by PID and removes its socket. */
  stopCniServer(node: LabNode): Promise<void> {
    return nodes.stopCniServer(node);
  }

  /** Sends `sig` to the node's agent; with SIGKILL/SIGTERM waits for it to be gone. */
  signalAgent(node: LabNode, sig: NodeJS.Signals): Promise<void> {
    return nodes.signalAgent(node, sig);
  }

  agentUrl(node: LabNode, path: string, port?: number): string {
    return nodes.agentUrl(node, path, port);
  }

  waitAgentReady(node: LabNode, timeoutMs?: number): Promise<void> {
    return nodes.waitAgentReady(node, timeoutMs);
  }

  /** The plugin configuration the node's agent wrote (what a runtime would read). */
  pluginConfig(node: LabNode): Record<string, unknown> {
    return pluginConfig(node);
  }

  /** Runs skein-cni inside the node's namespace exactly as a runtime does (env + stdin). */
  cni(
    node: LabNode,
    command: CniCommand,
    pod: CniAttachment,
    extra: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    return invokeCni(this.state.cniBin, node, command, pod, extra);
  }

  async ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    await this.#cluster.upsertNamespace(name, labels);
    if (!this.state.namespaces.includes(name)) this.state.namespaces.push(name);
    this.#record.save();
  }

  /**
   * Deletes a namespace the way the namespace controller would (the lab API server does not
   * cascade): its pods (CNI DEL, netns, workload), its policies, then the Namespace.
   */
  async deleteNamespace(name: string): Promise<void> {
    for (const pod of this.state.pods.filter((p) => p.namespace === name)) await this.deletePod(pod);
    await this.#cluster.deleteNamespace(name);
    this.state.namespaces = this.state.namespaces.filter((n) => n !== name);
    this.#record.save();
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
    containerPorts?: ContainerPorts;
  }): Promise<LabPod> {
    const { namespace, name, node } = opts;
    if (!this.state.namespaces.includes(namespace)) await this.ensureNamespace(namespace);
    const pod = planPod(this.#record, opts);
    await wirePod(this.#record, pod, node);
    pod.workload = startWorkload(this.dir, `${namespace}/${name}`, netnsPath(pod.netns), pod.control);
    this.#record.save();
    await this.#cluster.createPod(pod, node, opts.containerPorts);
    await waitWorkload(pod.control);
    return pod;
  }

  /** Deletes the Pod object, runs CNI DEL, removes its namespace and workload. */
  async deletePod(pod: LabPod): Promise<void> {
    await this.#cluster.deletePod(pod);
    await unwirePod(this.#record, pod, this.#log);
  }

  pod(nsName: string): LabPod {
    return findPod(this.state, nsName);
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

  applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    return this.#cluster.applyPolicy(policy);
  }

  deletePolicy(namespace: string, name: string): Promise<void> {
    return this.#cluster.deletePolicy(namespace, name);
  }

  /** Removes everything the lab made, in reverse, tolerating what is already gone. */
  teardown(): Promise<string[]> {
    return teardownLab(this.#record);
  }
}
