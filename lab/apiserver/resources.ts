/**
 * The resource types the lab API server serves, with what discovery, routing, field selectors and
 * validation need to know about each. Adding a type means adding an entry here (and, for kubectl's
 * table output, a converter in table.ts).
 */
import { valueAtPath, type JsonObject } from "./json.js";

/** Plural resource names served (the URL segment). */
export type ResourceName =
  "nodes" | "namespaces" | "pods" | "services" | "networkpolicies" | "endpointslices";

/** Static description of one served resource type. */
export interface ResourceInfo {
  readonly name: ResourceName;
  readonly singular: string;
  readonly kind: string;
  readonly listKind: string;
  readonly group: string;
  readonly version: string;
  /** `v1` or `group/version`. */
  readonly apiVersion: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly verbs: readonly string[];
  /** Has a `/status` subresource: the main endpoint ignores status changes, `/status` only takes them. */
  readonly hasStatus: boolean;
  /** `metadata.generation` is set on create and bumped when `spec` changes. */
  readonly hasGeneration: boolean;
  /**
   * Names must be RFC 1123 labels (namespaces), RFC 1035 labels (services) or RFC 1123
   * subdomains (everything else).
   */
  readonly nameRule: "label" | "dns1035" | "subdomain";
  /**
   * The top-level fields holding the object's content besides metadata (and `status`, when it
   * has a status subresource): what bumps `generation` and what the OpenAPI document lists.
   */
  readonly contentFields: readonly string[];
  /** Field-selector fields beyond metadata.name / metadata.namespace. */
  readonly extraFields: readonly string[];
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] as const;

/** Every served resource type, in discovery order. */
export const RESOURCES: readonly ResourceInfo[] = [
  {
    name: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    listKind: "NamespaceList",
    group: "",
    version: "v1",
    apiVersion: "v1",
    namespaced: false,
    shortNames: ["ns"],
    categories: [],
    verbs: VERBS.filter((v) => v !== "deletecollection"),
    hasStatus: false,
    hasGeneration: false,
    nameRule: "label",
    contentFields: ["spec", "status"],
    extraFields: ["status.phase"],
  },
  {
    name: "nodes",
    singular: "node",
    kind: "Node",
    listKind: "NodeList",
    group: "",
    version: "v1",
    apiVersion: "v1",
    namespaced: false,
    shortNames: ["no"],
    categories: [],
    verbs: VERBS,
    hasStatus: true,
    hasGeneration: false,
    nameRule: "subdomain",
    contentFields: ["spec"],
    extraFields: ["spec.unschedulable"],
  },
  {
    name: "pods",
    singular: "pod",
    kind: "Pod",
    listKind: "PodList",
    group: "",
    version: "v1",
    apiVersion: "v1",
    namespaced: true,
    shortNames: ["po"],
    categories: ["all"],
    verbs: VERBS,
    hasStatus: true,
    hasGeneration: true,
    nameRule: "subdomain",
    contentFields: ["spec"],
    extraFields: [
      "spec.nodeName",
      "spec.restartPolicy",
      "spec.schedulerName",
      "spec.serviceAccountName",
      "spec.hostNetwork",
      "status.phase",
      "status.podIP",
      "status.nominatedNodeName",
    ],
  },
  {
    name: "services",
    singular: "service",
    kind: "Service",
    listKind: "ServiceList",
    group: "",
    version: "v1",
    apiVersion: "v1",
    namespaced: true,
    shortNames: ["svc"],
    categories: ["all"],
    verbs: VERBS,
    hasStatus: true,
    hasGeneration: false,
    nameRule: "dns1035",
    contentFields: ["spec"],
    extraFields: [],
  },
  {
    name: "networkpolicies",
    singular: "networkpolicy",
    kind: "NetworkPolicy",
    listKind: "NetworkPolicyList",
    group: "networking.k8s.io",
    version: "v1",
    apiVersion: "networking.k8s.io/v1",
    namespaced: true,
    shortNames: ["netpol"],
    categories: [],
    verbs: VERBS,
    hasStatus: false,
    hasGeneration: true,
    nameRule: "subdomain",
    contentFields: ["spec"],
    extraFields: [],
  },
  {
    name: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    listKind: "EndpointSliceList",
    group: "discovery.k8s.io",
    version: "v1",
    apiVersion: "discovery.k8s.io/v1",
    namespaced: true,
    shortNames: [],
    categories: [],
    verbs: VERBS,
    hasStatus: false,
    hasGeneration: true,
    nameRule: "subdomain",
    contentFields: ["addressType", "endpoints", "ports"],
    extraFields: [],
  },
];

/** The entry for a plural name; undefined for anything not served. */
export function resourceByName(name: string): ResourceInfo | undefined {
  return RESOURCES.find((r) => r.name === name);
}

/** The entry for a kind (and apiVersion, when given); undefined when not served. */
export function resourceByKind(kind: string, apiVersion?: string): ResourceInfo | undefined {
  return RESOURCES.find((r) => r.kind === kind && (apiVersion === undefined || r.apiVersion === apiVersion));
}

/** The resources of one API group version (`""`/`v1` for the core group). */
export function resourcesOf(group: string, version: string): ResourceInfo[] {
  return RESOURCES.filter((r) => r.group === group && r.version === version);
}

/**
 * The value of a field-selector field on `obj`, as the real server's field-label functions render
 * it (missing strings are "", booleans are "true"/"false"); undefined when `field` is not a
 * supported field label for this resource.
 */
export function fieldValue(info: ResourceInfo, obj: JsonObject, field: string): string | undefined {
  if (field !== "metadata.name" && field !== "metadata.namespace" && !info.extraFields.includes(field))
    return undefined;
  const v = valueAtPath(obj, field);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (field === "spec.hostNetwork" || field === "spec.unschedulable") return "false";
  if (typeof v === "number") return String(v);
  return "";
}
