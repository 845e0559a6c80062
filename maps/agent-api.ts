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
