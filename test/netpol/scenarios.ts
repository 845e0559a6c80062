/**
 * The NetworkPolicy conformance catalogue: the upstream Kubernetes e2e NetworkPolicy suite
 * (kubernetes/kubernetes test/e2e/network/netpol, commit UPSTREAM_COMMIT) plus Skein's own cases, as
 * data. Two runners consume it: the lab test with real packets and the simulation through the BPF
 * programs. See scenario-types.ts for how a runner plays a scenario, docs/netpol-conformance.md for the
 * list of cases.
 *
 * Everything here is pure and deterministic; scenarios() builds fresh objects on every call.
 */
import { dumpYaml, type V1NetworkPolicy } from "@kubernetes/client-node";
import { parse } from "yaml";
import { skeinScenarios } from "./skein-cases.js";
import type { Scenario } from "./scenario-types.js";
import { upstreamScenarios } from "./upstream.js";

export {
  ALL_PODS,
  MODEL,
  SKEIN_NAMED_PORT,
  SKEIN_NAMED_PORT_NUMBERS,
  modelContainerPorts,
  modelObjects,
  namespaceLabels,
  podLabels,
  type ModelObjectsOptions,
  type NetpolModel,
  type Protocol,
} from "./model.js";
export { formatMatrix, type Matrix } from "./reachability.js";
export type { Probe, Scenario, Step } from "./scenario-types.js";
export { UPSTREAM_COMMIT, UPSTREAM_PATH, UPSTREAM_REPOSITORY } from "./upstream.js";

/**
 * Every scenario: upstream's, in upstream's order, then Skein's. `ips` maps "ns/pod" to the pod's IP;
 * it is called while building the cases marked `needsPodIps` (a runner without IPs yet may pass any
 * valid placeholder, e.g. for listing). Throws whatever `ips` throws, or TypeError if it returns an
 * unparseable address.
 */
export function scenarios(ips: (nsPod: string) => string): Scenario[] {
  return [...upstreamScenarios(ips), ...skeinScenarios(ips)];
}

/**
 * The policy as the API server sees it (plain JSON, ingress peers under `from`): the catalogue holds
 * @kubernetes/client-node model objects, whose ingress rules name the field `_from`. Use this for
 * kubectl, for schema validation, or for any consumer that is not client-node.
 */
export function wirePolicy(policy: V1NetworkPolicy): Record<string, unknown> {
  return parse(dumpYaml(policy)) as Record<string, unknown>;
}
