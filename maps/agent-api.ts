/**
 * The agent's local HTTP API as a contract: the address it listens on by default, its paths and
 * the JSON bodies it sends. The agent (agent/http.ts) serves them and skeinctl (ctl/agent-client.ts)
 * reads them; neither imports the other, both import this.
 */

/** `skein-agent --health-addr` default: /healthz, /readyz, /metrics and /v1/*. */
export const DEFAULT_AGENT_ADDR = "127.0.0.1:9879";

/** How pod traffic is encapsulated (`skein-agent --encap`). */
export type EncapMode = "bpf" | "device";
export const ENCAP_MODES: readonly EncapMode[] = ["bpf", "device"];

/**
 * How pod traffic crosses between nodes (`skein-agent --routing`, ConfigMap key `routing`):
 * "vxlan" encapsulates it (the source identity travels in the VNI); "native" routes it
 * unencapsulated by the kernel's routes (direct routes to nodes on the uplink's L2 segment, BGP for
 * the others) and the receiver takes the source identity from its ipcache. docs/architecture.md.
 */
export type RoutingMode = "vxlan" | "native";
export const ROUTING_MODES: readonly RoutingMode[] = ["vxlan", "native"];
export const DEFAULT_ROUTING_MODE: RoutingMode = "vxlan";

/** `value` as a RoutingMode. Throws a RangeError naming the accepted values for anything else. */
export function parseRoutingMode(value: unknown, what = "routing"): RoutingMode {
  if (typeof value === "string" && (ROUTING_MODES as readonly string[]).includes(value))
    return value as RoutingMode;
  throw new RangeError(
    `${what}: unknown routing mode ${JSON.stringify(value)}; expected one of ${ROUTING_MODES.join(", ")}`,
  );
}

/**
 * Where a node's pod CIDR route came from: "direct" (the agent's, native mode, same L2 segment),
 * "bgp" (BIRD), "vxlan" (through the VXLAN device), "other" (someone else's), "none" (no route).
 */
export type NodeRouteSource = "direct" | "bgp" | "vxlan" | "other" | "none";

/** One node's pod CIDR route in this node's main table (GET /v1/status `nodeRoutes`). */
export interface NodeRoute {
  node: string;
  podCidr: string;
  /** The gateway, null for a device route or none. */
  via: string | null;
  dev: string | null;
  /** The route's protocol as `ip route` names it ("94" is Skein's, "bird" BIRD's). */
  protocol: string | null;
  source: NodeRouteSource;
  /** For "bgp": the peer the route was learned from, when known. */
  peer?: string;
}

/** The node's VXLAN device as the agent set it up. */
export interface OverlayDevice {
  ifname: string;
  ifindex: number;
  mac: string;
  mtu: number;
}

/** GET /v1/status. */
export interface AgentStatus {
  node: string;
  ready: boolean;
  reason: string;
  bpffsRoot: string;
  nodeIp: string | null;
  podCidr: string | null;
  overlay: OverlayDevice | null;
  /** How pod traffic is encapsulated, and the uplink the datapath uses in "bpf" mode. */
  encap: { mode: EncapMode; uplink: string | null };
  /** How pod traffic crosses between nodes (`--routing`). */
  routing: RoutingMode;
  /** Every other node's pod CIDR route as the last pass saw it, sorted by node name. */
  nodeRoutes: NodeRoute[];
  /** Native routing's BGP (BIRD under the agent), null when BGP is not configured. */
  bgp?: BgpStatus | null;
  nodes: { name: string; internalIp: string; podCidr: string }[];
  skipped: { kind: string; name: string; reason: string; detail: string }[];
  maps: { name: string; entries: number; capacity: number }[];
  lastReconcile: { at: string; durationMs: number } | null;
  policyErrors: readonly { object: string; message: string }[];
}

/** One element of GET /v1/identities. */
export interface AgentIdentity {
  id: number;
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

/** One element of GET /v1/pods. */
export interface AgentPod {
  ip: string;
  namespace: string;
  name: string;
  node: string;
}

/** Where a rule comes from (GET /v1/rules?id=N). */
export interface AgentRule {
  namespace: string;
  policy: string;
  direction: "ingress" | "egress";
  index: number;
}

/** One element of GET /v1/cidrs: an ipBlock prefix and its CIDR identity. */
export interface AgentCidr {
  cidr: string;
  id: number;
}

/** One BGP session of this node's BIRD (GET /v1/status `bgp.sessions`). */
export interface BgpSession {
  /** BIRD's protocol name (`skn_peer_192_0_2_1`, `skn_node_198_18_1_12`). */
  name: string;
  /** The neighbour's address. */
  peer: string;
  /** The neighbour's ASN. */
  asn: number | null;
  /** A configured peer (`bgp.peers`) or another node (`bgp.mesh`). */
  kind: "peer" | "node";
  /** The neighbour's node name, for a mesh session. */
  node?: string;
  /** BGP state: Established, Active, Connect, OpenSent, Idle... ("down" when BIRD is down). */
  state: string;
  /** When the session entered that state (ISO 8601), when known. */
  since: string | null;
  /** Seconds since `since`. */
  uptimeS: number | null;
  /** Routes accepted from the neighbour, and announced to it. */
  imported: number | null;
  exported: number | null;
  /** BIRD's last error for the session ("" when none). */
  lastError: string;
}

/** BGP in native routing: settings, BIRD, sessions, prefixes refused. */
export interface BgpStatus {
  asn: number;
  routerId: string | null;
  mesh: boolean;
  bird: {
    pid: number | null;
    running: boolean;
    restarts: number;
    lastExit: string | null;
    error: string | null;
  };
  sessions: BgpSession[];
  /** Prefixes the import filter refused lately (not another node's pod CIDR), newest last. */
  rejected: { prefix: string; from: string; at: string }[];
}
