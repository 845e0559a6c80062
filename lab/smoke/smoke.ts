/**
 * The smoke test every Skein environment runs, the one-machine lab and a real cluster alike: pods
 * on two nodes reach each other across nodes (and, where the environment has Services and cluster
 * DNS, through a Service resolved by name, TCP and UDP over a connected socket, as resolvers use);
 * a NetworkPolicy then denies one flow and allows another, also through the Service, where it is
 * judged on the backend pod; everything it made is deleted. It talks to the environment only through a
 * `SmokeDriver`, so the lab (lab/smoke-driver.ts) and kubectl (kubectl-driver.ts) run the very
 * same checks.
 */
import { randomBytes } from "node:crypto";
import type { V1NetworkPolicy } from "@kubernetes/client-node";

/** Protocols the smoke test probes with. */
export type SmokeProtocol = "TCP" | "UDP";

/** A pod the smoke test asks for. */
export interface SmokePodSpec {
  name: string;
  node: string;
  labels: Record<string, string>;
}

/** A pod the driver made, with the address the network gave it. */
export interface SmokePod {
  name: string;
  ip: string;
  node: string;
}

/**
 * What an environment must offer. Every method throws on a failure of the environment itself (an
 * API error, a pod that never starts); `probe` resolves false only when the connection did not go
 * through, which is what the deny checks look for.
 */
export interface SmokeDriver {
  /** Names of nodes pods can be placed on, best candidates first. */
  nodes(): Promise<string[]>;
  /**
   * Creates `namespace` (if needed) and the pods, each pinned to its node and serving
   * `SMOKE_PORTS`. Resolves once every pod has an address and serves.
   */
  createPods(namespace: string, pods: SmokePodSpec[]): Promise<SmokePod[]>;
  /** One connection attempt from inside pod `from` ("namespace/name") to `toIp:port`. */
  probe(
    from: string,
    toIp: string,
    port: number,
    protocol: SmokeProtocol,
    timeoutMs: number,
  ): Promise<boolean>;
  /** Creates or replaces the policy (its metadata carries namespace and name). */
  applyPolicy(policy: V1NetworkPolicy): Promise<void>;
  /** Deletes the namespace with everything in it; resolves when it is gone. */
  deleteNamespace(namespace: string): Promise<void>;
  /**
   * Optional, for environments with Services and cluster DNS (a real cluster): creates a ClusterIP
   * Service `name` in `namespace` selecting `selector` on SMOKE_PORTS (TCP and UDP, same target
   * ports) and resolves with the host name pods reach it by through cluster DNS. Without it the
   * Service checks are left out (the lab has no cluster DNS; its Service tests probe ClusterIPs).
   */
  createService?(namespace: string, name: string, selector: Record<string, string>): Promise<string>;
}

/** The Service the smoke test puts in front of its server pod. */
export const SMOKE_SERVICE = "smoke-server";

/** The ports every smoke pod serves (the lab's workload serves these among others). */
export const SMOKE_PORTS = { tcp: 8080, udp: 5353 } as const;

/** Labels the smoke test gives its pods: `app` is what the policy selects on. */
export const SMOKE_APPS = { server: "smoke-server", client: "smoke-client", other: "smoke-other" } as const;

export interface SmokeCheck {
  /** Stable, human-readable name, e.g. "cross-node TCP client → server". */
  name: string;
  phase: "setup" | "connectivity" | "policy" | "cleanup";
  ok: boolean;
  /** Wall time of the check, including retries while the cluster converges. */
  ms: number;
  /** Probes made before the check settled (0 for checks that are not probes). */
  attempts: number;
  detail: string;
}

export interface SmokeReport {
  ok: boolean;
  namespace: string;
  nodes: string[];
  pods: SmokePod[];
  checks: SmokeCheck[];
  startedAt: string;
  totalMs: number;
}

export interface SmokeOptions {
  /** Namespace to use; a fresh `skein-smoke-<random>` by default. */
  namespace?: string;
  /** How long a check may wait for the cluster to converge (policy propagation, routes). */
  convergeTimeoutMs?: number;
  /** Timeout of one probe. */
  probeTimeoutMs?: number;
  /** Pause between probes of a check that has not settled. */
  retryIntervalMs?: number;
  /** A deny check passes after this many failed probes in a row. */
  deniedAfter?: number;
  /** Leave the namespace in place (debugging). */
  keep?: boolean;
}

type Expectation = "reach" | "denied";

interface Flow {
  name: string;
  from: SmokePod;
  to: SmokePod;
  port: number;
  protocol: SmokeProtocol;
}

/**
 * The policy the smoke test applies: server pods accept TCP 8080 from client pods, nothing else.
 * A client-node model object: ingress peers sit under `_from` (see wireNetworkPolicy in
 * kubectl-driver.ts for the JSON the API server reads).
 */
export function smokePolicy(namespace: string): V1NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "smoke-server-ingress", namespace },
    spec: {
      podSelector: { matchLabels: { app: SMOKE_APPS.server } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          _from: [{ podSelector: { matchLabels: { app: SMOKE_APPS.client } } }],
          ports: [{ protocol: "TCP", port: SMOKE_PORTS.tcp }],
        },
      ],
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Runs the smoke test against `driver`, logging progress lines to `log`. Never throws for a
 * failed check or a driver error: the report says what failed. The namespace is deleted at the end
 * unless `options.keep`, also after failures.
 */
export async function runSmoke(
  driver: SmokeDriver,
  log: (line: string) => void = () => undefined,
  options: SmokeOptions = {},
): Promise<SmokeReport> {
  const started = performance.now();
  const namespace = options.namespace ?? `skein-smoke-${randomBytes(3).toString("hex")}`;
  const convergeMs = options.convergeTimeoutMs ?? 60_000;
  const probeMs = options.probeTimeoutMs ?? 1500;
  const retryMs = options.retryIntervalMs ?? 250;
  const deniedAfter = options.deniedAfter ?? 2;
  const report: SmokeReport = {
    ok: false,
    namespace,
    nodes: [],
    pods: [],
    checks: [],
    startedAt: new Date().toISOString(),
    totalMs: 0,
  };

  const record = (check: SmokeCheck): SmokeCheck => {
    report.checks.push(check);
    log(
      `${check.ok ? "ok  " : "FAIL"} ${check.name} (${check.ms} ms${check.attempts > 1 ? `, ${check.attempts} probes` : ""})${check.detail === "" ? "" : `: ${check.detail}`}`,
    );
    return check;
  };
  /** Records a check that began at `t` (performance.now()). Returns whether it passed. */
  const settle = (t: number, c: Omit<SmokeCheck, "ms">): boolean =>
    record({
      name: c.name,
      phase: c.phase,
      ok: c.ok,
      ms: Math.round(performance.now() - t),
      attempts: c.attempts,
      detail: c.detail,
    }).ok;
  const step = async (
    name: string,
    phase: SmokeCheck["phase"],
    fn: () => Promise<string>,
  ): Promise<boolean> => {
    const t = performance.now();
    try {
      const detail = await fn();
      return settle(t, { name, phase, ok: true, attempts: 0, detail });
    } catch (err) {
      return settle(t, { name, phase, ok: false, attempts: 0, detail: errorText(err) });
    }
  };
  /** Probes until the flow does what is expected: reaches once, or is refused `deniedAfter` times in a row. */
  const expect = async (
    flow: Flow,
    expectation: Expectation,
    phase: SmokeCheck["phase"],
  ): Promise<boolean> => {
    const t = performance.now();
    const name = flow.name;
    const from = `${namespace}/${flow.from.name}`;
    const what = `${flow.from.name} (${flow.from.node}) → ${flow.to.name} ${flow.to.ip}:${flow.port}/${flow.protocol} (${flow.to.node})`;
    let attempts = 0;
    let misses = 0;
    let last = "";
    for (;;) {
      attempts++;
      let reached: boolean;
      try {
        reached = await driver.probe(from, flow.to.ip, flow.port, flow.protocol, probeMs);
      } catch (err) {
        // The environment failed, not the network: never count that as "denied".
        return settle(t, { name, phase, ok: false, attempts, detail: `probe failed: ${errorText(err)}` });
      }
      if (expectation === "reach" && reached)
        return settle(t, { name, phase, ok: true, attempts, detail: what });
      misses = reached ? 0 : misses + 1;
      if (expectation === "denied" && misses >= deniedAfter)
        return settle(t, { name, phase, ok: true, attempts, detail: `${what} refused` });
      last = reached ? "still reaches" : "no answer";
      if (performance.now() - t > convergeMs)
        return settle(t, {
          name,
          phase,
          ok: false,
          attempts,
          detail: `${what}: ${last} after ${convergeMs} ms (expected: ${expectation === "reach" ? "reaches" : "denied"})`,
        });
      await sleep(retryMs);
    }
  };

  let created = false;
  try {
    let picked: string[] = [];
    const haveNodes = await step("two nodes to place pods on", "setup", async () => {
      const nodes = await driver.nodes();
      if (nodes.length < 2)
        throw new Error(
          `need two nodes, found ${nodes.length}${nodes.length > 0 ? ` (${nodes.join(", ")})` : ""}`,
        );
      picked = nodes.slice(0, 2);
      report.nodes = picked;
      return `${picked[0]} and ${picked[1]}`;
    });
    const [nodeA, nodeB] = picked;
    if (!haveNodes || nodeA === undefined || nodeB === undefined) return report;

    const specs: SmokePodSpec[] = [
      { name: "server", node: nodeA, labels: { app: SMOKE_APPS.server } },
      { name: "client", node: nodeB, labels: { app: SMOKE_APPS.client } },
      { name: "other", node: nodeB, labels: { app: SMOKE_APPS.other } },
    ];
    created = true;
    const havePods = await step(`pods in ${namespace}`, "setup", async () => {
      const pods = await driver.createPods(namespace, specs);
      for (const s of specs) {
        const p = pods.find((x) => x.name === s.name);
        if (p === undefined || p.ip === "") throw new Error(`pod ${s.name} has no address`);
        if (p.node !== s.node) throw new Error(`pod ${s.name} landed on ${p.node}, not ${s.node}`);
      }
      report.pods = pods;
      return pods.map((p) => `${p.name} ${p.ip} on ${p.node}`).join(", ");
    });
    const pod = (name: string): SmokePod | undefined => report.pods.find((p) => p.name === name);
    const server = pod("server");
    const client = pod("client");
    const other = pod("other");
    if (!havePods || server === undefined || client === undefined || other === undefined) return report;

    const tcp = SMOKE_PORTS.tcp;
    const udp = SMOKE_PORTS.udp;
    const flow = (name: string, from: SmokePod, to: SmokePod, protocol: SmokeProtocol): Flow => ({
      name,
      from,
      to,
      port: protocol === "TCP" ? tcp : udp,
      protocol,
    });
    const connectivity = [
      flow("cross-node TCP client → server", client, server, "TCP"),
      flow("cross-node UDP client → server", client, server, "UDP"),
      flow("cross-node TCP server → client", server, client, "TCP"),
      flow("cross-node TCP other → server (no policy yet)", other, server, "TCP"),
    ];
    for (const f of connectivity) await expect(f, "reach", "connectivity");

    // Through a Service, by its cluster DNS name: the path every pod's DNS and most traffic takes.
    let service: SmokePod | undefined;
    if (driver.createService === undefined) log("Service checks left out: no Services and cluster DNS here");
    else {
      const createService = driver.createService.bind(driver);
      await step(`Service ${SMOKE_SERVICE} in front of the server`, "setup", async () => {
        const host = await createService(namespace, SMOKE_SERVICE, { app: SMOKE_APPS.server });
        service = { name: `Service ${SMOKE_SERVICE}`, ip: host, node: "any node" };
        return `${host}: TCP ${tcp}, UDP ${udp}`;
      });
      if (service !== undefined)
        for (const f of [
          flow(`TCP client → Service ${SMOKE_SERVICE} by DNS name`, client, service, "TCP"),
          flow(
            `UDP client → Service ${SMOKE_SERVICE} by DNS name (connected socket)`,
            client,
            service,
            "UDP",
          ),
        ])
          await expect(f, "reach", "connectivity");
    }

    const applied = await step("NetworkPolicy smoke-server-ingress applied", "policy", async () => {
      await driver.applyPolicy(smokePolicy(namespace));
      return `server accepts TCP ${tcp} from app=${SMOKE_APPS.client} only`;
    });
    if (applied) {
      // Denials first: once they hold, the policy is in force, and the allowed flow must still pass.
      const policy: [Flow, Expectation][] = [
        [flow("policy denies TCP other → server", other, server, "TCP"), "denied"],
        [flow("policy denies UDP client → server (port not allowed)", client, server, "UDP"), "denied"],
        [flow("policy allows TCP client → server", client, server, "TCP"), "reach"],
        [flow("unselected pod still reachable: TCP server → client", server, client, "TCP"), "reach"],
      ];
      if (service !== undefined)
        policy.push(
          [
            flow(
              `policy denies TCP other → Service ${SMOKE_SERVICE} (judged on the backend)`,
              other,
              service,
              "TCP",
            ),
            "denied",
          ],
          [flow(`policy allows TCP client → Service ${SMOKE_SERVICE}`, client, service, "TCP"), "reach"],
        );
      for (const [f, expectation] of policy) await expect(f, expectation, "policy");
    }
    return report;
  } catch (err) {
    record({
      name: "smoke test",
      phase: "setup",
      ok: false,
      ms: Math.round(performance.now() - started),
      attempts: 0,
      detail: errorText(err),
    });
    return report;
  } finally {
    if (created && options.keep !== true)
      await step(
        `namespace ${namespace} deleted`,
        "cleanup",
        async () => (await driver.deleteNamespace(namespace), ""),
      );
    else if (created) log(`namespace ${namespace} kept`);
    report.totalMs = Math.round(performance.now() - started);
    report.ok =
      report.checks.length > 0 &&
      report.checks.every((c) => c.ok) &&
      report.checks.some((c) => c.phase === "policy");
  }
}

/** The report as a few lines for a terminal: one per check, then the verdict. */
export function renderSmokeReport(report: SmokeReport): string {
  const lines = report.checks.map(
    (c) =>
      `  ${c.ok ? "✓" : "✗"} ${c.name.padEnd(56)} ${String(c.ms).padStart(6)} ms${c.ok ? "" : `  ${c.detail}`}`,
  );
  const passed = report.checks.filter((c) => c.ok).length;
  lines.push(
    `smoke ${report.ok ? "passed" : "FAILED"}: ${passed}/${report.checks.length} checks in ${(report.totalMs / 1000).toFixed(1)} s (namespace ${report.namespace}, nodes ${report.nodes.join(", ") || "-"})`,
  );
  return lines.join("\n") + "\n";
}
