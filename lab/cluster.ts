/**
 * The lab's Kubernetes objects, written through client-node to the lab API server: what the
 * kubelet (Nodes, Pods and their status), the namespace controller and a user would write.
 */
import {
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1ContainerPort,
  type V1NetworkPolicy,
  type V1Pod,
} from "@kubernetes/client-node";
import { NAMESPACE_NAME_LABEL } from "../policy/identity.js";
import type { LabNode, LabPod } from "./state.js";
import { POD_PORTS } from "./workloads.js";

/** A pod's container ports as the Pod object lists them. */
export type ContainerPorts = { name?: string; containerPort: number; protocol?: string }[];

/** Clients of one lab API server. The kubeconfig is read on first use (it exists once the server does). */
export class LabCluster {
  readonly #kubeconfigPath: string;
  #kc: KubeConfig | undefined;

  constructor(kubeconfigPath: string) {
    this.#kubeconfigPath = kubeconfigPath;
  }

  kubeConfig(): KubeConfig {
    if (this.#kc === undefined) {
      this.#kc = new KubeConfig();
      this.#kc.loadFromFile(this.#kubeconfigPath);
    }
    return this.#kc;
  }

  core(): CoreV1Api {
    return this.kubeConfig().makeApiClient(CoreV1Api);
  }

  networking(): NetworkingV1Api {
    return this.kubeConfig().makeApiClient(NetworkingV1Api);
  }

  /** The `default` namespace, as a real cluster has it (an existing one is left alone). */
  async createDefaultNamespace(): Promise<void> {
    await this.core()
      .createNamespace({ body: { metadata: { name: "default" } } })
      .catch(() => undefined);
  }

  /** The Node object of `node`: pod CIDR, InternalIP and hostname, as the kubelet registers it. */
  async createNode(node: LabNode): Promise<void> {
    await this.core().createNode({
      body: {
        metadata: { name: node.name, labels: { "kubernetes.io/hostname": node.name } },
        spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
        status: {
          addresses: [
            { type: "InternalIP", address: node.ip },
            { type: "Hostname", address: node.name },
          ],
        },
      },
    });
  }

  /** Creates namespace `name` with the name label and `labels`, or sets those labels on it. */
  async upsertNamespace(name: string, labels: Record<string, string>): Promise<void> {
    const body = { metadata: { name, labels: { [NAMESPACE_NAME_LABEL]: name, ...labels } } };
    try {
      await this.core().createNamespace({ body });
    } catch {
      await this.core().patchNamespace(
        { name, body: { metadata: { labels: body.metadata.labels } } },
        mergePatch(),
      );
    }
  }

  /** Deletes namespace `name`'s policies, then the Namespace (its pods are the caller's). */
  async deleteNamespace(name: string): Promise<void> {
    await this.networking().deleteCollectionNamespacedNetworkPolicy({ namespace: name });
    await this.core().deleteNamespace({ name });
  }

  /**
   * The Pod object of `pod`, bound to `node`, serving `containerPorts` (the workload's TCP and UDP
   * ports when not given), then its status as the kubelet reports it: Running and Ready with its IP.
   */
  async createPod(pod: LabPod, node: LabNode, containerPorts?: ContainerPorts): Promise<void> {
    const { namespace, name } = pod;
    const ports: V1ContainerPort[] = containerPorts ?? [
      ...POD_PORTS.tcp.map((p) => ({ containerPort: p, protocol: "TCP", name: `tcp-${p}` })),
      ...POD_PORTS.udp.map((p) => ({ containerPort: p, protocol: "UDP", name: `udp-${p}` })),
    ];
    const body: V1Pod = {
      metadata: { name, namespace, labels: pod.labels },
      spec: {
        nodeName: node.name,
        containers: [{ name: "workload", image: "skein-lab-workload", ports }],
      },
    };
    await this.core().createNamespacedPod({ namespace, body });
    await this.core().patchNamespacedPodStatus(
      {
        name,
        namespace,
        body: {
          status: {
            phase: "Running",
            podIP: pod.ip,
            podIPs: [{ ip: pod.ip }],
            hostIP: node.ip,
            // Ready, as the kubelet reports once the containers run: the EndpointSlice controller
            // publishes only ready pods as ready endpoints.
            conditions: [
              { type: "Ready", status: "True" },
              { type: "ContainersReady", status: "True" },
            ],
          },
        },
      },
      mergePatch(),
    );
  }

  /** Deletes the Pod object of `pod`; one that is gone already counts as deleted. */
  async deletePod(pod: LabPod): Promise<void> {
    await this.core()
      .deleteNamespacedPod({ name: pod.name, namespace: pod.namespace })
      .catch(() => undefined);
  }

  /** Creates `policy`, or replaces the one of that namespace and name. */
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
}

/** client-node's way to send a JSON merge patch. */
function mergePatch(): ReturnType<typeof setHeaderOptions> {
  return setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
}
