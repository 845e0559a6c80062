/**
 * npm run bench:services [-- --runs N --seconds S --counts 1,1000,10000 --latency-services 100]
 *
 * Service load balancing at scale, Skein's BPF translation beside kube-proxy-shaped iptables rules
 * (lab/kube-proxy.ts: KUBE-SERVICES → KUBE-SVC-* with `-m statistic --mode random` → KUBE-SEP-*
 * DNAT), measured in the same run on the same machine:
 *
 *   - Skein: nodes n1, n2 with --service-lb bpf. The client pod is on n1; the two endpoints of every
 *     Service are a pod on n1 and a pod on n2. The Services and their EndpointSlices are real API
 *     objects (selectorless Services, slices written by the benchmark, as a controller would).
 *   - iptables: nodes n3, n4 with Skein in its kube-proxy mode (--service-cidr, --service-lb off),
 *     the same Services written as kube-proxy's iptables rules into n3 (the client's node), the
 *     probed Service last in KUBE-SERVICES (kube-proxy's chain is a list: the worst case).
 *
 * For each Service count (1, 1,000, 10,000 by default): new connections per second through the
 * probed ClusterIP (connect, 1-byte request/response, close: rr crr) and request/response on one
 * established connection (rr client), pinned to CPU 0, `--runs` times, interleaved. Then, with
 * the largest count in place: programming latency (Service + EndpointSlice created in the API →
 * first successful connection from the client pod, one Service after another, p50/p99) and the
 * n1 agent's RSS.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CoreV1Api, DiscoveryV1Api, type V1EndpointSlice, type V1Service } from "@kubernetes/client-node";
import type { Lab, LabNode, LabPod } from "../lab/lab.js";
import { applyKubeProxy, type ProxiedService } from "../lab/kube-proxy.js";
import { LbSvcMap } from "../maps/lb-svc.js";
import { runBench, say } from "./harness.js";
import { rrRate, startRrServer, stats, type Stats } from "./measure.js";

const RR_PORT = 7777;
const SVC_PORT = 80;
/** A second port of every Service, to the pods' workload (lab probes speak its protocol, not rr's). */
const PROBE_PORT = 8080;
const NS = "bench-svc";
const SERVICE_CIDR = "10.96.0.0/16";

function parseCounts(text: string): number[] {
  const counts = text.split(",").map((c) => Number(c));
  if (counts.length === 0 || counts.some((c) => !Number.isInteger(c) || c < 1 || c > 60000))
    throw new Error(`--counts: positive integers up to 60000, comma-separated, not ${text}`);
  return [...counts].sort((a, b) => a - b);
}

function percentile(values: readonly number[], p: number): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)] ?? Number.NaN;
}

function fmt(s: Stats): string {
  return `${Math.round(s.median)} (${Math.round(s.min)}..${Math.round(s.max)})`;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** Resident set size of process `pid`, MiB. */
function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

function serviceBody(name: string): V1Service {
  return {
    metadata: { name, namespace: NS },
    // No selector: the benchmark writes the EndpointSlice itself, as the controller would.
    spec: {
      ports: [
        { name: "rr", port: SVC_PORT, targetPort: RR_PORT, protocol: "TCP" },
        { name: "probe", port: PROBE_PORT, targetPort: PROBE_PORT, protocol: "TCP" },
      ],
    },
  };
}

function sliceBody(name: string, backends: readonly LabPod[]): V1EndpointSlice {
  return {
    metadata: { name: `${name}-rr`, namespace: NS, labels: { "kubernetes.io/service-name": name } },
    addressType: "IPv4",
    endpoints: backends.map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true } })),
    ports: [
      { name: "rr", port: RR_PORT, protocol: "TCP" },
      { name: "probe", port: PROBE_PORT, protocol: "TCP" },
    ],
  };
}

/** Creates Services `svc-<from>` .. `svc-<to - 1>` with their slices, `parallel` at a time; returns ClusterIPs. */
async function createServices(
  lab: Lab,
  from: number,
  to: number,
  backends: readonly LabPod[],
  parallel = 16,
): Promise<Map<string, string>> {
  const core = lab.core();
  const discovery = lab.kubeConfig().makeApiClient(DiscoveryV1Api);
  const ips = new Map<string, string>();
  let next = from;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < to; i = next++) {
        const name = `svc-${i}`;
        const svc = await core.createNamespacedService({ namespace: NS, body: serviceBody(name) });
        ips.set(name, svc.spec?.clusterIP ?? "");
        await discovery.createNamespacedEndpointSlice({ namespace: NS, body: sliceBody(name, backends) });
      }
    }),
  );
  return ips;
}

/** The Services as lab/kube-proxy.ts writes them (what lab/service-proxy.ts would derive). */
function proxied(
  ips: ReadonlyMap<string, string>,
  backends: readonly LabPod[],
  last: string,
): ProxiedService[] {
  const out: ProxiedService[] = [];
  for (const [name, clusterIP] of ips)
    out.push({
      name,
      namespace: NS,
      clusterIP,
      ports: [{ name: "rr", port: SVC_PORT, protocol: "TCP", targetPort: RR_PORT }],
      endpoints: backends.map((p) => ({ ip: p.ip, nodeName: p.node, ready: true })),
      externalTrafficPolicy: "Cluster",
    });
  // kube-proxy's KUBE-SERVICES is a list: the probed Service last is the worst case.
  out.sort((a, b) => (a.name === last ? 1 : b.name === last ? -1 : 0));
  return out;
}

/** Waits until `node`'s skn_lb_svc holds `count` frontends with two backends each on port SVC_PORT. */
async function waitProgrammed(node: LabNode, count: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    let n = 0;
    {
      using svc = LbSvcMap.openPinned(node.bpffsRoot);
      for (const [k, v] of svc.entries()) if (k.port === SVC_PORT && v.count === 2) n++;
    }
    if (n >= count) return performance.now() - started;
    if (performance.now() - started > timeoutMs)
      throw new Error(`${node.name}: ${n} of ${count} Services programmed after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Connects from `pod` to ip:PROBE_PORT until a connection succeeds; ms from `t0`. */
async function firstConnection(
  lab: Lab,
  pod: LabPod,
  ip: string,
  t0: number,
  timeoutMs: number,
): Promise<number> {
  for (;;) {
    const r = await lab.probe(pod, "TCP", ip, PROBE_PORT, 200);
    if (r.ok) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`${ip}:${SVC_PORT} not reachable within ${timeoutMs} ms`);
  }
}

const OPTIONS = {
  counts: { type: "string", default: "1,1000,10000" },
  "latency-services": { type: "string", default: "100" },
} as const;

runBench(
  "bench:services",
  3,
  async ({ runs, seconds, rr, lab, servers }) => {
    const { values } = parseArgs({
      options: { ...OPTIONS, runs: { type: "string" }, seconds: { type: "string" } },
    });
    const counts = parseCounts(values.counts);
    const latencyServices = Number(values["latency-services"]);
    say(
      `bench:services: lab ${lab.id}, ${runs} runs of ${seconds} s per measurement, Service counts ${counts.join(", ")}, load average ${loadAverage()}`,
    );
    const n1 = await lab.addNode({ waitReady: false, agentArgs: ["--service-lb=bpf"] });
    const n2 = await lab.addNode({ waitReady: false, agentArgs: ["--service-lb=bpf"] });
    const n3 = await lab.addNode({ waitReady: false, agentArgs: [`--service-cidr=${SERVICE_CIDR}`] });
    const n4 = await lab.addNode({ waitReady: false, agentArgs: [`--service-cidr=${SERVICE_CIDR}`] });
    await Promise.all([n1, n2, n3, n4].map((n) => lab.waitAgentReady(n)));
    await lab.ensureNamespace(NS);
    const client = await lab.addPod({ namespace: NS, name: "client", node: n1 });
    const b1 = await lab.addPod({ namespace: NS, name: "b1", node: n1 });
    const b2 = await lab.addPod({ namespace: NS, name: "b2", node: n2 });
    const kClient = await lab.addPod({ namespace: NS, name: "k-client", node: n3 });
    const k1 = await lab.addPod({ namespace: NS, name: "k1", node: n3 });
    const k2 = await lab.addPod({ namespace: NS, name: "k2", node: n4 });
    for (const p of [b1, b2, k1, k2]) servers.push(await startRrServer(rr, p.netns, RR_PORT, 0));

    const results: Record<string, number[]> = {};
    const record = (k: string, v: number) => (results[k] ??= []).push(v);
    let ips = new Map<string, string>();
    const rows: string[] = [];
    for (const count of counts) {
      const t = performance.now();
      const more = await createServices(lab, ips.size, count, [b1, b2]);
      ips = new Map([...ips, ...more]);
      const probed = `svc-${count - 1}`;
      const ip = ips.get(probed) ?? "";
      const created = performance.now() - t;
      const programmedMs = await waitProgrammed(n1, count, 600_000);
      const t2 = performance.now();
      await applyKubeProxy(n3.netns, "iptables", proxied(ips, [k1, k2], probed), {
        nodeName: n3.name,
        clusterCidr: "10.244.0.0/16",
      });
      const rulesMs = performance.now() - t2;
      say(
        `${count} Services: created in ${(created / 1000).toFixed(1)} s, in n1's skn_lb_svc ${(programmedMs / 1000).toFixed(1)} s later; iptables-restore of kube-proxy's rules ${(rulesMs / 1000).toFixed(1)} s; probing ${probed} ${ip}:${SVC_PORT}`,
      );
      for (const [pod, label] of [
        [client, "skein"],
        [kClient, "iptables"],
      ] as const) {
        // rr's own client: the rr servers do not speak the lab probes' protocol.
        const deadline = performance.now() + 20000;
        for (;;) {
          const err = await rrRate(rr, pod.netns, ip, SVC_PORT, 0.2, 0, "crr").then(
            () => undefined,
            (e: unknown) => (e instanceof Error ? e.message : String(e)),
          );
          if (err === undefined) break;
          if (performance.now() > deadline) {
            const probe = await lab.probe(pod, "TCP", ip, PROBE_PORT, 1000);
            throw new Error(
              `${label}: ${ip}:${SVC_PORT} unreachable with rr (${err}); the workload port ${PROBE_PORT}: ${probe.ok ? "reachable" : (probe.error ?? "unreachable")}`,
            );
          }
        }
      }
      for (let run = 1; run <= runs; run++) {
        record(`crr skein ${count}`, await rrRate(rr, client.netns, ip, SVC_PORT, seconds, 0, "crr"));
        record(`crr iptables ${count}`, await rrRate(rr, kClient.netns, ip, SVC_PORT, seconds, 0, "crr"));
        record(`rr skein ${count}`, await rrRate(rr, client.netns, ip, SVC_PORT, seconds, 0));
        record(`rr iptables ${count}`, await rrRate(rr, kClient.netns, ip, SVC_PORT, seconds, 0));
      }
      const r = (k: string) => stats(results[k] ?? []);
      rows.push(
        `${String(count).padStart(6)}  ${fmt(r(`crr skein ${count}`)).padEnd(22)} ${fmt(r(`crr iptables ${count}`)).padEnd(22)} ${fmt(r(`rr skein ${count}`)).padEnd(22)} ${fmt(r(`rr iptables ${count}`))}`,
      );
      say(`  ${rows[rows.length - 1] ?? ""}   (crr Skein, crr iptables, rr Skein, rr iptables)`);
      say(`  load average ${loadAverage()}`);
    }

    // Programming latency with the largest count in place.
    const base = ips.size;
    const latencies: number[] = [];
    /** Both API calls returned → first connection: what the agent and the datapath take. */
    const afterApi: number[] = [];
    const discovery = lab.kubeConfig().makeApiClient(DiscoveryV1Api);
    const core: CoreV1Api = lab.core();
    for (let i = 0; i < latencyServices; i++) {
      const name = `svc-${base + i}`;
      const t0 = performance.now();
      const svc = await core.createNamespacedService({ namespace: NS, body: serviceBody(name) });
      await discovery.createNamespacedEndpointSlice({ namespace: NS, body: sliceBody(name, [b1, b2]) });
      const t1 = performance.now();
      const total = await firstConnection(lab, client, svc.spec?.clusterIP ?? "", t0, 10000);
      latencies.push(total);
      afterApi.push(total - (t1 - t0));
    }
    // The agent's own view: event received → entries written (skein_service_programming_latency_seconds).
    const metrics = await (await fetch(lab.agentUrl(n1, "/metrics", 9878))).text();
    const sum = Number(/^skein_service_programming_latency_seconds_sum (\S+)$/m.exec(metrics)?.[1]);
    const cnt = Number(/^skein_service_programming_latency_seconds_count (\S+)$/m.exec(metrics)?.[1]);
    const agentPid = n1.agent?.pid;
    const rss = agentPid === undefined ? Number.NaN : rssMiB(agentPid);

    const max = counts[counts.length - 1] ?? 1;
    const min = counts[0] ?? 1;
    const crr = (who: string, c: number) => stats(results[`crr ${who} ${c}`] ?? []).median;
    say(
      `\nnew connections/s and request/response/s through a ClusterIP, median (min..max) of ${runs} runs, CPU 0`,
    );
    say("  count  crr Skein BPF          crr iptables           rr Skein BPF           rr iptables");
    for (const row of rows) say(row);
    const flat = crr("skein", max) / crr("skein", min);
    const vsIpt = crr("skein", max) / crr("iptables", min);
    say(
      `\nSkein new-connection rate at ${max} / at ${min} Services: ${flat.toFixed(3)} (target ≥ 0.95: ${flat >= 0.95 ? "met" : "NOT met"})`,
    );
    say(
      `Skein at ${max} / iptables at ${min}: ${vsIpt.toFixed(3)} (target ≥ 1.0: ${vsIpt >= 1 ? "met" : "NOT met"})`,
    );
    say(
      `iptables at ${max} / iptables at ${min}: ${(crr("iptables", max) / crr("iptables", min)).toFixed(3)}`,
    );
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    say(
      `programming latency (Service + EndpointSlice created → first connection), ${latencies.length} Services while ${base} exist: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (target p99 ≤ 100 ms: ${p99 <= 100 ? "met" : "NOT met"})`,
    );
    say(
      `  of which after both API calls returned (agent + datapath + the probe's own round trip): p50 ${percentile(afterApi, 50).toFixed(1)} ms, p99 ${percentile(afterApi, 99).toFixed(1)} ms; the agent's event → maps written, mean over the run: ${((sum / cnt) * 1000).toFixed(1)} ms (${cnt} Service events)`,
    );
    say(
      `agent RSS on n1 with ${ips.size + latencyServices} Services: ${rss.toFixed(1)} MiB (target ≤ 250 MiB: ${rss <= 250 ? "met" : "NOT met"})`,
    );
    say(`load average at the end: ${loadAverage()}`);
  },
  OPTIONS,
);
