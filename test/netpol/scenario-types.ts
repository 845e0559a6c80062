/**
 * The shape of the conformance catalogue: scenarios made of steps, each step a change to the cluster
 * followed by probes with the expected 9×9 connectivity.
 *
 * How a runner plays a scenario:
 * - Start from the model (modelObjects()) with no NetworkPolicy in x, y or z and the model's labels.
 * - For each step, in this order: `delete`, then `apply` (create, or replace by namespace/name), then
 *   `labelNamespace`, then `labelPod` (labels are merged: added or overwritten, never removed); wait for
 *   the dataplane to converge; then run every probe, from every pod to every pod.
 * - Afterwards delete the scenario's policies and restore the model's labels (upstream does the same in
 *   its DeferCleanup hooks), so scenarios are independent and may run in any order.
 *
 * Policies are @kubernetes/client-node model objects, so ingress peers sit under `_from` (client-node's
 * name for `from`). Hand them to client-node's API as they are; for anything that reads the API's JSON
 * (kubectl, a compiler fed directly, a schema validator) convert them with wirePolicy(). Feeding the
 * model objects to code that reads `from` silently turns every ingress rule into "from anywhere".
 */
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import type { Protocol } from "./model.js";
import type { Matrix } from "./reachability.js";

export type { Matrix } from "./reachability.js";

/** One connection attempt: to the destination pod's IP on this port and protocol (always a number). */
export interface Probe {
  port: number;
  protocol: Protocol;
}

export interface Step {
  description: string;
  apply?: V1NetworkPolicy[];
  delete?: { namespace: string; name: string }[];
  labelNamespace?: { name: string; labels: Record<string, string> }[];
  labelPod?: { namespace: string; name: string; labels: Record<string, string> }[];
  probes: { probe: Probe; expected: Matrix }[];
}

export interface Scenario {
  /** Unique: `upstream/<tcp|udp|sctp|api>/<slug>` or `skein/<area>/<slug>`. */
  name: string;
  /** The exact It(...) title upstream; "" for Skein's own cases. */
  upstream: string;
  /** Upstream's Describe/Context path the It lives in (titles repeat across the TCP, UDP and SCTP suites). */
  upstreamContext?: string;
  steps: Step[];
  /** The policies contain pod IPs (ipBlock): call scenarios() with the real IPs. */
  needsPodIps?: boolean;
  /**
   * "sctp" (probes SCTP: needs SCTP sockets), "udp", "ipblock", "named-port", "endport", "egress",
   * "update" (policies or labels change mid-scenario), "match-expressions", "multi-policy", "skein" (ours),
   * "upstream", and upstream's gates: "feature:NetworkPolicy", "feature:SCTPConnectivity", "linux-only".
   */
  tags?: string[];
  /** Set when the case cannot be played as a NetworkPolicy datapath scenario; runners must skip it. */
  skip?: string;
  /**
   * Upstream never fails on a pod's connection to itself (ignoreLoopback = true in network_policy.go;
   * kubernetes/kubernetes#95879): its expectations for x/a → x/a etc. follow its helper calls, but
   * runners should report, not fail, a mismatch on those 9 pairs.
   */
  ignoreLoopback?: boolean;
  /** Where the case departs from upstream or what it relies on. */
  notes?: string;
}
