/**
 * skein-agent: the node daemon. Flags (each also settable in the --config YAML file, as the
 * camelCase key; flags win):
 *   --node-name NAME        this node (default: hostname)
 *   --kubeconfig PATH       default: $KUBECONFIG, then in-cluster, then ~/.kube/config
 *   --bpffs-root DIR        pins (default /sys/fs/bpf/skein)
 *   --cni-conf-dir DIR      where the conflist goes when ready (default /etc/cni/net.d)
 *   --cni-data-dir DIR      IPAM state dir given to the plugin (plugin default when absent)
 *   --vxlan-device NAME     (default skn_vxlan)      --vxlan-port N (default 4789)
 *   --encap bpf|device      pod traffic encapsulated by the datapath straight onto the uplink
 *                           (default), or through the VXLAN device
 *   --routing vxlan|native  how pod traffic crosses between nodes: VXLAN (default), or native
 *                           routing without encapsulation (routes to nodes on the uplink's L2
 *                           segment, BGP for the others; docs/architecture.md)
 *   --bgp-asn N             native routing's BGP (BIRD): this node's ASN (1..4294967295)
 *   --bgp-peers ASN@ADDR[:PORT],..   routers to peer with (passwords: config file only)
 *   --bgp-mesh              full iBGP mesh between the nodes of the Node list
 *                           (config file: `bgp: {asn, peers: [{address, asn, password, port}],
 *                           mesh}`; a flag wins over its field; docs/deploy.md)
 *   --bird-dir DIR          BIRD's config, control socket and pid file (default /run/skein/bird)
 *   --cluster-cidr CIDR,..  cluster pod space (default: union of nodes' pod CIDRs)
 *   --service-cidr CIDR     the Service ClusterIP range: pod egress to it is judged on the backend
 *                           after kube-proxy's translation (default: none, judged on the ClusterIP);
 *                           Services backed by non-pods are then not judged (docs/services.md)
 *   --service-lb bpf|off    who translates Services: Skein's datapath (bpf: kube-proxy not needed;
 *                           NodePorts on the node's InternalIP/ExternalIP addresses) or not Skein
 *                           (off, default: kube-proxy does, as before; docs/services-bpf.md)
 *   --health-addr H:P       /healthz /readyz /v1 (default 127.0.0.1:9879)
 *   --metrics-addr H:P      /metrics (default 0.0.0.0:9878; "" to disable)
 *   --policy-map-entries N  --verdict-events   --log-level debug|info|warn|error
 *   --bpf-object PATH       the datapath object (default: the one shipped with this build)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { KubeConfig } from "./k8s/client.js";
import { parse as parseYaml } from "yaml";
import { DEFAULT_AGENT_ADDR, DEFAULT_ROUTING_MODE, parseRoutingMode } from "../maps/agent-api.js";
import { DEFAULT_BPFFS_ROOT } from "../maps/pins.js";
import { Agent, ENCAP_MODES, type EncapMode } from "./agent.js";
import { DEFAULT_CNI_CONF_DIR } from "./cni-config.js";
import { parseListen, serveAgent } from "./http.js";
import { createLogger, errorFields, type Level, type Logger } from "./log.js";
import { DEFAULT_VXLAN_DEVICE, DEFAULT_VXLAN_PORT } from "./node/overlay.js";
import { PolicyEngine } from "../policy/engine.js";
import { BgpRouting } from "./routing/bgp.js";
import { BgpSettingsError, parseBgpSettings } from "./routing/bgp-settings.js";
import { DEFAULT_SETTINGS, encodeSettings } from "../maps/settings.js";
import { DEFAULT_SERVICE_LB, parseServiceLbMode, type DatapathOptions } from "../maps/datapath/spec.js";
import { Session as InspectorSession } from "node:inspector";
import type { NodeDatapath } from "./node-datapath.js";
import { KernelDatapath } from "./node/kernel-datapath.js";

/** BIRD's state (config, control socket, pid file) unless --bird-dir says otherwise. */
const DEFAULT_BIRD_DIR = "/run/skein/bird";

const flags = {
  config: { type: "string" },
  "node-name": { type: "string" },
  kubeconfig: { type: "string" },
  "bpffs-root": { type: "string" },
  "cni-conf-dir": { type: "string" },
  "cni-data-dir": { type: "string" },
  "vxlan-device": { type: "string" },
  "vxlan-port": { type: "string" },
  encap: { type: "string" },
  routing: { type: "string" },
  "bgp-asn": { type: "string" },
  "bgp-peers": { type: "string" },
  "bgp-mesh": { type: "boolean" },
  "bird-dir": { type: "string" },
  "cluster-cidr": { type: "string" },
  "service-cidr": { type: "string" },
  "service-lb": { type: "string" },
  "health-addr": { type: "string" },
  "metrics-addr": { type: "string" },
  "policy-map-entries": { type: "string" },
  "verdict-events": { type: "boolean" },
  "log-level": { type: "string" },
  "resync-interval": { type: "string" },
  "bpf-object": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

async function main(): Promise<number> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: flags, strict: true });
  if (values.help === true) {
    // Flag names only; what each does is in this file's header comment and docs/deploy.md.
    process.stdout.write(
      [
        "usage: skein-agent [--config FILE] [flags]   (every flag also settable in the YAML config as camelCase)",
        ...Object.keys(flags)
          .filter((f) => f !== "help")
          .map((f) => `  --${f}${flags[f as keyof typeof flags].type === "string" ? " VALUE" : ""}`),
        "",
      ].join("\n"),
    );
    return 0;
  }
  const file: Record<string, unknown> =
    typeof values.config === "string"
      ? ((parseYaml(readFileSync(values.config, "utf8")) as Record<string, unknown> | null) ?? {})
      : {};
  const get = (flag: keyof typeof flags): string | boolean | undefined => {
    const v = values[flag];
    if (v !== undefined) return v;
    const f = file[camel(flag)];
    return typeof f === "number" ? String(f) : (f as string | boolean | undefined);
  };
  const str = (flag: keyof typeof flags, fallback: string): string => {
    const v = get(flag);
    return typeof v === "string" ? v : fallback;
  };
  const int = (flag: keyof typeof flags, fallback: number | undefined): number | undefined => {
    const v = get(flag);
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`--${flag}: expected a non-negative integer, got ${String(v)}`);
    return n;
  };

  const encap = str("encap", "bpf");
  if (!(ENCAP_MODES as readonly string[]).includes(encap))
    throw new Error(`--encap: expected one of ${ENCAP_MODES.join(", ")}, got ${encap}`);
  // Checked before anything touches the node: a bad value leaves the running datapath as it is.
  const routing = parseRoutingMode(get("routing") ?? DEFAULT_ROUTING_MODE, "--routing (config key routing)");
  // Also checked before anything touches the node (a refused start keeps BIRD and its routes).
  const bgpSettings = parseBgpSettings({
    file: file.bgp,
    flags: { asn: values["bgp-asn"], peers: values["bgp-peers"], mesh: values["bgp-mesh"] },
  });
  if (bgpSettings !== null && routing !== "native")
    throw new BgpSettingsError("bgp", `BGP needs native routing (routing: native), not ${routing}`);
  const log = createLogger(str("log-level", "info") as Level).with({ component: "agent" });
  const nodeName = str("node-name", process.env.NODE_NAME ?? hostname());
  const kc = new KubeConfig();
  const kubeconfig = get("kubeconfig");
  if (typeof kubeconfig === "string") kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();

  const policyMapEntries = int("policy-map-entries", undefined);
  const serviceCidr = str("service-cidr", "");
  if (serviceCidr !== "") encodeSettings({ ...DEFAULT_SETTINGS, serviceCidr }); // throws on a bad CIDR
  let serviceLb;
  try {
    serviceLb = parseServiceLbMode(str("service-lb", DEFAULT_SERVICE_LB));
  } catch (err) {
    throw new Error(`--service-lb: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (serviceLb === "bpf" && serviceCidr === "")
    log.warn(
      "--service-lb bpf without --service-cidr: pods reach Services, but the node and hostNetwork pods do not (no route sends the Service range into the datapath)",
      { flag: "service-cidr", configKey: "serviceCidr" },
    );
  const cniDataDir = get("cni-data-dir");
  const bpfObject = get("bpf-object");
  const datapath: DatapathOptions = {
    ...(policyMapEntries === undefined ? {} : { policyMapEntries }),
    ...(typeof bpfObject === "string" ? { objectPath: bpfObject } : {}),
    settings: { ...(serviceCidr === "" ? {} : { serviceCidr }), routingNative: routing === "native" },
    serviceLb,
  };
  const bpffsRoot = str("bpffs-root", DEFAULT_BPFFS_ROOT);
  const cniConfDir = str("cni-conf-dir", DEFAULT_CNI_CONF_DIR);
  const startProfile = startProfiledDatapath({ bpffsRoot, datapath, cniConfDir }, log);
  const agent = new Agent({
    nodeName,
    kubeconfig: kc,
    bpffsRoot,
    cniConfDir,
    ...(typeof cniDataDir === "string" ? { cniDataDir } : {}),
    vxlanDevice: str("vxlan-device", DEFAULT_VXLAN_DEVICE),
    vxlanPort: int("vxlan-port", DEFAULT_VXLAN_PORT) ?? DEFAULT_VXLAN_PORT,
    encap: encap as EncapMode,
    routing,
    ...(bgpSettings === null
      ? {}
      : {
          bgp: new BgpRouting({
            settings: bgpSettings,
            dir: str("bird-dir", DEFAULT_BIRD_DIR),
            log: log.with({ component: "bgp" }),
          }),
        }),
    clusterCidrs: str("cluster-cidr", "")
      .split(",")
      .filter((c) => c !== ""),
    datapath,
    verdictEvents: get("verdict-events") === true || get("verdict-events") === "true",
    resyncIntervalMs: (int("resync-interval", 60) ?? 60) * 1000,
    debounceMs: 10,
    policy: new PolicyEngine({ nodeName }),
    log,
    ...(startProfile === undefined ? {} : { nodeDatapath: startProfile.datapath }),
  });

  const health = await serveAgent(
    agent,
    parseListen(str("health-addr", DEFAULT_AGENT_ADDR), "--health-addr"),
    log,
  );
  const metricsAddr = str("metrics-addr", "0.0.0.0:9878");
  const metrics =
    metricsAddr === ""
      ? undefined
      : await serveAgent(agent, parseListen(metricsAddr, "--metrics-addr"), log, { api: false });
  log.info("skein-agent starting", {
    node: nodeName,
    pid: process.pid,
    health: str("health-addr", DEFAULT_AGENT_ADDR),
    metrics: metricsAddr,
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping; the datapath keeps running", { signal });
    void agent
      .stop()
      .catch((err: unknown) => {
        log.error("stop failed", errorFields(err));
      })
      .finally(() => {
        health.close();
        metrics?.close();
        process.exitCode = 0;
      });
  };
  process.on("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.on("SIGINT", () => {
    stop("SIGINT");
  });
  // Started with --expose-gc (bench:scale does): SIGUSR2 collects garbage, for RSS measurements.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined)
    process.on("SIGUSR2", () => {
      gc();
      const m = process.memoryUsage();
      log.info("garbage collected", {
        heapUsedMiB: Math.round(m.heapUsed / 2 ** 17) / 8,
        externalMiB: Math.round(m.external / 2 ** 17) / 8,
        rssMiB: Math.round(m.rss / 2 ** 17) / 8,
      });
    });
  process.on("unhandledRejection", (err) => {
    log.error("unhandled rejection", errorFields(err));
  });

  await agent.start();
  if (startProfile !== undefined) {
    await agent.whenReady();
    startProfile.stop();
  }
  await startProfileIfAsked(agent, log);
  return 0;
}

/**
 * SKEIN_AGENT_START_PROF=FILE: a CPU profile of the agent's start, from the end of the datapath
 * load (the profiler's signals would interrupt the verifier) until ready, written to FILE, and a
 * sampled heap profile of what is live at ready (allocated since then) next to it (.heapprofile;
 * with SKEIN_AGENT_START_PROF_ALLOC=1 every allocation, collected or not). Summaries:
 * bench/profile-summary.ts.
 */
function startProfiledDatapath(
  options: { bpffsRoot: string; datapath: DatapathOptions; cniConfDir: string },
  log: Logger,
): { datapath: NodeDatapath; stop: () => void } | undefined {
  const file = process.env.SKEIN_AGENT_START_PROF;
  if (file === undefined || file === "") return undefined;
  const session = new InspectorSession();
  const datapath = new KernelDatapath(options);
  const load = datapath.load.bind(datapath);
  // The in-process inspector session answers synchronously: profiling has started when post returns.
  datapath.load = () => {
    const report = load();
    session.connect();
    session.post("Profiler.enable");
    session.post("Profiler.setSamplingInterval", { interval: 500 });
    session.post("Profiler.start");
    // Sampled allocations still live at ready: what the agent keeps, by allocation site.
    session.post("HeapProfiler.enable");
    session.post("HeapProfiler.startSampling", {
      samplingInterval: 32768,
      ...(process.env.SKEIN_AGENT_START_PROF_ALLOC === undefined
        ? {}
        : { includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }),
    });
    log.info("start-up CPU profile started", { file });
    return report;
  };
  return {
    datapath,
    stop: () => {
      session.post("Profiler.stop", (err, r) => {
        if (err === null) writeFileSync(file, JSON.stringify(r.profile));
        session.post("HeapProfiler.stopSampling", (herr, h) => {
          if (herr === null)
            writeFileSync(file.replace(/\.cpuprofile$/, "") + ".heapprofile", JSON.stringify(h.profile));
        });
        session.disconnect();
        log.info("start-up CPU profile written", { file, ...(err === null ? {} : errorFields(err)) });
      });
    },
  };
}

/**
 * SKEIN_AGENT_CPU_PROF=FILE: a CPU profile of the running agent from ready until SIGTERM, written
 * to FILE (`node --cpu-prof` cannot be used: its signals interrupt the verifier at load, EAGAIN).
 */
async function startProfileIfAsked(agent: Agent, log: Logger): Promise<void> {
  const file = process.env.SKEIN_AGENT_CPU_PROF;
  if (file === undefined || file === "") return;
  const { Session } = await import("node:inspector/promises");
  await agent.whenReady();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  log.info("CPU profile started", { file });
  process.once("SIGTERM", () => {
    void session.post("Profiler.stop").then(({ profile }) => {
      writeFileSync(file, JSON.stringify(profile));
    });
  });
}

main().catch((err: unknown) => {
  const { error, cause } = errorFields(err);
  process.stderr.write(`skein-agent: ${error}${cause === undefined ? "" : ` (cause: ${cause})`}\n`);
  process.exitCode = 1;
  // Watchers and servers may keep the loop alive; a failed start must end the process.
  setTimeout(() => process.exit(1), 100).unref();
});
