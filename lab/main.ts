/**
 * npm run lab [-- --nodes N --pods-per-node K --keep]   build the lab, show connectivity and policy
 *   [--routing vxlan|native]   how pod traffic crosses between nodes (agent --routing; default vxlan)
 *   [--racks N]                (native) N underlay subnets joined by a BIRD router; BGP across them
 *   [--service-proxy skein|kube-proxy|none [--proxy-mode iptables|nftables]]
 *       demo Services translated by Skein's datapath (default), kube-proxy's rules, or not at all
 *   [--cni-server on|off]      one resident CNI server per node (default on)
 * npm run lab -- teardown [--id ID | --all]              remove a kept lab
 * npm run lab -- status [--id ID]                         what a kept lab holds
 */
import { parseArgs } from "node:util";
import { DEFAULT_ROUTING_MODE, parseRoutingMode, type AgentStatus } from "../maps/agent-api.js";
import { WORLD_IP, Lab, type LabNode, type LabPod } from "./lab.js";
import { PROXY_MODES, type ProxyMode } from "./kube-proxy.js";
import { connectivityMatrix, renderMatrix, runLimited, summarize, type Path } from "./matrix.js";
import { ServiceProxy } from "./service-proxy.js";
import { programmedBackends, waitSkeinServices } from "./skein-services.js";
import { LabSmokeDriver } from "./smoke-driver.js";
import { renderSmokeReport, runSmoke } from "./smoke/smoke.js";

function say(line = ""): void {
  process.stdout.write(line + "\n");
}

async function up(values: {
  nodes?: string;
  "pods-per-node"?: string;
  keep?: boolean;
  id?: string;
  "service-proxy"?: string;
  "proxy-mode"?: string;
  routing?: string;
  racks?: string;
  "cni-server"?: string;
}): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces, BPF, bpffs)");
  const nodes = Number(values.nodes ?? 2);
  const perNode = Number(values["pods-per-node"] ?? 2);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16)
    throw new Error(`--nodes must be 1..16, not ${values.nodes}`);
  if (!Number.isInteger(perNode) || perNode < 1 || perNode > 20)
    throw new Error(`--pods-per-node must be 1..20, not ${values["pods-per-node"]}`);
  const serviceProxy = values["service-proxy"] ?? "skein";
  if (!(SERVICE_PROXIES as readonly string[]).includes(serviceProxy))
    throw new Error(`--service-proxy must be one of ${SERVICE_PROXIES.join(", ")}, not ${serviceProxy}`);
  const proxyMode = values["proxy-mode"] ?? "iptables";
  if (!(PROXY_MODES as readonly string[]).includes(proxyMode))
    throw new Error(`--proxy-mode must be one of ${PROXY_MODES.join(", ")}, not ${proxyMode}`);
  const routing = parseRoutingMode(values.routing ?? DEFAULT_ROUTING_MODE, "--routing");
  const racks = Number(values.racks ?? 1);
  if (!Number.isInteger(racks) || racks < 1 || racks > 4)
    throw new Error(`--racks must be 1..4, not ${values.racks}`);
  if (racks > 1 && routing !== "native")
    throw new Error("--racks needs --routing native (the racks are routed by BGP, not an overlay)");
  const cniServer = values["cni-server"] ?? "on";
  if (cniServer !== "on" && cniServer !== "off")
    throw new Error(`--cni-server must be on or off, not ${cniServer}`);
  // skein: the agents translate (--service-lb bpf). kube-proxy: the agents need the Service CIDR
  // to judge egress into it after kube-proxy's translation.
  const agentArgs = [
    `--routing=${routing}`,
    ...(serviceProxy === "skein"
      ? // The Service CIDR is routed into the VXLAN device, where node → ClusterIP is translated.
        ["--service-lb=bpf", `--service-cidr=${DEMO_SERVICE_CIDR}`]
      : serviceProxy === "kube-proxy"
        ? [`--service-cidr=${DEMO_SERVICE_CIDR}`]
        : []),
  ];
  const started = performance.now();
  const lab = await Lab.create({
    ...(values.id === undefined ? {} : { id: values.id }),
    ...(serviceProxy === "none" ? {} : { serviceCidr: DEMO_SERVICE_CIDR }),
    ...(racks > 1 ? { racks } : {}),
    cniServer: cniServer === "on",
    log: (l) => {
      say(l);
    },
  });
  let ok = false;
  let proxy: ServiceProxy | undefined;
  try {
    say(`lab ${lab.id}: underlay ${lab.state.subnet}, API server ${lab.state.api?.url}, routing ${routing}`);
    const labNodes: LabNode[] = [];
    for (let i = 0; i < nodes; i++) {
      const n = await lab.addNode({ waitReady: false, agentArgs });
      labNodes.push(n);
    }
    await Promise.all(labNodes.map((n) => lab.waitAgentReady(n)));
    if (lab.state.racks !== undefined)
      say(
        `racks: ${lab.state.racks.subnets.map((sn, i) => `rack ${i} ${sn}`).join(", ")}; router ${lab.state.racks.router} runs BIRD (route reflector, AS ${lab.state.racks.asn})`,
      );
    for (const n of labNodes)
      say(
        `node ${n.name}: ${n.ip}${n.rack === undefined ? "" : ` (rack ${n.rack})`}, pod CIDR ${n.podCidr}, agent pid ${n.agent?.pid}, bpffs ${n.bpffsRoot}`,
      );
    if (lab.state.racks !== undefined) await waitBgpRoutes(lab, labNodes);
    await lab.ensureNamespace("demo");
    for (const n of labNodes)
      for (let k = 0; k < perNode; k++) {
        const name = `pod-${n.index}${String.fromCharCode(97 + k)}`;
        const p = await lab.addPod({
          namespace: "demo",
          name,
          node: n,
          labels: { app: k === 0 ? "web" : "client", node: n.name },
        });
        say(`pod demo/${p.name} on ${p.node}: ${p.ip} (skein-cni ADD in ${n.netns})`);
      }
    // Give every agent a moment to learn the pods before probing; probes retry anyway.
    await waitPropagation(lab);
    const base = await connectivityMatrix(lab);
    say("\nconnectivity (TCP 8080 and ICMP):");
    say(renderMatrix(base));
    let paths = base;
    if (serviceProxy === "kube-proxy") {
      const kp = await ServiceProxy.start(lab.kubeConfig(), {
        mode: proxyMode as ProxyMode,
        nodes: () => labNodes,
        clusterCidr: CLUSTER_CIDR,
        log: (l) => {
          say(l);
        },
      });
      proxy = kp;
      paths = [...base, ...(await demoServices(lab, labNodes, kubeProxyWaiter(kp)))];
      say("");
    } else if (serviceProxy === "skein") {
      paths = [...base, ...(await demoServices(lab, labNodes, skeinWaiter(labNodes)))];
      say("");
    }
    say(summarize(paths));
    const masq = paths.filter((p) => p.kind === "pod → world" && p.protocol === "TCP");
    if (masq.length > 0)
      say(
        `pod → world seen from the world as: ${[...new Set(masq.map((p) => p.seenAs ?? "?"))].join(", ")} (node addresses: masqueraded)`,
      );
    const failed = paths.filter((p) => !p.ok).length;
    for (const f of paths.filter((p) => !p.ok))
      say(`FAILED ${f.kind}: ${f.from} → ${f.to} ${f.protocol}: ${f.error}`);
    say(
      `\nlab ${lab.id}: ${paths.length - paths.filter((p) => !p.ok).length}/${paths.length} paths ok in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    // The smoke test the Vagrant cluster runs too (lab/smoke), here through the lab driver.
    say(
      "\nsmoke test (lab/smoke: cross-node pods, then a NetworkPolicy that denies one flow and allows another):",
    );
    const smoke = await runSmoke(new LabSmokeDriver(lab), undefined, { convergeTimeoutMs: 20000 });
    say(renderSmokeReport(smoke));
    ok = failed === 0 && smoke.ok;
    if (values.keep === true) {
      say(`\nlab ${lab.id} kept running. Try:`);
      say(`  kubectl --kubeconfig ${lab.kubeconfigPath} get nodes,pods -A -o wide`);
      say(
        `  nsenter --net=/var/run/netns/${labNodes[0]?.netns} node dist/ctl/main.js endpoint list --bpffs-root ${labNodes[0]?.bpffsRoot}`,
      );
      say(`  bpftool map dump pinned ${labNodes[0]?.bpffsRoot}/skn_endpoints`);
      say(`  npm run lab -- teardown --id ${lab.id}`);
    }
    return ok ? 0 : 1;
  } finally {
    // The rules stay in the nodes' namespaces (with --keep too); only the watches end.
    await proxy?.stop();
    if (values.keep !== true) {
      const problems = await lab.teardown();
      say(
        problems.length === 0
          ? `lab ${lab.id} removed`
          : `teardown left problems:\n  ${problems.join("\n  ")}`,
      );
    }
  }
}

const SERVICE_PROXIES = ["skein", "kube-proxy", "none"] as const;
const DEMO_SERVICE_CIDR = "10.96.0.0/16";

/** Who translates the demo Services: waits until they are programmed, then says what is. */
interface ServiceTranslator {
  title: string;
  waitFor(
    services: { name: string; clusterIP: string; nodePort?: number; backends: number }[],
  ): Promise<void>;
  describe(services: { name: string; clusterIP: string; nodePort?: number }[]): string[];
}

function kubeProxyWaiter(proxy: ServiceProxy): ServiceTranslator {
  return {
    title: `Services through kube-proxy's ${proxy.mode} rules (lab/service-proxy.ts from the API's Services and EndpointSlices):`,
    waitFor: (wanted) =>
      proxy.waitFor("the demo Services' endpoints", (services) =>
        wanted.every((w) => {
          const s = services.find((x) => x.namespace === "demo" && x.name === w.name);
          return s !== undefined && s.endpoints.length === w.backends;
        }),
      ),
    describe: () =>
      proxy.services
        .filter((x) => x.namespace === "demo")
        .map(
          (s) =>
            `  demo/${s.name}: ClusterIP ${s.clusterIP}:80${s.ports[0]?.nodePort === undefined ? "" : `, NodePort ${s.ports[0].nodePort}`} → ${s.endpoints.map((e) => `${e.ip}:8080`).join(", ")}`,
        ),
  };
}

function skeinWaiter(nodes: readonly LabNode[]): ServiceTranslator {
  return {
    title:
      "Services translated by Skein's datapath (every agent with --service-lb bpf; skn_lb_* of each node):",
    waitFor: (wanted) =>
      waitSkeinServices(
        nodes,
        wanted.flatMap((w) => [
          { addr: w.clusterIP, port: 80, backends: w.backends },
          ...(w.nodePort === undefined
            ? []
            : nodes.map((n) => ({ addr: n.ip, port: w.nodePort ?? 0, backends: w.backends, node: n.name }))),
        ]),
      ),
    describe: (services) =>
      services.map((s) => {
        const first = nodes[0];
        const backends = first === undefined ? [] : (programmedBackends(first, s.clusterIP, 80) ?? []);
        return `  demo/${s.name}: ClusterIP ${s.clusterIP}:80${s.nodePort === undefined ? "" : `, NodePort ${s.nodePort}`} → ${backends.join(", ")} (slot order on ${first?.name ?? "?"}: local first)`;
      }),
  };
}
const DEMO_NODE_PORT = 30080;
const CLUSTER_CIDR = "10.244.0.0/16";

/**
 * The demo Services, created in the API server: demo/web (NodePort 30080, port 80 → every "web"
 * pod's 8080) and demo/web-<i> (port 80 → the web pod on node i). lab/service-proxy.ts turns them
 * and the EndpointSlice controller's slices into kube-proxy's rules in every node; this waits until
 * they are there, then probes pod → ClusterIP (same node and cross node), node → ClusterIP and
 * world → NodePort. Returns the probes as connectivity paths; the caller stops `proxy`.
 */
async function demoServices(lab: Lab, nodes: LabNode[], translator: ServiceTranslator): Promise<Path[]> {
  const core = lab.core();
  const create = async (name: string, selector: Record<string, string>, nodePort?: number) => {
    const svc = await core.createNamespacedService({
      namespace: "demo",
      body: {
        metadata: { name },
        spec: {
          ...(nodePort === undefined ? {} : { type: "NodePort" }),
          selector,
          ports: [
            {
              name: "http",
              port: 80,
              targetPort: 8080,
              protocol: "TCP",
              ...(nodePort === undefined ? {} : { nodePort }),
            },
          ],
        },
      },
    });
    return svc.spec?.clusterIP ?? "";
  };
  const webIp = await create("web", { app: "web" }, DEMO_NODE_PORT);
  const perNode = new Map<string, string>();
  for (const n of nodes) perNode.set(n.name, await create(`web-${n.index}`, { app: "web", node: n.name }));
  const webPods = lab.state.pods.filter((p) => p.labels.app === "web");
  const wanted = [
    { name: "web", clusterIP: webIp, nodePort: DEMO_NODE_PORT, backends: webPods.length },
    ...nodes.map((n) => ({ name: `web-${n.index}`, clusterIP: perNode.get(n.name) ?? "", backends: 1 })),
  ];
  await translator.waitFor(wanted);
  say(`\n${translator.title}`);
  for (const line of translator.describe(wanted)) say(line);
  const jobs: (() => Promise<Path>)[] = [];
  const probe = (
    from: LabPod | LabNode | "world",
    label: string,
    to: string,
    host: string,
    port: number,
    kind: Path["kind"],
  ) =>
    jobs.push(async () => {
      const r = await lab.probe(from, "TCP", host, port, 2000);
      return {
        from: label,
        to,
        kind,
        protocol: "TCP",
        ok: r.ok,
        ms: r.ms,
        ...(r.reply ? { seenAs: `${r.reply.name} saw ${r.reply.peer}` } : {}),
        ...(r.error === undefined ? {} : { error: r.error }),
      };
    });
  for (const p of lab.state.pods)
    for (const n of nodes) {
      const ip = perNode.get(n.name) ?? "";
      probe(
        p,
        `demo/${p.name}`,
        `demo/web-${n.index} ${ip}:80`,
        ip,
        80,
        p.node === n.name ? "pod → ClusterIP (same node)" : "pod → ClusterIP (cross node)",
      );
    }
  for (const n of nodes) probe(n, n.name, `demo/web ${webIp}:80`, webIp, 80, "node → ClusterIP");
  for (const n of nodes)
    probe(
      "world",
      `world ${WORLD_IP}`,
      `${n.ip}:${DEMO_NODE_PORT}`,
      n.ip,
      DEMO_NODE_PORT,
      "world → NodePort",
    );
  const paths = await runLimited(jobs, 16);
  // Both backends of demo/web seen from one pod per node: the choice is random per connection.
  for (const n of nodes) {
    const from = lab.state.pods.find((p) => p.node === n.name);
    if (from === undefined) continue;
    paths.push(
      await bothBackends(
        lab,
        from,
        webIp,
        webPods.map((p) => p.name),
      ),
    );
  }
  for (const p of paths)
    say(
      `  ${p.from.padEnd(18)} → ${p.to.padEnd(28)} ${p.ok ? `✓ ${p.seenAs ?? "?"}` : `✗ ${p.error ?? ""}`}`,
    );
  return paths;
}

/** Connects to `ip`:80 from `from` until every one of `names` answered (at most 40 connections). */
async function bothBackends(lab: Lab, from: LabPod, ip: string, names: readonly string[]): Promise<Path> {
  const seen = new Set<string>();
  const started = performance.now();
  let tries = 0;
  let error: string | undefined;
  while (tries < 40 && names.some((n) => !seen.has(n))) {
    tries++;
    const r = await lab.probe(from, "TCP", ip, 80, 2000);
    if (r.reply) seen.add(r.reply.name.replace(/^.*\//, ""));
    else error = r.error;
  }
  const ok = names.every((n) => seen.has(n));
  return {
    from: `demo/${from.name}`,
    to: `demo/web ${ip}:80`,
    kind: "pod → ClusterIP (every backend)",
    protocol: "TCP",
    ok,
    ms: Math.round(performance.now() - started),
    seenAs: `${[...seen].sort().join(" and ")} answered in ${tries} connections`,
    ...(ok
      ? {}
      : {
          error: `saw ${[...seen].join(", ") || "none"} of ${names.join(", ")}${error === undefined ? "" : ` (${error})`}`,
        }),
  };
}

async function waitPropagation(lab: Lab): Promise<void> {
  const deadline = Date.now() + 10000;
  const pods = lab.state.pods;
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      for (;;) {
        const r = await lab.probe(from, "TCP", to.ip, 8080, 500);
        if (r.ok || Date.now() > deadline) break;
      }
    }
  }
}

async function teardown(values: { id?: string; all?: boolean }): Promise<number> {
  const ids = values.all === true ? Lab.list() : values.id !== undefined ? [values.id] : Lab.list();
  if (ids.length === 0) {
    say("no lab to remove");
    return 0;
  }
  if (ids.length > 1 && values.all !== true)
    throw new Error(`several labs exist (${ids.join(", ")}): pass --id ID or --all`);
  let code = 0;
  for (const id of ids) {
    const problems = await Lab.open(id).teardown();
    if (problems.length > 0) code = 1;
    say(problems.length === 0 ? `lab ${id} removed` : `lab ${id}: ${problems.join("; ")}`);
  }
  return code;
}

function status(values: { id?: string }): number {
  const ids = values.id !== undefined ? [values.id] : Lab.list();
  for (const id of ids) {
    const lab = Lab.open(id);
    say(
      `lab ${id}: underlay ${lab.state.subnet}, API ${lab.state.api?.url}, kubeconfig ${lab.kubeconfigPath}`,
    );
    for (const n of lab.state.nodes)
      say(
        `  node ${n.name} ${n.ip} ${n.podCidr} netns ${n.netns} agent ${n.agent?.pid}${n.cniServer == null ? "" : ` cni-server ${n.cniServer.pid} ${n.cniSocket}`}`,
      );
    for (const p of lab.state.pods) say(`  pod ${p.namespace}/${p.name} ${p.ip} on ${p.node}`);
  }
  if (ids.length === 0) say("no lab");
  return 0;
}

const USAGE = `usage:
  npm run lab [-- --nodes N --pods-per-node K --keep]   build the lab, show connectivity and policy
      [--service-proxy skein|kube-proxy|none [--proxy-mode iptables|nftables]]
                                                        and demo Services through Skein's datapath
                                                        (default), kube-proxy's rules, or none
      [--routing vxlan|native]                          pod traffic between nodes: VXLAN (default)
                                                        or routed without encapsulation
      [--racks N]                                       (native) N underlay subnets joined by a router
                                                        running BIRD; nodes alternate racks, BGP routes
      [--cni-server on|off]                             one resident CNI server per node, its socket
                                                        passed to CNI calls in SKEIN_CNI_SOCKET (default on)
  npm run lab -- teardown [--id ID | --all]              remove a kept lab
  npm run lab -- status [--id ID]                         what a kept lab holds
`;

function parseCommandLine(): ReturnType<typeof parseLabArgs> | undefined {
  try {
    return parseLabArgs();
  } catch (err) {
    // parseArgs' own message (unknown option, missing value), without its stack trace.
    process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exitCode = 2;
    return undefined;
  }
}

function parseLabArgs() {
  return parseArgs({
    options: {
      nodes: { type: "string" },
      "pods-per-node": { type: "string" },
      keep: { type: "boolean" },
      id: { type: "string" },
      all: { type: "boolean" },
      "service-proxy": { type: "string" },
      "proxy-mode": { type: "string" },
      routing: { type: "string" },
      racks: { type: "string" },
      "cni-server": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
}

const parsed = parseCommandLine();
if (parsed?.values.help === true) process.stdout.write(USAGE);
else if (parsed !== undefined) {
  const { values, positionals } = parsed;
  const verb = positionals[0] ?? "up";
  const runVerb =
    verb === "teardown"
      ? teardown(values)
      : verb === "status"
        ? Promise.resolve(status(values))
        : verb === "up"
          ? up(values)
          : Promise.reject(new Error(`unknown lab command ${verb} (up, teardown, status)`));
  runVerb.then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * With racks: every node has every other node's pod CIDR route (direct in its rack, BGP across),
 * as its agent's status reports, within 60 s; prints each node's routes and BGP sessions.
 */
async function waitBgpRoutes(lab: Lab, labNodes: readonly LabNode[]): Promise<void> {
  const deadline = Date.now() + 60000;
  for (const n of labNodes) {
    for (;;) {
      const status = (await (await fetch(lab.agentUrl(n, "/v1/status"))).json()) as AgentStatus;
      const routes = status.nodeRoutes.filter((r) => r.node !== n.name);
      const missing = routes.filter((r) => r.source === "none");
      if (missing.length === 0 || Date.now() > deadline) {
        say(
          `node ${n.name}: routes ${routes.map((r) => `${r.podCidr} ${r.source}${r.peer === undefined ? "" : `(${r.peer})`}`).join(", ")}; BGP ${(status.bgp?.sessions ?? []).map((x) => `${x.peer} ${x.state}`).join(", ")}`,
        );
        if (missing.length > 0)
          say(`node ${n.name}: no route yet to ${missing.map((r) => r.podCidr).join(", ")}`);
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
