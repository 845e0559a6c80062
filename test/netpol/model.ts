/**
 * The pod topology of the upstream Kubernetes e2e NetworkPolicy suite
 * (kubernetes/kubernetes test/e2e/network/netpol/model.go): namespaces x, y, z, pods a, b, c in each,
 * every pod serving ports 80 and 81 on TCP, UDP and SCTP, one container per (port, protocol).
 *
 * Upstream generates namespace names; we use the fixed names x, y, z. Pure data: nothing here talks
 * to a cluster, and nothing here throws.
 */

import type { V1Container, V1ContainerPort, V1Namespace, V1Pod } from "@kubernetes/client-node";

export type Protocol = "TCP" | "UDP" | "SCTP";

export interface NetpolModel {
  namespaces: string[];
  pods: string[];
  ports: number[];
  protocols: Protocol[];
}

export const MODEL: NetpolModel = Object.freeze({
  namespaces: ["x", "y", "z"],
  pods: ["a", "b", "c"],
  ports: [80, 81],
  protocols: ["TCP", "UDP", "SCTP"],
}) as NetpolModel;

/** Label key upstream puts on every pod (`pod: <name>`). */
export const POD_LABEL = "pod";
/** The label the API server adds to every namespace (NamespaceDefaultLabelName, GA in 1.22). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";
/** The label older upstream models put on namespaces (`ns: <name>`); kept for selectors that use it. */
export const NAMESPACE_LABEL = "ns";

/** The agnhost image upstream's model runs (imageutils.Agnhost); any image serving the ports will do. */
export const AGNHOST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53";

/**
 * Skein's own addition to the model: one extra TCP port name, `skein-web`, that means a different
 * number on different pods: port 80 on every pod named `a`, port 81 on every pod named `b`, absent on
 * pods named `c`. The entry repeats a port already listed under its upstream name (`serve-80-tcp`,
 * `serve-81-tcp`); the API server accepts that (it only warns about duplicate port definitions), and
 * named-port resolution must then find the port under either name. No upstream case uses the name.
 */
export const SKEIN_NAMED_PORT = "skein-web";
export const SKEIN_NAMED_PORT_NUMBERS: Readonly<Record<string, number>> = Object.freeze({ a: 80, b: 81 });

/** "ns/pod" strings for every pod of the model, in upstream's order (x/a, x/b, x/c, y/a, …). */
export const ALL_PODS: readonly string[] = Object.freeze(
  MODEL.namespaces.flatMap((ns) => MODEL.pods.map((pod) => `${ns}/${pod}`)),
);

export function podKey(namespace: string, pod: string): string {
  return `${namespace}/${pod}`;
}

/** Splits "ns/pod"; throws TypeError on anything else. */
export function splitPodKey(key: string): { namespace: string; pod: string } {
  const parts = key.split("/");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "")
    throw new TypeError(`expected ns/pod, got ${key}`);
  return { namespace: parts[0]!, pod: parts[1]! };
}

export function namespaceLabels(namespace: string): Record<string, string> {
  return { [NAMESPACE_LABEL]: namespace, [NAMESPACE_NAME_LABEL]: namespace };
}

export function podLabels(pod: string): Record<string, string> {
  return { [POD_LABEL]: pod };
}

/** Upstream's container port name: `serve-<port>-<protocol in lower case>`. */
export function servePortName(port: number, protocol: Protocol): string {
  return `serve-${port}-${protocol.toLowerCase()}`;
}

/** Upstream's container name: `cont-<port>-<protocol in lower case>`. */
export function containerName(port: number, protocol: Protocol): string {
  return `cont-${port}-${protocol.toLowerCase()}`;
}

/** The container ports a model pod declares, across all its containers (what named ports resolve against). */
export function modelContainerPorts(
  pod: string,
  protocols: readonly Protocol[] = MODEL.protocols,
): { name: string; port: number; protocol: Protocol }[] {
  return modelContainers(pod, protocols).flatMap((c) =>
    (c.ports ?? []).map((p) => ({
      name: p.name ?? "",
      port: p.containerPort,
      protocol: p.protocol as Protocol,
    })),
  );
}

function serverCommand(
  port: number,
  protocol: Protocol,
): { command: string[]; env: { name: string; value: string }[] } {
  switch (protocol) {
    case "TCP":
      return {
        command: ["/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", String(port)],
        env: [],
      };
    case "UDP":
      return {
        command: ["/agnhost", "serve-hostname", "--udp", "--http=false", "--port", String(port)],
        env: [],
      };
    case "SCTP":
      return { command: ["/agnhost", "porter"], env: [{ name: `SERVE_SCTP_PORT_${port}`, value: "foo" }] };
  }
}

function modelContainers(pod: string, protocols: readonly Protocol[], image = AGNHOST_IMAGE): V1Container[] {
  const containers: V1Container[] = [];
  for (const port of MODEL.ports) {
    for (const protocol of protocols) {
      const ports: V1ContainerPort[] = [
        { containerPort: port, name: servePortName(port, protocol), protocol },
      ];
      if (protocol === "TCP" && SKEIN_NAMED_PORT_NUMBERS[pod] === port) {
        ports.push({ containerPort: port, name: SKEIN_NAMED_PORT, protocol });
      }
      const { command, env } = serverCommand(port, protocol);
      containers.push({
        name: containerName(port, protocol),
        image,
        imagePullPolicy: "IfNotPresent",
        command,
        env,
        securityContext: {},
        ports,
      });
    }
  }
  return containers;
}

export interface ModelObjectsOptions {
  /** Pods are spread over these nodes round-robin in ALL_PODS order; default ["node-1"]. */
  nodeNames?: string[];
  /** Protocols to serve (one container per port and protocol); default all three. A kernel without SCTP sockets wants ["TCP", "UDP"]. */
  protocols?: Protocol[];
  /** Server image; default AGNHOST_IMAGE. */
  image?: string;
}

/**
 * The namespaces and pods of the model as Kubernetes objects, fresh on every call (callers may mutate).
 * Pods carry labels, containers with upstream's port names and `spec.nodeName`; no status (the runner
 * fills pod IPs). Throws RangeError when `nodeNames` is empty.
 */
export function modelObjects(options: ModelObjectsOptions = {}): {
  namespaces: V1Namespace[];
  pods: V1Pod[];
} {
  const nodeNames = options.nodeNames ?? ["node-1"];
  if (nodeNames.length === 0) throw new RangeError("modelObjects: nodeNames is empty");
  const protocols = options.protocols ?? MODEL.protocols;
  const namespaces: V1Namespace[] = MODEL.namespaces.map((name) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: namespaceLabels(name) },
  }));
  const pods: V1Pod[] = ALL_PODS.map((key, i) => {
    const { namespace, pod } = splitPodKey(key);
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod, namespace, labels: podLabels(pod) },
      spec: {
        nodeName: nodeNames[i % nodeNames.length]!,
        terminationGracePeriodSeconds: 0,
        containers: modelContainers(pod, protocols, options.image),
      },
    };
  });
  return { namespaces, pods };
}
