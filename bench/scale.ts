/**
 * npm run bench:scale [-- --pods 1000,10000,100000 --nodes 50 --policies 1000 --churn 10000
 *                        --churn-rate 250 --rates 100,200,400,800 --rate-seconds 5 --latency-events 300
 *                        --ready-only --runs 1]
 *
 * One skein-agent (the real process, in a network namespace of its own, its datapath pinned under
 * a unique bpffs root) against the lab API server (a process seeded in memory with the scale
 * cluster: bench/scale-seed.ts), for each pod count:
 *   - time to ready (agent start → /readyz 200), RSS at ready;
 *   - event→kernel latency: pods created, relabelled and deleted one at a time, from the API's
 *     answer to the change visible in skn_ipcache, read by this process through maps/ipcache.ts;
 *   - a churn of --churn events at --churn-rate events/s (add, relabel, delete; 1 in 5 on this
 *     node), its latency, and RSS before and after it (each after a GC in the agent);
 *   - sustained churn: --rates events/s for --rate-seconds each; the highest whose p99 ≤ 100 ms.
 *   - the soak: RSS after a GC before the churn, and after it once every churned pod is deleted
 *     again (the cluster as it started) and the agent collected garbage: the difference is what
 *     the churn left behind.
 *   - the agent's and the API server's CPU time per event in each phase (from /proc: the figure the
 *     machine's load distorts least), and the API server's answer times (event→kernel starts at
 *     the answer, so a slow server lowers the rate achieved but not the latency).
 * The agent's full resync runs every --resync-seconds (default 15, the agent's own default is 60),
 * so that the churn phases include some.
 * --ready-only stops after the first item (time to ready, the agent's CPU time until then, RSS);
 * --runs N measures each size N times (a fresh API server and agent each time).
 *
 * SKEIN_BENCH_KEEP=1 keeps the agent's and API server's logs; SKEIN_BENCH_LOG=LEVEL sets the
 * agent's log level; SKEIN_AGENT_CPU_PROF=FILE profiles the agent from ready to its end;
 * SKEIN_BENCH_API_PROF=DIR profiles the API server (node --cpu-prof); SKEIN_BENCH_AGENT_NODE_ARGS
 * adds Node flags to the agent's command line (e.g. "--max-semi-space-size=32").
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "node:crypto";
import { writeKubeconfig } from "../lab/apiserver/kubeconfig.js";
import { DIST } from "../lab/dist.js";
import { unloadPinnedDatapath } from "../maps/datapath/pinned.js";
import { Identity } from "../maps/identities.js";
import { IpcacheMap } from "../maps/ipcache.js";
import { parsePrefix } from "../maps/net.js";
import { PolicyMap } from "../maps/policy.js";
import { say } from "./harness.js";
import { APPS, NAMESPACES, podIp, scalePod } from "./scale-seed.js";

const { values: opts } = parseArgs({
  options: {
    pods: { type: "string", default: "1000,10000,100000" },
    nodes: { type: "string", default: "50" },
    policies: { type: "string", default: "1000" },
    churn: { type: "string", default: "10000" },
    "churn-rate": { type: "string", default: "250" },
    rates: { type: "string", default: "100,200,400,800" },
    "rate-seconds": { type: "string", default: "5" },
    "latency-events": { type: "string", default: "300" },
    "resync-seconds": { type: "string", default: "15" },
    "ready-only": { type: "boolean", default: false },
    runs: { type: "string", default: "1" },
  },
});
const list = (s: string): number[] => s.split(",").map((x) => Number(x.trim()));

const id = randomBytes(3).toString("hex");
const NETNS = `sksc${id}`;
const VETH_ROOT = `sksr${id}`;
const VETH_NODE = `sksn${id}`;
// 198.19.0.0/16 is benchmarking space; one /30 per run, picked from the id.
const third = parseInt(id.slice(0, 2), 16);
const fourth = (parseInt(id.slice(2, 4), 16) & 0x3f) << 2;
const ROOT_IP = `198.19.${third}.${fourth + 1}`;
const NODE0_IP = `198.19.${third}.${fourth + 2}`;
const HEALTH_PORT = 9879;

function sh(file: string, ...args: string[]): void {
  execFileSync(file, args, { stdio: ["ignore", "ignore", "pipe"] });
}

function setupNetns(): void {
  sh("ip", "netns", "add", NETNS);
  sh("ip", "link", "add", VETH_ROOT, "type", "veth", "peer", "name", VETH_NODE, "netns", NETNS);
  sh("ip", "addr", "add", `${ROOT_IP}/30`, "dev", VETH_ROOT);
  sh("ip", "link", "set", VETH_ROOT, "up");
  sh("ip", "-n", NETNS, "addr", "add", `${NODE0_IP}/30`, "dev", VETH_NODE);
  sh("ip", "-n", NETNS, "link", "set", VETH_NODE, "up");
  sh("ip", "-n", NETNS, "link", "set", "lo", "up");
}

function teardownNetns(): void {
  for (const cmd of [
    ["ip", "link", "del", VETH_ROOT],
    ["ip", "netns", "del", NETNS],
  ])
    try {
      sh(cmd[0] ?? "", ...cmd.slice(1));
    } catch {
      // Already gone.
    }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

/** User + system CPU time of a process, ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) in clock ticks of 10 ms.
  return (Number(f[11]) + Number(f[12])) * 10;
}

function percentile(v: readonly number[], p: number): number {
  if (v.length === 0) return Number.NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

/** Children still to stop: an exit for any reason stops them (and removes the namespace). */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (!exited(c)) c.kill("SIGKILL");
  teardownNetns();
});

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** The process's CPU time so far (user + system), seconds. */
function cpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

async function stopProcess(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined) return;
  if (!exited(p)) {
    p.kill("SIGTERM");
    for (let i = 0; i < 100 && !exited(p); i++) await sleep(50);
    if (!exited(p)) p.kill("SIGKILL");
  }
  children.delete(p);
}

interface Slot {
  name: string;
  namespace: string;
  node: number;
  ip: string;
  n: number;
  app: number;
  state: "absent" | "present";
  busy: boolean;
}

/** Pods the churn adds, relabels and deletes: addresses above any the seed uses (≤ 2,100 per node). */
function churnSlots(count: number, nodes: number): Slot[] {
  const perNode = new Map<number, number>();
  return Array.from({ length: count }, (_v, s) => {
    const node = s % 5 === 0 || nodes < 2 ? 0 : 1 + (s % (nodes - 1));
    const k = perNode.get(node) ?? 0;
    perNode.set(node, k + 1);
    if (k >= 1900) throw new Error("too many churn slots for the pod CIDRs");
    const app = s % APPS;
    return {
      name: `churn-${s}`,
      namespace: `ns-${app % NAMESPACES}`,
      node,
      ip: podIp(node, 2190 + k),
      n: 100_000 + s,
      app,
      state: "absent",
      busy: false,
    };
  });
}

/** CPU time per event of a phase, ms: the agent's and the API server's. */
interface CpuPerEvent {
  agent: number;
  api: number;
  /** This process: the clients' requests and the poller's map lookups. */
  bench: number;
}
const NO_CPU: CpuPerEvent = { agent: NaN, api: NaN, bench: NaN };

interface Size {
  pods: number;
  readyMs: number;
  /** The agent's CPU time (user + system) from its start to ready, s. */
  cpuAtReady: number;
  /** The load average when ready. */
  loadAtReady: string;
  ipcacheAtReady: number;
  policyAtReady: number;
  rssReady: number;
  latency: { p50: number; p99: number; max: number; n: number };
  churn: { events: number; rate: number; p50: number; p99: number; apiP50: number; cpu: CpuPerEvent };
  rssBeforeChurn: number;
  rssAfterChurn: number;
  /** Churn pods left when the churn ended, deleted before RSS after the churn was read. */
  leftover: number;
  /** The agent's live heap after a GC, MiB. */
  heapBeforeChurn: number;
  heapAfterChurn: number;
  sustained: {
    rate: number;
    achieved: number;
    dropped: number;
    p50: number;
    p99: number;
    apiP50: number;
    apiP99: number;
    cpu: CpuPerEvent;
  }[];
}

async function measureSize(pods: number, nodes: number, policies: number): Promise<Size> {
  const dir = mkdtempSync(join(tmpdir(), "skein-scale-"));
  const root = `/sys/fs/bpf/sksc${id}-${pods}`;
  let api: ChildProcess | undefined;
  let agent: ChildProcess | undefined;
  try {
    const portFile = join(dir, "api.port");
    const apiLog = openSync(join(dir, "apiserver.log"), "a");
    api = spawn(
      process.execPath,
      [
        ...(process.env.SKEIN_BENCH_API_PROF === undefined
          ? []
          : ["--cpu-prof", `--cpu-prof-dir=${process.env.SKEIN_BENCH_API_PROF}`]),
        join(DIST, "bench", "scale-apiserver.js"),
        `--listen=${ROOT_IP}`,
        `--port-file=${portFile}`,
        `--pods=${pods}`,
        `--nodes=${nodes}`,
        `--policies=${policies}`,
        `--node0-ip=${NODE0_IP}`,
      ],
      { stdio: ["ignore", apiLog, apiLog] },
    );
    closeSync(apiLog);
    children.add(api);
    const t0 = Date.now();
    while (!existsSync(portFile) || readFileSync(portFile, "utf8") === "") {
      if (exited(api)) throw new Error(`API server exited: see ${dir}/apiserver.log`);
      if (Date.now() - t0 > 300_000) throw new Error("API server did not start");
      await sleep(50);
    }
    const url = `http://${ROOT_IP}:${readFileSync(portFile, "utf8").trim()}`;
    const kubeconfig = join(dir, "kubeconfig");
    await writeKubeconfig(kubeconfig, url);

    const agentLog = openSync(join(dir, "agent.log"), "a");
    const started = performance.now();
    agent = spawn(
      "nsenter",
      [
        `--net=/var/run/netns/${NETNS}`,
        process.execPath,
        "--expose-gc",
        ...(process.env.SKEIN_BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter((a) => a !== ""),
        join(DIST, "agent", "main.js"),
        "--node-name=node-0",
        `--kubeconfig=${kubeconfig}`,
        `--bpffs-root=${root}`,
        `--cni-conf-dir=${join(dir, "net.d")}`,
        `--health-addr=${NODE0_IP}:${HEALTH_PORT}`,
        "--metrics-addr=",
        "--policy-map-entries=262144",
        `--resync-interval=${opts["resync-seconds"]}`,
        `--log-level=${process.env.SKEIN_BENCH_LOG ?? "info"}`,
      ],
      { stdio: ["ignore", agentLog, agentLog] },
    );
    closeSync(agentLog);
    children.add(agent);
    const agentPid = (): number => {
      // nsenter execs node in place: same PID.
      if (agent?.pid === undefined) throw new Error("no agent");
      return agent.pid;
    };
    for (;;) {
      if (exited(agent)) throw new Error(`agent exited: see ${dir}/agent.log`);
      try {
        const r = await fetch(`http://${NODE0_IP}:${HEALTH_PORT}/readyz`);
        if (r.status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (performance.now() - started > 600_000) throw new Error("agent not ready within 600 s");
      await sleep(10);
    }
    const readyMs = performance.now() - started;
    const cpuAtReady = cpuSeconds(agentPid());
    const loadAtReady = loadAverage();
    using ipcache = IpcacheMap.openPinned(root);
    using policyMap = PolicyMap.openPinned(root);
    const ipcacheAtReady = ipcache.count();
    const policyAtReady = policyMap.count();
    const rssReady = rssMiB(agentPid());
    if (opts["ready-only"])
      return {
        pods,
        readyMs,
        cpuAtReady,
        loadAtReady,
        ipcacheAtReady,
        policyAtReady,
        rssReady,
        latency: { p50: NaN, p99: NaN, max: NaN, n: 0 },
        churn: { events: 0, rate: NaN, p50: NaN, p99: NaN, apiP50: NaN, cpu: NO_CPU },
        leftover: 0,
        rssBeforeChurn: NaN,
        rssAfterChurn: NaN,
        heapBeforeChurn: NaN,
        heapAfterChurn: NaN,
        sustained: [],
      };

    const podsUrl = (ns: string) => `${url}/api/v1/namespaces/${ns}/pods`;
    /**
     * One API call. A kept-alive connection the server closed meanwhile fails the request: tried
     * again, and then an AlreadyExists/NotFound means the first attempt got through.
     */
    const call = async (what: string, target: string, init: RequestInit) => {
      for (let attempt = 1; ; attempt++) {
        let r: Response;
        try {
          r = await fetch(target, init);
        } catch (err) {
          if (attempt >= 3) throw err;
          continue;
        }
        if (r.ok || (attempt > 1 && (r.status === 409 || r.status === 404))) {
          await r.arrayBuffer();
          return;
        }
        throw new Error(`${what}: ${r.status} ${await r.text()}`);
      }
    };
    // A longest-prefix lookup (one syscall; getExact walks every key): a pod's own /32 when
    // present, else its node's pod CIDR, whose identity is "unmanaged".
    const identityAt = (ip: string): number | undefined => {
      const id = ipcache.get(parsePrefix(ip))?.identity;
      return id === Identity.unmanaged ? undefined : id;
    };

    // One poller for every event in flight: each millisecond, one map lookup per event.
    const watching = new Set<{
      seen: () => boolean;
      since: number;
      name: string;
      resolve: (ms: number) => void;
      reject: (err: Error) => void;
    }>();
    const polling = { on: true };
    const poller = (async () => {
      while (polling.on) {
        const now = performance.now();
        for (const w of watching) {
          if (w.seen()) {
            watching.delete(w);
            w.resolve(now - w.since);
          } else if (now - w.since > 30_000) {
            watching.delete(w);
            w.reject(new Error(`${w.name}: not in the kernel after 30 s`));
          }
        }
        await sleep(1);
      }
    })();

    // One event on a slot; resolves with the latency from the API's answer to the kernel.
    const apiMs: number[] = [];
    const event = async (s: Slot): Promise<number> => {
      s.busy = true;
      const asked = performance.now();
      try {
        let seen: () => boolean;
        if (s.state === "absent") {
          await call("create", podsUrl(s.namespace), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(scalePod(s.name, s.n, s.node, s.ip, s.app)),
          });
          s.state = "present";
          seen = () => identityAt(s.ip) !== undefined;
        } else if (Math.random() < 0.5) {
          const before = identityAt(s.ip);
          // Another app label in the same namespace: another identity, other policies.
          s.app = (s.app + NAMESPACES) % APPS;
          await call("relabel", `${podsUrl(s.namespace)}/${s.name}`, {
            method: "PATCH",
            headers: { "content-type": "application/merge-patch+json" },
            body: JSON.stringify({ metadata: { labels: { app: `app-${s.app}` } } }),
          });
          seen = () => identityAt(s.ip) !== before;
        } else {
          await call("delete", `${podsUrl(s.namespace)}/${s.name}`, { method: "DELETE" });
          s.state = "absent";
          seen = () => identityAt(s.ip) === undefined;
        }
        const t = performance.now();
        apiMs.push(t - asked);
        if (seen()) return 0;
        return await new Promise<number>((resolve, reject) => {
          watching.add({ seen, since: t, name: s.name, resolve, reject });
        });
      } finally {
        s.busy = false;
      }
    };

    const slots = churnSlots(1500, nodes);
    let next = 0;
    const freeSlot = (): Slot | undefined => {
      for (let i = 0; i < slots.length; i++) {
        const s = slots[(next + i) % slots.length];
        if (s !== undefined && !s.busy) {
          next = (next + i + 1) % slots.length;
          return s;
        }
      }
      return undefined;
    };

    // Open loop at `rate` events/s for `count` events; latencies of those that completed.
    const paced = async (rate: number, count: number) => {
      const lat: number[] = [];
      const inflight: Promise<void>[] = [];
      const errors: unknown[] = [];
      let dropped = 0;
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        const s = freeSlot();
        // Every slot waiting for the kernel: the agent is far behind; the event is not sent.
        if (s === undefined) {
          dropped++;
          continue;
        }
        inflight.push(
          event(s).then(
            (ms) => {
              lat.push(ms);
            },
            (err: unknown) => {
              errors.push(err);
            },
          ),
        );
        if (inflight.length > 2000) await Promise.all(inflight.splice(0, 1000));
      }
      await Promise.all(inflight);
      if (errors.length > 0) throw errors[0];
      const achieved = (count - dropped) / ((performance.now() - t0) / 1000);
      return { lat, achieved, dropped };
    };

    // Latency, one event at a time.
    const apiPid = (): number => {
      if (api?.pid === undefined) throw new Error("no API server");
      return api.pid;
    };
    /** Runs `phase`; the agent's and API server's CPU time per event it sent. */
    const withCpu = async <T extends { lat: number[] }>(
      phase: () => Promise<T>,
    ): Promise<T & { cpu: CpuPerEvent }> => {
      const a0 = cpuMs(agentPid());
      const s0 = cpuMs(apiPid());
      const b0 = process.cpuUsage();
      const r = await phase();
      // The last events' passes finish within the debounce; the poller saw them.
      const n = Math.max(1, r.lat.length);
      const b = process.cpuUsage(b0);
      return {
        ...r,
        cpu: {
          agent: (cpuMs(agentPid()) - a0) / n,
          api: (cpuMs(apiPid()) - s0) / n,
          bench: (b.user + b.system) / 1000 / n,
        },
      };
    };
    const seq: number[] = [];
    for (let i = 0; i < Number(opts["latency-events"]); i++) {
      const s = freeSlot();
      if (s === undefined) throw new Error("no free churn slot");
      seq.push(await event(s));
      await sleep(5);
    }

    // RSS after a GC in the agent, and the live heap it logs then.
    const heapAfterGc: number[] = [];
    const gcRss = async (): Promise<number> => {
      process.kill(agentPid(), "SIGUSR2");
      await sleep(1000);
      const logged = [
        ...readFileSync(join(dir, "agent.log"), "utf8").matchAll(/garbage collected .*heapUsedMiB=([\d.]+)/g),
      ];
      const last = logged.at(-1)?.[1];
      if (last !== undefined) heapAfterGc.push(Number(last));
      return rssMiB(agentPid());
    };
    // The soak: RSS after a GC, the churn, every churn pod deleted again, RSS after a GC.
    const rssBeforeChurn = await gcRss();
    const churnN = Number(opts.churn);
    const churnRate = Number(opts["churn-rate"]);
    const churn = await withCpu(() => paced(churnRate, churnN));
    const churnApiP50 = percentile(apiMs, 50);
    apiMs.length = 0;
    const leftover = slots.filter((s) => s.state === "present");
    for (const s of leftover) {
      // A present slot's next event is a relabel or a delete: deleted straight away here.
      s.busy = true;
      await call("delete", `${podsUrl(s.namespace)}/${s.name}`, { method: "DELETE" });
      s.state = "absent";
      s.busy = false;
    }
    const deletedAt = performance.now();
    while (leftover.some((s) => identityAt(s.ip) !== undefined)) {
      if (performance.now() - deletedAt > 60_000)
        throw new Error("churn pods still in the ipcache 60 s after their deletion");
      await sleep(50);
    }
    await sleep(2000);
    await gcRss();
    const rssAfterChurn = await gcRss();

    const sustained: Size["sustained"] = [];
    const stopPoller = async () => {
      polling.on = false;
      await poller;
    };
    for (const rate of list(opts.rates)) {
      const r = await withCpu(() => paced(rate, Math.round(rate * Number(opts["rate-seconds"]))));
      const row = {
        rate,
        dropped: r.dropped,
        achieved: r.achieved,
        p50: percentile(r.lat, 50),
        p99: percentile(r.lat, 99),
        apiP50: percentile(apiMs, 50),
        apiP99: percentile(apiMs, 99),
        cpu: r.cpu,
      };
      sustained.push(row);
      apiMs.length = 0;
      say(
        `  ${pods} pods: ${rate} events/s → achieved ${r.achieved.toFixed(0)}/s (${r.dropped} not sent: every slot waiting), p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms; ` +
          `API answers p50 ${row.apiP50.toFixed(1)} / p99 ${row.apiP99.toFixed(1)} ms; CPU per event: agent ${r.cpu.agent.toFixed(2)} ms, API server ${r.cpu.api.toFixed(2)} ms, bench ${r.cpu.bench.toFixed(2)} ms`,
      );
      await sleep(1000);
    }
    await stopPoller();
    return {
      pods,
      readyMs,
      cpuAtReady,
      loadAtReady,
      ipcacheAtReady,
      policyAtReady,
      rssReady,
      latency: { p50: percentile(seq, 50), p99: percentile(seq, 99), max: Math.max(...seq), n: seq.length },
      churn: {
        events: churnN,
        rate: churn.achieved,
        p50: percentile(churn.lat, 50),
        p99: percentile(churn.lat, 99),
        apiP50: churnApiP50,
        cpu: churn.cpu,
      },
      rssBeforeChurn,
      rssAfterChurn,
      leftover: leftover.length,
      heapBeforeChurn: heapAfterGc[0] ?? Number.NaN,
      heapAfterChurn: heapAfterGc.at(-1) ?? Number.NaN,
      sustained,
    };
  } finally {
    await stopProcess(agent);
    await stopProcess(api);
    try {
      if (existsSync(root)) unloadPinnedDatapath(root);
      rmSync(root, { recursive: true, force: true });
    } catch (err) {
      say(`cleanup of ${root}: ${String(err)}`);
    }
    if (process.env.SKEIN_BENCH_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else say(`logs kept in ${dir}`);
  }
}

async function main(): Promise<void> {
  const nodes = Number(opts.nodes);
  const policies = Number(opts.policies);
  say(`bench:scale: ${nodes} nodes, ${policies} NetworkPolicies, 100 pods on the agent's node`);
  setupNetns();
  const results: Size[] = [];
  try {
    for (const pods of list(opts.pods).flatMap((p) => Array<number>(Number(opts.runs)).fill(p))) {
      say(`${pods} pods …`);
      const r = await measureSize(pods, nodes, policies);
      results.push(r);
      say(
        `  ready ${(r.readyMs / 1000).toFixed(2)} s (ipcache ${r.ipcacheAtReady}, policy ${r.policyAtReady} entries), RSS ${r.rssReady.toFixed(0)} MiB; ` +
          `event→kernel p50 ${r.latency.p50.toFixed(1)} ms p99 ${r.latency.p99.toFixed(1)} ms (n=${r.latency.n}); ` +
          `churn ${r.churn.events} at ${r.churn.rate.toFixed(0)}/s p50 ${r.churn.p50.toFixed(1)} ms p99 ${r.churn.p99.toFixed(1)} ms (API answers p50 ${r.churn.apiP50.toFixed(1)} ms; CPU per event agent ${r.churn.cpu.agent.toFixed(2)} ms, API server ${r.churn.cpu.api.toFixed(2)} ms, bench ${r.churn.cpu.bench.toFixed(2)} ms); ` +
          `soak: RSS after GC ${r.rssBeforeChurn.toFixed(0)} → ${r.rssAfterChurn.toFixed(0)} MiB (${(((r.rssAfterChurn - r.rssBeforeChurn) / r.rssBeforeChurn) * 100).toFixed(1)} %, ${r.leftover} churn pods deleted first; heap ${r.heapBeforeChurn.toFixed(1)} → ${r.heapAfterChurn.toFixed(1)} MiB)`,
      );
    }
  } finally {
    teardownNetns();
  }
  say("\n| pods | ready | agent CPU to ready (user + system) | load average at ready | RSS at ready |");
  say("|---:|---:|---:|---:|---:|");
  for (const r of results)
    say(
      `| ${r.pods.toLocaleString("en")} | ${(r.readyMs / 1000).toFixed(2)} s | ${r.cpuAtReady.toFixed(2)} s | ${r.loadAtReady} | ${r.rssReady.toFixed(0)} MiB |`,
    );
  if (opts["ready-only"]) return;
  say(
    "\n| pods | ready | RSS at ready | event→kernel p50 / p99 | churn p99 | agent CPU per churn event | soak: RSS before / after (GC) | sustained (p99 ≤ 100 ms) |",
  );
  say("|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    const ok = r.sustained.filter((s) => s.p99 <= 100 && s.achieved >= 0.9 * s.rate);
    const best = ok.length > 0 ? Math.max(...ok.map((s) => s.rate)) : 0;
    say(
      `| ${r.pods.toLocaleString("en")} | ${(r.readyMs / 1000).toFixed(2)} s | ${r.rssReady.toFixed(0)} MiB | ${r.latency.p50.toFixed(1)} / ${r.latency.p99.toFixed(1)} ms | ${r.churn.p99.toFixed(1)} ms at ${r.churn.rate.toFixed(0)}/s | ${r.churn.cpu.agent.toFixed(2)} ms | ${r.rssBeforeChurn.toFixed(0)} / ${r.rssAfterChurn.toFixed(0)} MiB (${(((r.rssAfterChurn - r.rssBeforeChurn) / r.rssBeforeChurn) * 100).toFixed(1)} %) | ≥ ${best}/s |`,
    );
  }
}

process.on("SIGINT", () => {
  teardownNetns();
  process.exit(130);
});
await main();
