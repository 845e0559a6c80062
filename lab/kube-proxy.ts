/**
 * A model of kube-proxy for the lab: the netfilter rules kube-proxy's iptables and nftables modes
 * write for Services, written into one node's network namespace (through
 * `nsenter --net=/var/run/netns/NODE`), so that Skein's datapath meets Service traffic translated by
 * the node exactly as it would beside a real kube-proxy.
 *
 * What is modelled (the shapes and the semantics that matter to the datapath), per mode:
 * - iptables: nat KUBE-SERVICES (jumped to from PREROUTING and OUTPUT) → KUBE-SVC-* (one
 *   `-m statistic --mode random --probability` rule per endpoint but the last) → KUBE-SEP-* (DNAT to
 *   the endpoint; KUBE-MARK-MASQ when the endpoint talks to itself, i.e. hairpin); off-cluster
 *   sources to a ClusterIP, NodePorts and externalIPs are marked 0x4000 and masqueraded by
 *   KUBE-POSTROUTING; externalTrafficPolicy Local goes through KUBE-SVL-* (this node's endpoints
 *   only, client address kept); KUBE-NODEPORTS for local destinations; filter KUBE-SERVICES and
 *   KUBE-EXTERNAL-SERVICES reject a Service without endpoints (icmp-port-unreachable) and drop
 *   external traffic for a Local service with no endpoint on this node.
 * - nftables: `table ip kube-proxy` with the base chains (nat prerouting/output/postrouting, filter
 *   input/forward/output), verdict maps `service-ips`, `service-nodeports`, `no-endpoint-services`,
 *   `no-endpoint-nodeports`, and `service-*`, `external-*`, `endpoint-*` chains (`numgen random`
 *   for the choice), `mark-for-masquerade` and `masquerading` with the same 0x4000 bit.
 *
 * Not modelled: incremental syncs (every apply replaces the rules whole), session affinity,
 * loadBalancer ingress, health check node ports, KUBE-FORWARD's accept rules (the lab's FORWARD
 * policy accepts), IPv6, SCTP, and IPVS mode (this kernel has no IPVS).
 *
 * The input is a plain list of Services with their endpoints, so it does not depend on where they
 * come from (later: the lab API server's Services and EndpointSlices).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";

export type ProxyMode = "iptables" | "nftables";
export const PROXY_MODES: readonly ProxyMode[] = ["iptables", "nftables"];

export interface ServicePortSpec {
  /** The port's name in the Service ("" or absent for a single unnamed port). */
  name?: string;
  port: number;
  protocol: "TCP" | "UDP";
  nodePort?: number;
  targetPort: number;
}

export interface ServiceEndpoint {
  ip: string;
  nodeName: string;
  ready: boolean;
}

export interface ProxiedService {
  name: string;
  namespace: string;
  clusterIP: string;
  ports: ServicePortSpec[];
  endpoints: ServiceEndpoint[];
  externalTrafficPolicy: "Cluster" | "Local";
  externalIPs?: string[];
}

export interface ProxyNodeOptions {
  /** The node the rules are for: externalTrafficPolicy Local picks its endpoints. */
  nodeName: string;
  /** The cluster's pod space (kube-proxy's --cluster-cidr): other sources to a ClusterIP are masqueraded. */
  clusterCidr?: string;
}

/** The mark bit kube-proxy uses for "masquerade this" (KUBE-MARK-MASQ, mark-for-masquerade). */
export const MASQ_MARK = 0x4000;
export const NFT_TABLE = "kube-proxy";

interface PortView {
  svc: ProxiedService;
  port: ServicePortSpec;
  /** "ns/name:port" as kube-proxy prints a ServicePortName. */
  portName: string;
  proto: "tcp" | "udp";
  ready: ServiceEndpoint[];
  local: ServiceEndpoint[];
}

function views(services: readonly ProxiedService[], nodeName: string): PortView[] {
  const out: PortView[] = [];
  for (const svc of services)
    for (const port of svc.ports) {
      const ready = svc.endpoints.filter((e) => e.ready);
      out.push({
        svc,
        port,
        portName: `${svc.namespace}/${svc.name}${port.name ? `:${port.name}` : ""}`,
        proto: port.protocol === "TCP" ? "tcp" : "udp",
        ready,
        local: ready.filter((e) => e.nodeName === nodeName),
      });
    }
  return out;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** kube-proxy's chain-name hash: base32 of a sha256, truncated (16 characters in iptables mode). */
function hash(text: string, length: number): string {
  const digest = createHash("sha256").update(text).digest();
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += BASE32[(value >>> (bits - 5)) & 31] ?? "";
      bits -= 5;
    }
    value &= 0xff;
  }
  return out;
}

/** The random choice of `endpoints`, one rule each: probability 1/(n-i) for the i-th, none for the last. */
function probability(i: number, n: number): string {
  return (1 / (n - i)).toFixed(11);
}

/**
 * The `iptables-restore --noflush` input for these Services on one node: the nat and filter
 * tables' KUBE-* chains and the jumps into them from the built-in chains. Pure.
 */
export function iptablesRules(services: readonly ProxiedService[], opts: ProxyNodeOptions): string {
  const natChains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"];
  const filterChains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"];
  const nat: string[] = [
    `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
    `-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000`,
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000`,
  ];
  const filter: string[] = [
    `-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
    `-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
    `-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
  ];
  for (const v of views(services, opts.nodeName)) {
    const key = `${v.portName}${v.proto}`;
    const svcChain = `KUBE-SVC-${hash(key, 16)}`;
    const extChain = `KUBE-EXT-${hash(key, 16)}`;
    const svlChain = `KUBE-SVL-${hash(key, 16)}`;
    const match = (dst: string) => `-d ${dst}/32 -p ${v.proto} -m ${v.proto} --dport ${v.port.port}`;
    const local = v.svc.externalTrafficPolicy === "Local";
    const externalIPs = v.svc.externalIPs ?? [];
    const nodePort = v.port.nodePort;
    const external = externalIPs.length > 0 || nodePort !== undefined;

    if (v.ready.length === 0) {
      // No endpoint anywhere: the client gets an ICMP port unreachable at once.
      const reject = "-j REJECT --reject-with icmp-port-unreachable";
      filter.push(
        `-A KUBE-SERVICES ${match(v.svc.clusterIP)} -m comment --comment "${v.portName} has no endpoints" ${reject}`,
      );
      for (const ext of externalIPs)
        filter.push(
          `-A KUBE-EXTERNAL-SERVICES ${match(ext)} -m comment --comment "${v.portName} has no endpoints" ${reject}`,
        );
      if (nodePort !== undefined)
        filter.push(
          `-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL -p ${v.proto} -m ${v.proto} --dport ${nodePort} -m comment --comment "${v.portName} has no endpoints" ${reject}`,
        );
      continue;
    }

    const seps = v.ready.map((e) => ({
      e,
      chain: `KUBE-SEP-${hash(`${key}${e.ip}:${v.port.targetPort}`, 16)}`,
    }));
    natChains.push(svcChain, ...seps.map((s) => s.chain));
    nat.push(
      `-A KUBE-SERVICES ${match(v.svc.clusterIP)} -m comment --comment "${v.portName} cluster IP" -j ${svcChain}`,
    );
    if (opts.clusterCidr !== undefined)
      nat.push(
        `-A ${svcChain} ! -s ${opts.clusterCidr} ${match(v.svc.clusterIP)} -m comment --comment "${v.portName} cluster IP" -j KUBE-MARK-MASQ`,
      );
    const choose = (chain: string, list: typeof seps) => {
      list.forEach((s, i) => {
        const comment = `-m comment --comment "${v.portName} -> ${s.e.ip}:${v.port.targetPort}"`;
        nat.push(
          i < list.length - 1
            ? `-A ${chain} ${comment} -m statistic --mode random --probability ${probability(i, list.length)} -j ${s.chain}`
            : `-A ${chain} ${comment} -j ${s.chain}`,
        );
      });
    };
    choose(svcChain, seps);
    for (const s of seps)
      nat.push(
        `-A ${s.chain} -s ${s.e.ip}/32 -m comment --comment "${v.portName}" -j KUBE-MARK-MASQ`,
        `-A ${s.chain} -p ${v.proto} -m comment --comment "${v.portName}" -m ${v.proto} -j DNAT --to-destination ${s.e.ip}:${v.port.targetPort}`,
      );

    if (!external) continue;
    natChains.push(extChain);
    for (const ext of externalIPs)
      nat.push(
        `-A KUBE-SERVICES ${match(ext)} -m comment --comment "${v.portName} external IP" -j ${extChain}`,
      );
    if (nodePort !== undefined)
      nat.push(
        `-A KUBE-NODEPORTS -p ${v.proto} -m comment --comment "${v.portName}" -m ${v.proto} --dport ${nodePort} -j ${extChain}`,
      );
    if (!local) {
      nat.push(
        `-A ${extChain} -m comment --comment "masquerade traffic for ${v.portName} external destinations" -j KUBE-MARK-MASQ`,
        `-A ${extChain} -j ${svcChain}`,
      );
      continue;
    }
    // externalTrafficPolicy Local: pods and the node itself still use every endpoint; the rest
    // only this node's, with the client's address kept.
    if (opts.clusterCidr !== undefined)
      nat.push(
        `-A ${extChain} -s ${opts.clusterCidr} -m comment --comment "pod traffic for ${v.portName} external destinations" -j ${svcChain}`,
      );
    nat.push(
      `-A ${extChain} -m comment --comment "masquerade LOCAL traffic for ${v.portName} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
      `-A ${extChain} -m comment --comment "route LOCAL traffic for ${v.portName} external destinations" -m addrtype --src-type LOCAL -j ${svcChain}`,
    );
    if (v.local.length === 0) {
      const drop = `-m comment --comment "${v.portName} has no local endpoints" -j DROP`;
      for (const ext of externalIPs) filter.push(`-A KUBE-EXTERNAL-SERVICES ${match(ext)} ${drop}`);
      if (nodePort !== undefined)
        filter.push(
          `-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL -p ${v.proto} -m ${v.proto} --dport ${nodePort} ${drop}`,
        );
      continue;
    }
    natChains.push(svlChain);
    nat.push(`-A ${extChain} -j ${svlChain}`);
    choose(
      svlChain,
      seps.filter((s) => v.local.includes(s.e)),
    );
  }
  nat.push(
    `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
  );
  return [
    "*nat",
    ...natChains.map((c) => `:${c} - [0:0]`),
    ...nat,
    "COMMIT",
    "*filter",
    ...filterChains.map((c) => `:${c} - [0:0]`),
    ...filter,
    "COMMIT",
    "",
  ].join("\n");
}

/** kube-proxy's nftables names: "<prefix>-<HASH8>-<ns>/<name>/<proto>/<port name>". */
function nftName(prefix: string, v: PortView, suffix = ""): string {
  const base = `${v.svc.namespace}/${v.svc.name}/${v.proto}/${v.port.name ?? ""}`;
  return `${prefix}-${hash(base + suffix, 8)}-${base}${suffix}`;
}

/** The `nft -f` input for these Services on one node: `table ip kube-proxy`, replaced whole. Pure. */
export function nftablesRules(services: readonly ProxiedService[], opts: ProxyNodeOptions): string {
  const chains: string[] = [];
  const serviceIps: string[] = [];
  const serviceNodeports: string[] = [];
  const noEndpointServices: string[] = [];
  const noEndpointNodeports: string[] = [];
  const chain = (name: string, rules: string[]) => {
    chains.push(`  chain ${name} {`, ...rules.map((r) => `    ${r}`), "  }");
  };
  const vmapTo = (eps: { chain: string }[]) =>
    eps.length === 1
      ? `goto ${eps[0]?.chain}`
      : `numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${e.chain}`).join(", ")} }`;

  for (const v of views(services, opts.nodeName)) {
    const externalIPs = v.svc.externalIPs ?? [];
    const nodePort = v.port.nodePort;
    if (v.ready.length === 0) {
      noEndpointServices.push(`${v.svc.clusterIP} . ${v.proto} . ${v.port.port} : goto reject-chain`);
      for (const ext of externalIPs)
        noEndpointServices.push(`${ext} . ${v.proto} . ${v.port.port} : goto reject-chain`);
      if (nodePort !== undefined) noEndpointNodeports.push(`${v.proto} . ${nodePort} : goto reject-chain`);
      continue;
    }
    const svcChain = nftName("service", v);
    const extChain = nftName("external", v);
    const eps = v.ready.map((e) => ({ e, chain: nftName("endpoint", v, `__${e.ip}/${v.port.targetPort}`) }));
    const masqOffCluster =
      opts.clusterCidr === undefined
        ? []
        : [
            `ip daddr ${v.svc.clusterIP} ${v.proto} dport ${v.port.port} ip saddr != ${opts.clusterCidr} jump mark-for-masquerade`,
          ];
    chain(svcChain, [...masqOffCluster, vmapTo(eps)]);
    for (const ep of eps)
      chain(ep.chain, [
        `ip saddr ${ep.e.ip} jump mark-for-masquerade`,
        `meta l4proto ${v.proto} dnat to ${ep.e.ip}:${v.port.targetPort}`,
      ]);
    serviceIps.push(`${v.svc.clusterIP} . ${v.proto} . ${v.port.port} : goto ${svcChain}`);
    if (externalIPs.length === 0 && nodePort === undefined) continue;

    const local = v.svc.externalTrafficPolicy === "Local";
    const localEps = eps.filter((ep) => v.local.includes(ep.e));
    if (local && localEps.length === 0) {
      for (const ext of externalIPs) noEndpointServices.push(`${ext} . ${v.proto} . ${v.port.port} : drop`);
      if (nodePort !== undefined) noEndpointNodeports.push(`${v.proto} . ${nodePort} : drop`);
    }
    chain(
      extChain,
      local
        ? [
            ...(opts.clusterCidr === undefined ? [] : [`ip saddr ${opts.clusterCidr} goto ${svcChain}`]),
            "fib saddr type local jump mark-for-masquerade",
            `fib saddr type local goto ${svcChain}`,
            ...(localEps.length > 0 ? [vmapTo(localEps)] : []),
          ]
        : ["jump mark-for-masquerade", `goto ${svcChain}`],
    );
    for (const ext of externalIPs) serviceIps.push(`${ext} . ${v.proto} . ${v.port.port} : goto ${extChain}`);
    if (nodePort !== undefined) serviceNodeports.push(`${v.proto} . ${nodePort} : goto ${extChain}`);
  }

  const map = (name: string, type: string, elements: string[]) => [
    `  map ${name} {`,
    `    type ${type}`,
    ...(elements.length > 0 ? [`    elements = { ${elements.join(", ")} }`] : []),
    "  }",
  ];
  const base = (name: string, hook: string, rules: string[]) => [
    `  chain ${name} {`,
    `    ${hook}`,
    ...rules.map((r) => `    ${r}`),
    "  }",
  ];
  const local = "fib daddr type local ip daddr != 127.0.0.0/8";
  return [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    `  comment "rules for kube-proxy"`,
    ...map("service-ips", "ipv4_addr . inet_proto . inet_service : verdict", serviceIps),
    ...map("service-nodeports", "inet_proto . inet_service : verdict", serviceNodeports),
    ...map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict", noEndpointServices),
    ...map("no-endpoint-nodeports", "inet_proto . inet_service : verdict", noEndpointNodeports),
    ...base("filter-input", "type filter hook input priority -110; policy accept;", [
      "ct state new jump nodeport-endpoints-check",
      "ct state new jump service-endpoints-check",
    ]),
    ...base("filter-forward", "type filter hook forward priority -110; policy accept;", [
      "ct state new jump service-endpoints-check",
    ]),
    ...base("filter-output", "type filter hook output priority -110; policy accept;", [
      "ct state new jump service-endpoints-check",
    ]),
    ...base("nat-prerouting", "type nat hook prerouting priority -100; policy accept;", ["jump services"]),
    ...base("nat-output", "type nat hook output priority -100; policy accept;", ["jump services"]),
    ...base("nat-postrouting", "type nat hook postrouting priority 100; policy accept;", [
      "jump masquerading",
    ]),
    "  chain masquerading {",
    `    meta mark & ${hex(MASQ_MARK)} == 0 return`,
    `    meta mark set meta mark ^ ${hex(MASQ_MARK)}`,
    "    masquerade fully-random",
    "  }",
    "  chain mark-for-masquerade {",
    `    meta mark set meta mark | ${hex(MASQ_MARK)}`,
    "  }",
    "  chain services {",
    "    ip daddr . meta l4proto . th dport vmap @service-ips",
    `    ${local} meta l4proto . th dport vmap @service-nodeports`,
    "  }",
    "  chain service-endpoints-check {",
    "    ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
    "  }",
    "  chain nodeport-endpoints-check {",
    `    ${local} meta l4proto . th dport vmap @no-endpoint-nodeports`,
    "  }",
    "  chain reject-chain {",
    "    reject",
    "  }",
    ...chains,
    "}",
    "",
  ].join("\n");
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

function run(netns: string, argv: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, ...argv],
      { maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err === null) resolve(stdout);
        else reject(new Error(`${argv.join(" ")} in ${netns}: ${stderr.trim() || err.message}`));
      },
    );
    // A command that exits before reading its input (nsenter without the namespace) breaks the
    // pipe: its exit status is the error to report, not an uncaught EPIPE.
    child.stdin?.on("error", () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Writes the Services' rules into the node namespace `netns` (`/var/run/netns/NETNS`), replacing
 * whatever this module wrote there before in either mode. Throws when a command fails (its stderr
 * in the message).
 */
export async function applyKubeProxy(
  netns: string,
  mode: ProxyMode,
  services: readonly ProxiedService[],
  opts: ProxyNodeOptions,
): Promise<void> {
  await removeKubeProxy(netns);
  if (mode === "iptables") await run(netns, ["iptables-restore", "--noflush"], iptablesRules(services, opts));
  else await run(netns, ["nft", "-f", "-"], nftablesRules(services, opts));
}

/** Removes every rule and chain of both modes from `netns`; what is absent is skipped. */
export async function removeKubeProxy(netns: string): Promise<void> {
  await run(netns, ["nft", "-f", "-"], `table ip ${NFT_TABLE}\ndelete table ip ${NFT_TABLE}\n`);
  for (const table of ["nat", "filter"]) {
    const saved = await run(netns, ["iptables-save", "-t", table]).catch(() => "");
    const jumps = saved
      .split("\n")
      .filter((l) => /^-A (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) .*-j KUBE-/.test(l));
    const kube = saved
      .split("\n")
      .filter((l) => l.startsWith(":KUBE-"))
      .map((l) => l.slice(1).split(" ")[0] ?? "");
    if (jumps.length === 0 && kube.length === 0) continue;
    const script = [
      `*${table}`,
      ...kube.map((c) => `:${c} - [0:0]`),
      ...jumps.map((l) => l.replace(/^-A /, "-D ")),
      ...kube.map((c) => `-X ${c}`),
      "COMMIT",
      "",
    ].join("\n");
    await run(netns, ["iptables-restore", "--noflush"], script);
  }
}
