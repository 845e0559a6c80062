/**
 * Structural checks: the JSON types of the fields Skein reads, as the real server's Go decoder
 * enforces them (`spec.nodeName: 5` is a 400 there too). Content is not judged: a malformed CIDR,
 * a Pod without containers or IP, a Node without podCIDR are all stored. Unknown fields are kept.
 */
import { badRequest } from "./errors.js";
import { isJsonObject, type JsonValue } from "./json.js";
import type { ResourceInfo, ResourceName } from "./resources.js";

/** A field's expected JSON type; `fields` lists only the fields checked, others pass. */
type Shape =
  | "string"
  | "boolean"
  | "integer"
  | "int32"
  | "int-or-string"
  | "any"
  | { readonly fields: Readonly<Record<string, Shape>> }
  | { readonly array: Shape }
  | { readonly map: Shape };

const stringMap: Shape = { map: "string" };

const metadata: Shape = {
  fields: {
    name: "string",
    generateName: "string",
    namespace: "string",
    uid: "string",
    resourceVersion: "string",
    generation: "integer",
    creationTimestamp: "any",
    deletionTimestamp: "any",
    labels: stringMap,
    annotations: stringMap,
    finalizers: { array: "string" },
    ownerReferences: {
      array: { fields: { apiVersion: "string", kind: "string", name: "string", uid: "string" } },
    },
  },
};

const labelSelector: Shape = {
  fields: {
    matchLabels: stringMap,
    matchExpressions: {
      array: { fields: { key: "string", operator: "string", values: { array: "string" } } },
    },
  },
};

const containerPort: Shape = {
  fields: {
    name: "string",
    containerPort: "integer",
    hostPort: "integer",
    protocol: "string",
    hostIP: "string",
  },
};
const container: Shape = { fields: { name: "string", image: "string", ports: { array: containerPort } } };

const policyPeer: Shape = {
  fields: {
    podSelector: labelSelector,
    namespaceSelector: labelSelector,
    ipBlock: { fields: { cidr: "string", except: { array: "string" } } },
  },
};
const policyPort: Shape = { fields: { protocol: "string", port: "int-or-string", endPort: "integer" } };

const SHAPES: Readonly<Record<ResourceName, Readonly<Record<string, Shape>>>> = {
  namespaces: {
    spec: { fields: { finalizers: { array: "string" } } },
    status: { fields: { phase: "string" } },
  },
  nodes: {
    spec: {
      fields: {
        podCIDR: "string",
        podCIDRs: { array: "string" },
        unschedulable: "boolean",
        providerID: "string",
      },
    },
    status: {
      fields: {
        addresses: { array: { fields: { type: "string", address: "string" } } },
        conditions: { array: { fields: { type: "string", status: "string" } } },
      },
    },
  },
  pods: {
    spec: {
      fields: {
        nodeName: "string",
        hostNetwork: "boolean",
        containers: { array: container },
        initContainers: { array: container },
        restartPolicy: "string",
        schedulerName: "string",
        serviceAccountName: "string",
      },
    },
    status: {
      fields: {
        phase: "string",
        podIP: "string",
        podIPs: { array: { fields: { ip: "string" } } },
        hostIP: "string",
        conditions: { array: { fields: { type: "string", status: "string" } } },
      },
    },
  },
  services: {
    spec: {
      fields: {
        type: "string",
        selector: stringMap,
        clusterIP: "string",
        clusterIPs: { array: "string" },
        ipFamilies: { array: "string" },
        ipFamilyPolicy: "string",
        externalIPs: { array: "string" },
        externalName: "string",
        externalTrafficPolicy: "string",
        internalTrafficPolicy: "string",
        healthCheckNodePort: "int32",
        sessionAffinity: "string",
        sessionAffinityConfig: { fields: { clientIP: { fields: { timeoutSeconds: "int32" } } } },
        publishNotReadyAddresses: "boolean",
        allocateLoadBalancerNodePorts: "boolean",
        loadBalancerIP: "string",
        loadBalancerClass: "string",
        loadBalancerSourceRanges: { array: "string" },
        ports: {
          array: {
            fields: {
              name: "string",
              protocol: "string",
              appProtocol: "string",
              port: "int32",
              targetPort: "int-or-string",
              nodePort: "int32",
            },
          },
        },
      },
    },
    status: {
      fields: {
        loadBalancer: {
          fields: { ingress: { array: { fields: { ip: "string", hostname: "string" } } } },
        },
      },
    },
  },
  endpointslices: {
    addressType: "string",
    endpoints: {
      array: {
        fields: {
          addresses: { array: "string" },
          conditions: { fields: { ready: "boolean", serving: "boolean", terminating: "boolean" } },
          hostname: "string",
          nodeName: "string",
          zone: "string",
          targetRef: {
            fields: {
              kind: "string",
              namespace: "string",
              name: "string",
              uid: "string",
              apiVersion: "string",
              resourceVersion: "string",
            },
          },
        },
      },
    },
    ports: {
      array: { fields: { name: "string", protocol: "string", port: "int32", appProtocol: "string" } },
    },
  },
  networkpolicies: {
    spec: {
      fields: {
        podSelector: labelSelector,
        policyTypes: { array: "string" },
        ingress: { array: { fields: { from: { array: policyPeer }, ports: { array: policyPort } } } },
        egress: { array: { fields: { to: { array: policyPeer }, ports: { array: policyPort } } } },
      },
    },
  },
};

function typeName(v: JsonValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "number" : "float";
  return typeof v;
}

function check(v: JsonValue, shape: Shape, path: string, info: ResourceInfo): void {
  // JSON null means "unset" to the Go decoder for every field type.
  if (v === null || shape === "any") return;
  const fail = (want: string): never => {
    throw badRequest(
      `${info.kind} in version "${info.version}" cannot be handled as a ${info.kind}: json: cannot unmarshal ${typeName(v)} into Go struct field ${path} of type ${want}`,
    );
  };
  if (shape === "string") {
    if (typeof v !== "string") fail("string");
  } else if (shape === "boolean") {
    if (typeof v !== "boolean") fail("bool");
  } else if (shape === "int32") {
    // Services and EndpointSlices: out of int32 range is the Go decoder's error too.
    if (typeof v !== "number" || !Number.isInteger(v) || v < -2147483648 || v > 2147483647) fail("int32");
  } else if (shape === "integer") {
    if (typeof v !== "number" || !Number.isInteger(v)) fail("int32");
  } else if (shape === "int-or-string") {
    if (typeof v !== "string" && !(typeof v === "number" && Number.isInteger(v))) fail("intstr.IntOrString");
  } else if ("array" in shape) {
    if (!Array.isArray(v)) fail("[]" + describe(shape.array));
    else
      v.forEach((e) => {
        check(e, shape.array, path, info);
      });
  } else if ("map" in shape) {
    if (!isJsonObject(v)) fail("map[string]" + describe(shape.map));
    else for (const [k, e] of Object.entries(v)) check(e, shape.map, `${path}.${k}`, info);
  } else {
    if (!isJsonObject(v)) fail("object");
    else
      for (const [k, s] of Object.entries(shape.fields))
        if (Object.hasOwn(v, k)) check(v[k] as JsonValue, s, `${path}.${k}`, info);
  }
}

function describe(shape: Shape): string {
  if (typeof shape === "string") return shape === "boolean" ? "bool" : shape;
  if ("array" in shape) return "[]" + describe(shape.array);
  if ("map" in shape) return "map[string]" + describe(shape.map);
  return "object";
}

/**
 * Checks the JSON types of `body`'s metadata and of the spec/status fields Skein relies on.
 * Throws a 400 {@link ApiError} (like the real server's decoder) on the first mismatch.
 */
export function checkShape(info: ResourceInfo, body: JsonValue): void {
  if (!isJsonObject(body)) {
    throw badRequest(
      `${info.kind} in version "${info.version}" cannot be handled as a ${info.kind}: the request body must be a JSON object, got ${typeName(body)}`,
    );
  }
  for (const k of ["apiVersion", "kind"] as const) {
    if (Object.hasOwn(body, k)) check(body[k] as JsonValue, "string", k, info);
  }
  if (Object.hasOwn(body, "metadata")) check(body.metadata as JsonValue, metadata, "metadata", info);
  for (const [k, s] of Object.entries(SHAPES[info.name])) {
    if (Object.hasOwn(body, k)) check(body[k] as JsonValue, s, k, info);
  }
}
