/**
 * The smoke test's driver for a real cluster, through kubectl: pods run the Skein image with the
 * lab workload (lab/workload/workload.ts) as their command, pinned to their node with `nodeName`;
 * probes are `kubectl exec` of lab/workload/probe-cli.ts inside the source pod, which asks that pod's
 * workload to connect. Every kubectl call goes through an injectable `exec`, so the command lines
 * are testable without a cluster.
 */
import { execFile } from "node:child_process";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { EXIT_UNREACHED } from "../workload/probe-cli.js";
import {
  SMOKE_PORTS,
  type SmokeDriver,
  type SmokePod,
  type SmokePodSpec,
  type SmokeProtocol,
} from "./smoke.js";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file args` with `input` on stdin; resolves with the exit code (never rejects for a non-zero one). */
export type Exec = (
  file: string,
  args: string[],
  options: { input?: string; timeoutMs: number },
) => Promise<ExecResult>;

export interface KubectlDriverOptions {
  /** The Skein image (it holds the workload and the probe CLI). */
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** kubectl executable; "kubectl" from PATH by default. */
  kubectl?: string;
  kubeconfig?: string;
  context?: string;
  /** Where the image keeps Skein's compiled JavaScript. */
  distDir?: string;
  /** How long pods may take to become ready. */
  podReadyTimeoutMs?: number;
  exec?: Exec;
}

/** The workload's control socket inside each smoke pod. */
export const CONTROL_SOCKET = "/tmp/skein-workload.sock";
/** The image deploy/skein.yaml runs (and the Vagrant lab builds). */
export const DEFAULT_IMAGE = "localhost/skein:0.1.0";
/** Where the Containerfile puts dist/. */
export const IMAGE_DIST_DIR = "/opt/skein/dist";
/** Label on everything the smoke test creates. */
export const SMOKE_LABEL = { "app.kubernetes.io/part-of": "skein-smoke" } as const;

/** child_process.execFile with stdin input and a kill timeout. */
export const defaultExec: Exec = (file, args, options) =>
  new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { maxBuffer: 32 << 20, timeout: options.timeoutMs, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        const killed =
          err !== null && err.killed === true ? `\n${file}: killed after ${options.timeoutMs} ms` : "";
        const spawnError = err !== null && typeof err.code === "string" ? `\n${file}: ${err.message}` : "";
        resolve({ code, stdout, stderr: stderr + killed + spawnError });
      },
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input ?? "");
  });

/**
 * `policy` as the API server's JSON: client-node's model names ingress peers `_from` (its serializer
 * renames them on the way out); kubectl reads `from`, and would take a rule with `_from` as "from
 * anywhere" after dropping the unknown key.
 */
export function wireNetworkPolicy(policy: V1NetworkPolicy): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(policy)) as {
    spec?: { ingress?: Record<string, unknown>[] };
  } & Record<string, unknown>;
  for (const rule of plain.spec?.ingress ?? []) {
    if (!("_from" in rule)) continue;
    rule.from = rule._from;
    delete rule._from;
  }
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", ...plain };
}

interface NodeJson {
  metadata: { name: string };
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

interface PodJson {
  metadata: { name: string };
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string };
}

/** A SmokeDriver on kubectl. Holds no resources of its own. */
export class KubectlDriver implements SmokeDriver {
  readonly #o: Required<Omit<KubectlDriverOptions, "kubeconfig" | "context">> &
    Pick<KubectlDriverOptions, "kubeconfig" | "context">;

  constructor(options: KubectlDriverOptions) {
    this.#o = {
      imagePullPolicy: "IfNotPresent",
      kubectl: "kubectl",
      distDir: IMAGE_DIST_DIR,
      podReadyTimeoutMs: 180_000,
      exec: defaultExec,
      ...options,
    };
  }

  /** The kubectl arguments every call starts with. */
  get baseArgs(): string[] {
    return [
      ...(this.#o.kubeconfig === undefined ? [] : ["--kubeconfig", this.#o.kubeconfig]),
      ...(this.#o.context === undefined ? [] : ["--context", this.#o.context]),
    ];
  }

  async #kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.#o.exec(this.#o.kubectl, [...this.baseArgs, ...args], {
      ...(opts.input === undefined ? {} : { input: opts.input }),
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
  }

  async #kubectlOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.#kubectl(args, opts);
    if (r.code !== 0)
      throw new Error(
        `kubectl ${args.join(" ")}: exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 2000)}`,
      );
    return r.stdout;
  }

  /** Ready, schedulable nodes; nodes without NoSchedule/NoExecute taints (workers) first. */
  async nodes(): Promise<string[]> {
    const list = JSON.parse(await this.#kubectlOk(["get", "nodes", "-o", "json"])) as { items: NodeJson[] };
    const ready = list.items.filter(
      (n) =>
        n.spec?.unschedulable !== true &&
        n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true,
    );
    const tainted = (n: NodeJson): number =>
      (n.spec?.taints ?? []).some((t) => t.effect === "NoSchedule" || t.effect === "NoExecute") ? 1 : 0;
    return ready
      .sort((a, b) => tainted(a) - tainted(b) || a.metadata.name.localeCompare(b.metadata.name))
      .map((n) => n.metadata.name);
  }

  /** The Pod object of one smoke pod: the workload as an unprivileged, non-root container. */
  podManifest(namespace: string, spec: SmokePodSpec): Record<string, unknown> {
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: spec.name, namespace, labels: { ...SMOKE_LABEL, ...spec.labels } },
      spec: {
        nodeName: spec.node,
        // Placed by nodeName, past the scheduler; the toleration covers NoExecute taints the kubelet enforces.
        tolerations: [{ operator: "Exists" }],
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 1,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65534,
          runAsGroup: 65534,
          seccompProfile: { type: "RuntimeDefault" },
        },
        containers: [
          {
            name: "workload",
            image: this.#o.image,
            imagePullPolicy: this.#o.imagePullPolicy,
            command: [
              "node",
              `${this.#o.distDir}/lab/workload/workload.js`,
              "--name",
              `${namespace}/${spec.name}`,
              "--control",
              CONTROL_SOCKET,
              "--tcp",
              String(SMOKE_PORTS.tcp),
              "--udp",
              String(SMOKE_PORTS.udp),
            ],
            ports: [
              { name: "tcp", containerPort: SMOKE_PORTS.tcp, protocol: "TCP" },
              { name: "udp", containerPort: SMOKE_PORTS.udp, protocol: "UDP" },
            ],
            // The kubelet connects from the node: node → pod works before the pod counts as ready.
            readinessProbe: { tcpSocket: { port: SMOKE_PORTS.tcp }, periodSeconds: 1, failureThreshold: 3 },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
            resources: { requests: { cpu: "10m", memory: "48Mi" } },
          },
        ],
        volumes: [{ name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } }],
      },
    };
  }

  /** Applies the namespace and pods in one `kubectl apply`, waits for readiness, reads their IPs. */
  async createPods(namespace: string, pods: SmokePodSpec[]): Promise<SmokePod[]> {
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels: { ...SMOKE_LABEL } } },
        ...pods.map((p) => this.podManifest(namespace, p)),
      ],
    };
    await this.#kubectlOk(["apply", "-f", "-"], { input: JSON.stringify(list) });
    const waitS = Math.ceil(this.#o.podReadyTimeoutMs / 1000);
    const wait = await this.#kubectl(
      ["wait", "--for=condition=Ready", "pod", "--all", "-n", namespace, `--timeout=${waitS}s`],
      { timeoutMs: this.#o.podReadyTimeoutMs + 30_000 },
    );
    if (wait.code !== 0) {
      const state = await this.#kubectl(["get", "pods", "-n", namespace, "-o", "wide"]);
      throw new Error(
        `pods in ${namespace} not ready within ${waitS} s: ${wait.stderr.trim()}\n${state.stdout.trim()}`,
      );
    }
    const got = JSON.parse(await this.#kubectlOk(["get", "pods", "-n", namespace, "-o", "json"])) as {
      items: PodJson[];
    };
    return pods.map((p) => {
      const item = got.items.find((i) => i.metadata.name === p.name);
      if (item === undefined) throw new Error(`pod ${namespace}/${p.name} vanished`);
      return { name: p.name, ip: item.status?.podIP ?? "", node: item.spec?.nodeName ?? "" };
    });
  }

  /** The kubectl arguments of one probe (exposed for tests). */
  probeArgs(from: string, toIp: string, port: number, protocol: SmokeProtocol, timeoutMs: number): string[] {
    const [namespace, name] = from.split("/");
    if (namespace === undefined || name === undefined || namespace === "" || name === "")
      throw new Error(`probe source must be namespace/pod, got ${JSON.stringify(from)}`);
    return [
      "exec",
      "-n",
      namespace,
      name,
      "-c",
      "workload",
      "--",
      "node",
      `${this.#o.distDir}/lab/workload/probe-cli.js`,
      "--control",
      CONTROL_SOCKET,
      "--protocol",
      protocol,
      "--host",
      toIp,
      "--port",
      String(port),
      "--timeout-ms",
      String(timeoutMs),
    ];
  }

  /**
   * True when the workload in `from` reached the target. False only when the probe CLI ran and
   * reported no answer; throws when kubectl or the CLI failed (that is no evidence of a denial).
   */
  async probe(
    from: string,
    toIp: string,
    port: number,
    protocol: SmokeProtocol,
    timeoutMs: number,
  ): Promise<boolean> {
    const r = await this.#kubectl(this.probeArgs(from, toIp, port, protocol, timeoutMs), {
      timeoutMs: timeoutMs + 30_000,
    });
    let answer: { ok?: unknown } | undefined;
    try {
      answer = JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as { ok?: unknown };
    } catch {
      answer = undefined;
    }
    if (r.code === 0 && answer?.ok === true) return true;
    if (r.code === EXIT_UNREACHED && answer?.ok === false) return false;
    throw new Error(
      `probe from ${from}: kubectl exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 1000)}`,
    );
  }

  async applyPolicy(policy: V1NetworkPolicy): Promise<void> {
    await this.#kubectlOk(["apply", "-f", "-"], { input: JSON.stringify(wireNetworkPolicy(policy)) });
  }

  /** kubectl apply of a ClusterIP Service on the smoke ports; pods resolve it as `name.namespace`. */
  async createService(namespace: string, name: string, selector: Record<string, string>): Promise<string> {
    await this.#kubectlOk(["apply", "-f", "-"], {
      input: JSON.stringify(smokeService(namespace, name, selector)),
    });
    return `${name}.${namespace}`;
  }

  async deleteNamespace(namespace: string): Promise<void> {
    await this.#kubectlOk(
      ["delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=180s"],
      { timeoutMs: 210_000 },
    );
  }
}

/**
 * The smoke test's Service as the API server reads it: ClusterIP, TCP and UDP on SMOKE_PORTS. Its
 * short DNS name `name.namespace` resolves through the pod's search path on any cluster domain.
 */
export function smokeService(namespace: string, name: string, selector: Record<string, string>): object {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: {
      type: "ClusterIP",
      selector,
      ports: [
        { name: "tcp", protocol: "TCP", port: SMOKE_PORTS.tcp, targetPort: SMOKE_PORTS.tcp },
        { name: "udp", protocol: "UDP", port: SMOKE_PORTS.udp, targetPort: SMOKE_PORTS.udp },
      ],
    },
  };
}
