/**
 * The smoke test's driver for the one-machine lab: pods are lab pods (a network namespace wired by
 * the real skein-cni, a workload process serving the lab ports), probes run inside them through
 * the workload's control socket, policies go to the lab's API server, which every agent watches.
 */
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import type { SmokeDriver, SmokePod, SmokePodSpec, SmokeProtocol } from "./smoke/smoke.js";
import type { Lab } from "./lab.js";

/** Drives `lab`. The lab stays the caller's: the driver never tears it down. */
export class LabSmokeDriver implements SmokeDriver {
  readonly #lab: Lab;

  constructor(lab: Lab) {
    this.#lab = lab;
  }

  nodes(): Promise<string[]> {
    return Promise.resolve(this.#lab.state.nodes.map((n) => n.name));
  }

  /** Adds the pods one by one (skein-cni ADD on their node). Throws when a node is unknown. */
  async createPods(namespace: string, pods: SmokePodSpec[]): Promise<SmokePod[]> {
    await this.#lab.ensureNamespace(namespace);
    const out: SmokePod[] = [];
    for (const spec of pods) {
      const node = this.#lab.state.nodes.find((n) => n.name === spec.node);
      if (node === undefined) throw new Error(`lab ${this.#lab.id} has no node ${spec.node}`);
      const pod = await this.#lab.addPod({ namespace, name: spec.name, node, labels: spec.labels });
      out.push({ name: pod.name, ip: pod.ip, node: pod.node });
    }
    return out;
  }

  /** Throws when `from` is not a lab pod or its workload does not answer. */
  async probe(
    from: string,
    toIp: string,
    port: number,
    protocol: SmokeProtocol,
    timeoutMs: number,
  ): Promise<boolean> {
    const result = await this.#lab.probe(this.#lab.pod(from), protocol, toIp, port, timeoutMs);
    return result.ok;
  }

  applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    return this.#lab.applyPolicy(policy);
  }

  /** The namespace with its pods and policies (Lab.deleteNamespace). */
  deleteNamespace(namespace: string): Promise<void> {
    return this.#lab.deleteNamespace(namespace);
  }
}
