/**
 * Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. Columns mirror the real server's
 * printers (kubectl upper-cases the names), except that Pods show IP and NODE without `-o wide`,
 * which is what one looks at first in a CNI lab.
 */
import { arrayAt, isJsonObject, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.js";
import type { ResourceInfo } from "./resources.js";
import { formatLabelSelector } from "./selectors.js";

/** One column of a Table (metav1.TableColumnDefinition). */
interface Column {
  name: string;
  type: "string" | "integer" | "date";
  format?: string;
  description: string;
  /** 0: always shown; 1: only with `-o wide`. */
  priority: number;
}

/** What a Table row carries as `object`: `includeObject` query parameter values. */
export type IncludeObject = "None" | "Metadata" | "Object";

/**
 * kubectl's duration format (k8s.io/apimachinery duration.HumanDuration): "42s", "3m20s",
 * "5h10m", "3d4h", "2y30d"…
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const d = Math.floor(hours / 24) % 365;
    const y = Math.floor(hours / 24 / 365);
    return d === 0 ? `${y}y` : `${y}y${d}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(obj: JsonObject, now: Date): string {
  const ts = stringAt(objectAt(obj, "metadata"), "creationTimestamp");
  if (ts === undefined) return "<unknown>";
  const t = Date.parse(ts);
  return Number.isNaN(t) ? "<unknown>" : humanDuration(now.getTime() - t);
}

const NAME: Column = {
  name: "Name",
  type: "string",
  format: "name",
  description: "Name must be unique within a namespace.",
  priority: 0,
};
const AGE: Column = {
  name: "Age",
  type: "string",
  description: "Time since the object was created (creationTimestamp).",
  priority: 0,
};

interface Printer {
  columns: Column[];
  cells(obj: JsonObject, now: Date): JsonValue[];
}

function nodeStatus(obj: JsonObject): string {
  const conditions = arrayAt(objectAt(obj, "status"), "conditions") ?? [];
  let ready = "Unknown";
  for (const c of conditions) {
    if (isJsonObject(c) && c.type === "Ready")
      ready = c.status === "True" ? "Ready" : c.status === "False" ? "NotReady" : "Unknown";
  }
  return objectAt(obj, "spec")?.unschedulable === true ? `${ready},SchedulingDisabled` : ready;
}

function nodeRoles(obj: JsonObject): string {
  const labels = objectAt(objectAt(obj, "metadata"), "labels") ?? {};
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith("node-role.kubernetes.io/")) roles.add(k.slice("node-role.kubernetes.io/".length));
    else if (k === "kubernetes.io/role" && typeof v === "string" && v !== "") roles.add(v);
  }
  return roles.size === 0 ? "<none>" : [...roles].sort().join(",");
}

function nodeAddress(obj: JsonObject, type: string): string {
  for (const a of arrayAt(objectAt(obj, "status"), "addresses") ?? []) {
    if (isJsonObject(a) && a.type === type && typeof a.address === "string") return a.address;
  }
  return "<none>";
}

function podCounts(obj: JsonObject): { ready: string; restarts: number; reason: string } {
  const spec = objectAt(obj, "spec");
  const status = objectAt(obj, "status");
  const total = (arrayAt(spec, "containers") ?? []).length;
  let ready = 0;
  let restarts = 0;
  let reason = stringAt(status, "reason") ?? stringAt(status, "phase") ?? "Unknown";
  for (const cs of arrayAt(status, "containerStatuses") ?? []) {
    if (!isJsonObject(cs)) continue;
    if (cs.ready === true) ready++;
    if (typeof cs.restartCount === "number") restarts += cs.restartCount;
    const state = objectAt(cs, "state");
    const waiting = stringAt(objectAt(state, "waiting"), "reason");
    const terminated = stringAt(objectAt(state, "terminated"), "reason");
    if (waiting !== undefined && waiting !== "") reason = waiting;
    else if (terminated !== undefined && terminated !== "") reason = terminated;
  }
  if (stringAt(objectAt(obj, "metadata"), "deletionTimestamp") !== undefined) reason = "Terminating";
  return { ready: `${ready}/${total}`, restarts, reason };
}

/** kubectl's makePortString: `80/TCP`, `80:30080/TCP`, joined with commas. */
function servicePorts(spec: JsonObject | undefined): string {
  const parts: string[] = [];
  for (const p of arrayAt(spec, "ports") ?? []) {
    if (!isJsonObject(p)) continue;
    const port = typeof p.port === "number" ? p.port : 0;
    const protocol = stringAt(p, "protocol") ?? "";
    const nodePort = typeof p.nodePort === "number" ? p.nodePort : 0;
    parts.push(nodePort > 0 ? `${port}:${nodePort}/${protocol}` : `${port}/${protocol}`);
  }
  return parts.length === 0 ? "<none>" : parts.join(",");
}

/** kubectl's getServiceExternalIP. */
function serviceExternalIP(obj: JsonObject, wide: boolean): string {
  const spec = objectAt(obj, "spec");
  const externalIPs = (arrayAt(spec, "externalIPs") ?? []).filter(
    (ip): ip is string => typeof ip === "string",
  );
  switch (stringAt(spec, "type") ?? "") {
    case "ClusterIP":
    case "NodePort":
      return externalIPs.length > 0 ? externalIPs.join(",") : "<none>";
    case "LoadBalancer": {
      const ingress: string[] = [];
      for (const i of arrayAt(objectAt(objectAt(obj, "status"), "loadBalancer"), "ingress") ?? []) {
        if (!isJsonObject(i)) continue;
        const v = stringAt(i, "ip") ?? stringAt(i, "hostname");
        if (v !== undefined && v !== "") ingress.push(v);
      }
      let lb = ingress.join(",");
      if (!wide && lb.length > 16) lb = lb.slice(0, 13) + "...";
      const all = [...externalIPs, ...(lb === "" ? [] : [lb])];
      return all.length > 0 ? all.join(",") : "<pending>";
    }
    case "ExternalName":
      return stringAt(spec, "externalName") ?? "<none>";
    default:
      return "<unknown>";
  }
}

/** kubectl's formatDiscoveryPorts/formatDiscoveryEndpoints: up to three, then "+ N more...". */
function firstThree(values: string[]): string {
  if (values.length === 0) return "<unset>";
  const shown = values.slice(0, 3).join(",");
  return values.length > 3 ? `${shown} + ${values.length - 3} more...` : shown;
}

const PRINTERS: Readonly<Record<string, Printer>> = {
  namespaces: {
    columns: [
      NAME,
      { name: "Status", type: "string", description: "The phase of the namespace.", priority: 0 },
      AGE,
    ],
    cells: (o, now) => [
      stringAt(objectAt(o, "metadata"), "name") ?? "",
      stringAt(objectAt(o, "status"), "phase") ?? "",
      age(o, now),
    ],
  },
  nodes: {
    columns: [
      NAME,
      {
        name: "Status",
        type: "string",
        description: "The status of the node (Ready condition).",
        priority: 0,
      },
      { name: "Roles", type: "string", description: "The roles of the node.", priority: 0 },
      AGE,
      { name: "Version", type: "string", description: "Kubelet version.", priority: 0 },
      { name: "Pod-CIDR", type: "string", description: "spec.podCIDR.", priority: 0 },
      { name: "Internal-IP", type: "string", description: "The InternalIP address.", priority: 1 },
      { name: "External-IP", type: "string", description: "The ExternalIP address.", priority: 1 },
    ],
    cells: (o, now) => [
      stringAt(objectAt(o, "metadata"), "name") ?? "",
      nodeStatus(o),
      nodeRoles(o),
      age(o, now),
      stringAt(objectAt(objectAt(o, "status"), "nodeInfo"), "kubeletVersion") ?? "",
      stringAt(objectAt(o, "spec"), "podCIDR") ?? "<none>",
      nodeAddress(o, "InternalIP"),
      nodeAddress(o, "ExternalIP"),
    ],
  },
  pods: {
    columns: [
      NAME,
      { name: "Ready", type: "string", description: "Ready containers / containers.", priority: 0 },
      {
        name: "Status",
        type: "string",
        description: "The phase or the reason the pod is in this state.",
        priority: 0,
      },
      { name: "Restarts", type: "integer", description: "Container restarts.", priority: 0 },
      AGE,
      { name: "IP", type: "string", description: "status.podIP.", priority: 0 },
      { name: "Node", type: "string", description: "spec.nodeName.", priority: 0 },
      { name: "Nominated Node", type: "string", description: "status.nominatedNodeName.", priority: 1 },
    ],
    cells: (o, now) => {
      const c = podCounts(o);
      const status = objectAt(o, "status");
      const ip = stringAt(status, "podIP");
      const node = stringAt(objectAt(o, "spec"), "nodeName");
      const nominated = stringAt(status, "nominatedNodeName");
      return [
        stringAt(objectAt(o, "metadata"), "name") ?? "",
        c.ready,
        c.reason,
        c.restarts,
        age(o, now),
        ip === undefined || ip === "" ? "<none>" : ip,
        node === undefined || node === "" ? "<none>" : node,
        nominated === undefined || nominated === "" ? "<none>" : nominated,
      ];
    },
  },
  services: {
    columns: [
      NAME,
      { name: "Type", type: "string", description: "The type of the service.", priority: 0 },
      { name: "Cluster-IP", type: "string", description: "The cluster IP of the service.", priority: 0 },
      { name: "External-IP", type: "string", description: "External IPs of the service.", priority: 0 },
      { name: "Port(s)", type: "string", description: "The ports of the service.", priority: 0 },
      AGE,
      { name: "Selector", type: "string", description: "spec.selector.", priority: 1 },
    ],
    cells: (o, now) => {
      const spec = objectAt(o, "spec");
      const clusterIP = stringAt(spec, "clusterIP") ?? "";
      const selector = objectAt(spec, "selector") ?? {};
      const sel = Object.keys(selector)
        .sort()
        .map((k) => `${k}=${typeof selector[k] === "string" ? selector[k] : ""}`)
        .join(",");
      return [
        stringAt(objectAt(o, "metadata"), "name") ?? "",
        stringAt(spec, "type") ?? "",
        clusterIP === "" ? "<none>" : clusterIP,
        serviceExternalIP(o, false),
        servicePorts(spec),
        age(o, now),
        sel === "" ? "<none>" : sel,
      ];
    },
  },
  endpointslices: {
    columns: [
      NAME,
      { name: "AddressType", type: "string", description: "The type of the addresses.", priority: 0 },
      { name: "Ports", type: "string", description: "The ports of the endpoints.", priority: 0 },
      { name: "Endpoints", type: "string", description: "The addresses of the endpoints.", priority: 0 },
      AGE,
    ],
    cells: (o, now) => {
      const ports = (arrayAt(o, "ports") ?? []).map((p) =>
        isJsonObject(p) && typeof p.port === "number" ? String(p.port) : "<unset>",
      );
      const addresses: string[] = [];
      for (const e of arrayAt(o, "endpoints") ?? [])
        for (const a of arrayAt(isJsonObject(e) ? e : undefined, "addresses") ?? [])
          if (typeof a === "string") addresses.push(a);
      return [
        stringAt(objectAt(o, "metadata"), "name") ?? "",
        stringAt(o, "addressType") ?? "",
        firstThree(ports),
        firstThree(addresses),
        age(o, now),
      ];
    },
  },
  networkpolicies: {
    columns: [
      NAME,
      { name: "Pod-Selector", type: "string", description: "spec.podSelector.", priority: 0 },
      AGE,
    ],
    cells: (o, now) => [
      stringAt(objectAt(o, "metadata"), "name") ?? "",
      formatLabelSelector(objectAt(o, "spec")?.podSelector),
      age(o, now),
    ],
  },
};

function rowObject(info: ResourceInfo, obj: JsonObject, include: IncludeObject, version: string): JsonValue {
  if (include === "None") return null;
  if (include === "Object") return { ...obj, apiVersion: info.apiVersion, kind: info.kind };
  return {
    kind: "PartialObjectMetadata",
    apiVersion: `meta.k8s.io/${version}`,
    metadata: objectAt(obj, "metadata") ?? {},
  };
}

/**
 * A `meta.k8s.io/<version>` Table of `objects`; `version` is "v1" or "v1beta1" (whichever the
 * client's Accept header asked for). Rows carry PartialObjectMetadata unless `include` says
 * otherwise, as on the real server.
 */
export function toTable(
  info: ResourceInfo,
  objects: readonly JsonObject[],
  listMeta: JsonObject,
  options: { include: IncludeObject; version: string; now?: Date; noHeaders?: boolean },
): JsonObject {
  const printer = PRINTERS[info.name] as Printer;
  const now = options.now ?? new Date();
  const table: JsonObject = {
    kind: "Table",
    apiVersion: `meta.k8s.io/${options.version}`,
    metadata: listMeta,
    columnDefinitions: options.noHeaders === true ? [] : printer.columns.map((c) => ({ ...c })),
    rows: objects.map((o) => ({
      cells: printer.cells(o, now),
      object: rowObject(info, o, options.include, options.version),
    })),
  };
  return table;
}
