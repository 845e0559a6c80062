/**
 * The BIRD configuration of the lab's rack router (`npm run lab -- --routing native --racks 2`, and
 * test/e2e/bgp.test.ts): an iBGP route reflector for the nodes of every rack, in the nodes' ASN,
 * installing what it learns into its own kernel table so that it forwards pod traffic between the
 * racks. Like a top-of-rack router it does not filter: each node's import filter is what refuses
 * prefixes that are not a node's pod CIDR; `extraPrefixes` lets a test announce such a prefix.
 */
export interface RouterClient {
  /** The client's address (a node's InternalIP). */
  address: string;
  /** The router's own address on the client's subnet. */
  local: string;
}

export interface RouterConfigInput {
  routerId: string;
  asn: number;
  clients: readonly RouterClient[];
  /** Dynamic neighbours: any address of `prefix` may connect (the router listens on `local`). */
  ranges?: readonly { prefix: string; local: string }[];
  /** Prefixes announced from a blackhole static route (a misbehaving peer, for tests). */
  extraPrefixes?: readonly string[];
}

/** The router's BIRD configuration text. */
export function renderRouterConfig(input: RouterConfigInput): string {
  const lines = [
    "# The Skein lab's rack router: route reflector for the nodes.",
    `router id ${input.routerId};`,
    "log stderr all;",
    "timeformat protocol iso long;",
    "protocol device { scan time 10; }",
    // Connected subnets: the clients' next hops (iBGP resolves them recursively) are on them.
    "protocol direct { ipv4; }",
    "protocol kernel {",
    "  ipv4 { import none; export filter { if source = RTS_BGP then accept; reject; }; };",
    "  graceful restart on;",
    "}",
  ];
  const extra = input.extraPrefixes ?? [];
  if (extra.length > 0)
    lines.push("protocol static lab_extra {", "  ipv4;", ...extra.map((p) => `  route ${p} blackhole;`), "}");
  for (const c of input.clients)
    lines.push(
      `protocol bgp client_${c.address.replaceAll(".", "_")} {`,
      `  local ${c.local} as ${input.asn};`,
      `  neighbor ${c.address} as ${input.asn};`,
      "  rr client;",
      "  graceful restart on;",
      "  connect retry time 5;",
      "  ipv4 { import all; export all; };",
      "}",
    );
  for (const [i, r] of (input.ranges ?? []).entries())
    lines.push(
      `protocol bgp rack${i} {`,
      `  local ${r.local} as ${input.asn};`,
      `  neighbor range ${r.prefix} as ${input.asn};`,
      `  dynamic name "rack${i}_";`,
      "  rr client;",
      "  graceful restart on;",
      "  ipv4 { import all; export all; };",
      "}",
    );
  return lines.join("\n") + "\n";
}
