/**
 * The OpenAPI v2 document served at `/openapi/v2`, as JSON and as the gnostic protobuf
 * (`openapi.v2.Document`) that kubectl 1.20 downloads to validate `create -f` input.
 *
 * Each served kind gets a definition with `x-kubernetes-group-version-kind`, typed top-level
 * fields and a typed ObjectMeta; `spec`, `status` (or an EndpointSlice's `addressType`,
 * `endpoints`, `ports`) are left arbitrary (any content), matching
 * the server's leniency about content. kubectl therefore rejects unknown top-level or metadata
 * fields and mistyped labels before sending, like it does against a real cluster.
 *
 * Field numbers are those of gnostic's OpenAPIv2.proto (Document: swagger 1, info 2, paths 8,
 * definitions 9; Schema: _ref 1, format 2, description 4, required 19, additional_properties 21,
 * type 22, items 23, properties 25, vendor_extension 31; NamedSchema/NamedAny: name 1, value 2;
 * Any: yaml 2).
 */
import { stringify as toYaml } from "yaml";
import type { JsonObject, JsonValue } from "./json.js";
import { ProtoWriter } from "./protobuf.js";
import { RESOURCES, type ResourceInfo } from "./resources.js";

/** The subset of an OpenAPI v2 Schema object used here. */
interface SchemaModel {
  ref?: string;
  description?: string;
  type?: "object" | "string" | "integer" | "array" | "boolean";
  format?: string;
  properties?: [string, SchemaModel][];
  additionalProperties?: SchemaModel;
  items?: SchemaModel;
  required?: string[];
  extensions?: [string, JsonValue][];
}

const OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

const arbitrary = (description: string): SchemaModel => ({ description });
const str = (description: string): SchemaModel => ({ type: "string", description });
const stringMap = (description: string): SchemaModel => ({
  type: "object",
  description,
  additionalProperties: { type: "string" },
});

function objectMeta(): SchemaModel {
  return {
    type: "object",
    description: "Standard object metadata.",
    properties: [
      ["annotations", stringMap("Unstructured key value map stored with a resource.")],
      ["creationTimestamp", str("Set by the server.")],
      ["deletionGracePeriodSeconds", { type: "integer", format: "int64" }],
      ["deletionTimestamp", str("Set by the server.")],
      ["finalizers", { type: "array", items: { type: "string" } }],
      ["generateName", str("Prefix for a server-generated name.")],
      ["generation", { type: "integer", format: "int64" }],
      ["labels", stringMap("Map of string keys and values for selecting objects.")],
      ["managedFields", { type: "array", items: arbitrary("A managed fields entry.") }],
      ["name", str("Name, unique within a namespace.")],
      ["namespace", str("Namespace of the object.")],
      ["ownerReferences", { type: "array", items: arbitrary("An owner reference.") }],
      ["resourceVersion", str("Opaque version, set by the server.")],
      ["selfLink", str("Deprecated.")],
      ["uid", str("Set by the server.")],
    ],
  };
}

/** The definition name kubectl looks kinds up by, e.g. io.k8s.api.core.v1.Pod. */
export function definitionName(info: ResourceInfo): string {
  const group = info.group === "" ? "core" : info.group.replace(/\.k8s\.io$/, "");
  return `io.k8s.api.${group}.${info.version}.${info.kind}`;
}

function kindSchema(info: ResourceInfo): SchemaModel {
  const props: [string, SchemaModel][] = [
    ["apiVersion", str("APIVersion defines the versioned schema of this representation of an object.")],
    ["kind", str("Kind is a string value representing the REST resource this object represents.")],
    ["metadata", { ref: `#/definitions/${OBJECT_META}`, description: "Standard object metadata." }],
  ];
  const fields = info.hasStatus ? [...info.contentFields, "status"] : info.contentFields;
  for (const f of [...fields].sort()) {
    const typed = TYPED_FIELDS[`${info.name}.${f}`];
    props.push([
      f,
      typed === undefined
        ? arbitrary(`${info.kind} ${f} (checked by the lab server, not by the client).`)
        : { ref: `#/definitions/${typed}`, description: `${info.kind} ${f}.` },
    ]);
  }
  return {
    type: "object",
    description: `${info.kind} (Skein lab API server).`,
    properties: props,
    extensions: [
      ["x-kubernetes-group-version-kind", [{ group: info.group, kind: info.kind, version: info.version }]],
    ],
  };
}

const SERVICE_SPEC = "io.k8s.api.core.v1.ServiceSpec";
const SERVICE_PORT = "io.k8s.api.core.v1.ServicePort";

/**
 * Content described field by field, where kubectl needs the patch metadata: `kubectl apply`
 * computes its strategic merge patch from this document, and a Service's `ports` only merge by
 * `port` (with `$setElementOrder` and `$patch: delete` for removed ports) when the schema says so;
 * otherwise kubectl sends the whole list and the server's merge by key would keep removed ports.
 */
const TYPED_FIELDS: Readonly<Record<string, string>> = { "services.spec": SERVICE_SPEC };

function serviceSpec(): SchemaModel {
  const any = (d: string): SchemaModel => arbitrary(d);
  return {
    type: "object",
    description: "ServiceSpec describes the attributes that a user creates on a service.",
    properties: [
      ["allocateLoadBalancerNodePorts", { type: "boolean" }],
      ["clusterIP", str("The IP address of the service.")],
      ["clusterIPs", { type: "array", items: { type: "string" } }],
      ["externalIPs", { type: "array", items: { type: "string" } }],
      ["externalName", str("The external reference for ExternalName services.")],
      ["externalTrafficPolicy", str("Cluster or Local.")],
      ["healthCheckNodePort", { type: "integer", format: "int32" }],
      ["internalTrafficPolicy", str("Cluster or Local.")],
      ["ipFamilies", { type: "array", items: { type: "string" } }],
      ["ipFamilyPolicy", str("SingleStack, PreferDualStack or RequireDualStack.")],
      ["loadBalancerClass", str("The class of the load balancer implementation.")],
      ["loadBalancerIP", str("Deprecated.")],
      ["loadBalancerSourceRanges", { type: "array", items: { type: "string" } }],
      [
        "ports",
        {
          type: "array",
          description: "The list of ports that are exposed by this service.",
          items: { ref: `#/definitions/${SERVICE_PORT}` },
          extensions: [
            ["x-kubernetes-list-map-keys", ["port", "protocol"]],
            ["x-kubernetes-list-type", "map"],
            ["x-kubernetes-patch-merge-key", "port"],
            ["x-kubernetes-patch-strategy", "merge"],
          ],
        },
      ],
      ["publishNotReadyAddresses", { type: "boolean" }],
      [
        "selector",
        stringMap("Route service traffic to pods with label keys and values matching this selector."),
      ],
      ["sessionAffinity", str("ClientIP or None.")],
      ["sessionAffinityConfig", any("The configurations of session affinity.")],
      ["trafficDistribution", str("How traffic is distributed to endpoints.")],
      ["type", str("ClusterIP, NodePort, LoadBalancer or ExternalName.")],
    ],
  };
}

function servicePort(): SchemaModel {
  return {
    type: "object",
    description: "ServicePort contains information on service's port.",
    required: ["port"],
    properties: [
      ["appProtocol", str("The application protocol for this port.")],
      ["name", str("The name of this port within the service.")],
      ["nodePort", { type: "integer", format: "int32" }],
      ["port", { type: "integer", format: "int32" }],
      ["protocol", str("TCP, UDP or SCTP.")],
      ["targetPort", { type: "string", format: "int-or-string" }],
    ],
  };
}

function definitions(): [string, SchemaModel][] {
  return [
    [OBJECT_META, objectMeta()],
    [SERVICE_SPEC, serviceSpec()],
    [SERVICE_PORT, servicePort()],
    ...RESOURCES.map((r): [string, SchemaModel] => [definitionName(r), kindSchema(r)]),
  ];
}

function schemaJson(s: SchemaModel): JsonObject {
  const out: JsonObject = {};
  if (s.ref !== undefined) out.$ref = s.ref;
  if (s.description !== undefined) out.description = s.description;
  if (s.type !== undefined) out.type = s.type;
  if (s.format !== undefined) out.format = s.format;
  if (s.required !== undefined) out.required = s.required;
  if (s.properties !== undefined)
    out.properties = Object.fromEntries(s.properties.map(([k, v]) => [k, schemaJson(v)]));
  if (s.additionalProperties !== undefined) out.additionalProperties = schemaJson(s.additionalProperties);
  if (s.items !== undefined) out.items = schemaJson(s.items);
  for (const [k, v] of s.extensions ?? []) out[k] = v;
  return out;
}

const INFO = { title: "Kubernetes", version: "v1.30.0-skein-lab" } as const;

/** `/openapi/v2` as JSON. */
export function openApiV2Json(): JsonObject {
  return {
    swagger: "2.0",
    info: { ...INFO },
    paths: {},
    definitions: Object.fromEntries(definitions().map(([k, v]) => [k, schemaJson(v)])),
  };
}

function writeSchema(w: ProtoWriter, s: SchemaModel): void {
  w.string(1, s.ref);
  w.string(2, s.format);
  w.string(4, s.description);
  w.strings(19, s.required);
  const additional = s.additionalProperties;
  if (additional !== undefined)
    w.message(21, (a) =>
      a.message(1, (inner) => {
        writeSchema(inner, additional);
      }),
    );
  const type = s.type;
  if (type !== undefined) w.message(22, (t) => t.strings(1, [type]));
  const items = s.items;
  if (items !== undefined)
    w.message(23, (i) =>
      i.message(1, (inner) => {
        writeSchema(inner, items);
      }),
    );
  const props = s.properties;
  if (props !== undefined) {
    w.message(25, (p) => {
      for (const [name, schema] of props)
        p.message(1, (named) =>
          named.string(1, name, true).message(2, (inner) => {
            writeSchema(inner, schema);
          }),
        );
    });
  }
  for (const [name, value] of s.extensions ?? []) {
    w.message(31, (named) =>
      named.string(1, name, true).message(2, (any) => any.string(2, toYaml(value), true)),
    );
  }
}

/** `/openapi/v2` as a gnostic `openapi.v2.Document` protobuf. */
export function openApiV2Protobuf(): Buffer {
  const w = new ProtoWriter();
  w.string(1, "2.0");
  w.message(2, (info) => info.string(1, INFO.title).string(2, INFO.version));
  w.message(8, () => undefined);
  w.message(9, (defs) => {
    for (const [name, schema] of definitions())
      defs.message(1, (named) =>
        named.string(1, name, true).message(2, (s) => {
          writeSchema(s, schema);
        }),
      );
  });
  return w.finish();
}
