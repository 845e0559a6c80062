/**
 * The lab's Kubernetes-API-compatible server: import from here.
 *
 * `startLabApiServer()` serves Nodes, Namespaces, Pods, Services, NetworkPolicies and
 * EndpointSlices to client-node informers and kubectl; its `store` is the orchestrator's
 * in-process handle on the same data (and what lab/endpointslice-controller.ts watches).
 */
export { startLabApiServer, type LabApiServer, type LabApiServerOptions, type LogSink } from "./server.js";
export {
  LabStore,
  type DeleteOptions,
  type LabStoreOptions,
  type ListOptions,
  type ListResult,
  type ObjectRef,
  type SelectOptions,
  type StoreEventType,
  type StoreWatch,
  type Subresource,
  type UpdateOptions,
  type WatchEvent,
  type WatchOptions,
} from "./store.js";
export { ApiError, type StatusCause, type StatusDetails, type StatusReason } from "./errors.js";
export { writeKubeconfig, kubeconfigYaml, KUBECONFIG_CONTEXT } from "./kubeconfig.js";
export { readSeed, applySeed, parseSeedText, type SeedObject } from "./seed.js";
export { RESOURCES, type ResourceInfo, type ResourceName } from "./resources.js";
export { DEFAULT_SERVICE_CIDR } from "./admission.js";
export type { PatchType } from "./patch.js";
export type { JsonObject, JsonValue } from "./json.js";
