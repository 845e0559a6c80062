/**
 * Admission for the lab API server: what happens to an object between the request and the
 * store. Validation (kind/apiVersion, names, labels and annotations), defaulting (a namespace's
 * `kubernetes.io/metadata.name` label, finalizers and phase; a pod's phase), Services (defaults,
 * ClusterIP and NodePort allocation, validation: service-admission.ts), EndpointSlices
 * (endpointslice-admission.ts), the namespace lifecycle rule that keeps `default`, `kube-system`
 * and `kube-public`, and the release of what an object held when it goes. Errors are the real
 * server's: 422 `Invalid` with one cause per problem, 403 `Forbidden`.
 */
import { ClusterIpAllocator, NodePortAllocator } from "./allocators.js";
import { admitEndpointSliceCreate, admitEndpointSliceUpdate } from "./endpointslice-admission.js";
import { invalid, forbidden, type StatusCause } from "./errors.js";
import { dns1035LabelErrors } from "./field-errors.js";
import { objectAt, stringAt, type JsonObject } from "./json.js";
import type { ResourceInfo } from "./resources.js";
import { labelKeyError, labelValueError } from "./selectors.js";
import { ServiceAdmission } from "./service-admission.js";
import { NAMESPACE_NAME_LABEL } from "../../policy/identity.js";

const PROTECTED_NAMESPACES = new Set(["default", "kube-system", "kube-public"]);
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function meta(obj: JsonObject): JsonObject {
  return objectAt(obj, "metadata") ?? {};
}

/** Options for {@link Admission}. */
export interface AdmissionOptions {
  /** Where ClusterIPs come from (default 10.96.0.0/16, kube-apiserver's default). */
  serviceCidr?: string;
  /** NodePorts, inclusive (default 30000-32767). */
  nodePortRange?: readonly [number, number];
}

/** kube-apiserver's --service-cluster-ip-range default. */
export const DEFAULT_SERVICE_CIDR = "10.96.0.0/16";

/**
 * The admission chain. One per store; it keeps no objects, only what objects hold (ClusterIPs
 * and NodePorts). Every method throws an {@link ApiError} for what the real server rejects and
 * changes nothing then.
 */
export class Admission {
  readonly services: ServiceAdmission;

  /** Throws RangeError for a bad service CIDR or node port range. */
  constructor(options: AdmissionOptions = {}) {
    const [first, last] = options.nodePortRange ?? [30000, 32767];
    this.services = new ServiceAdmission(
      new ClusterIpAllocator(options.serviceCidr ?? DEFAULT_SERVICE_CIDR),
      new NodePortAllocator(first, last),
    );
  }

  /** 422 when the body's kind or apiVersion names another resource (empty means "this one"). */
  checkKind(info: ResourceInfo, body: JsonObject, name: string): void {
    const causes: StatusCause[] = [];
    const kind = stringAt(body, "kind");
    const apiVersion = stringAt(body, "apiVersion");
    if (kind !== undefined && kind !== "" && kind !== info.kind) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "kind",
        message: `Invalid value: "${kind}": must be ${info.kind} for ${info.name}`,
      });
    }
    if (apiVersion !== undefined && apiVersion !== "" && apiVersion !== info.apiVersion) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "apiVersion",
        message: `Invalid value: "${apiVersion}": must be ${info.apiVersion} for ${info.name}`,
      });
    }
    if (causes.length > 0) throw invalid(info.kind, info.group, name, causes);
  }

  /** 422 for a missing or invalid name, invalid label keys/values or annotation keys. */
  validateMeta(info: ResourceInfo, obj: JsonObject, name: string): void {
    const causes: StatusCause[] = [];
    const rule = info.nameRule === "label" ? DNS_LABEL_RE : DNS_SUBDOMAIN_RE;
    const max = info.nameRule === "label" ? 63 : 253;
    if (name !== "" && info.nameRule === "dns1035") {
      for (const msg of dns1035LabelErrors(name))
        causes.push({
          reason: "FieldValueInvalid",
          field: "metadata.name",
          message: `Invalid value: "${name}": ${msg}`,
        });
    } else if (name === "") {
      causes.push({
        reason: "FieldValueRequired",
        field: "metadata.name",
        message: "Required value: name or generateName is required",
      });
    } else if (name.length > max || !rule.test(name)) {
      causes.push({
        reason: "FieldValueInvalid",
        field: "metadata.name",
        message: `Invalid value: "${name}": a lowercase RFC 1123 ${info.nameRule} must consist of lower case alphanumeric characters, '-'${
          info.nameRule === "subdomain" ? " or '.'" : ""
        }, and must start and end with an alphanumeric character`,
      });
    }
    const labels = objectAt(meta(obj), "labels") ?? {};
    for (const [k, v] of Object.entries(labels)) {
      const ke = labelKeyError(k);
      if (ke !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: "metadata.labels",
          message: `Invalid value: "${k}": ${ke}`,
        });
      const ve = typeof v === "string" ? labelValueError(v) : "must be a string";
      if (ve !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: `metadata.labels`,
          message: `Invalid value: ${JSON.stringify(v)}: ${ve}`,
        });
    }
    const annotations = objectAt(meta(obj), "annotations") ?? {};
    for (const k of Object.keys(annotations)) {
      const ke = labelKeyError(k);
      if (ke !== undefined)
        causes.push({
          reason: "FieldValueInvalid",
          field: "metadata.annotations",
          message: `Invalid value: "${k}": ${ke}`,
        });
    }
    if (causes.length > 0) throw invalid(info.kind, info.group, name, causes);
  }

  /**
   * Defaults a new object in place (its metadata already validated, its name free). Called last
   * before the object is stored.
   */
  admitCreate(info: ResourceInfo, obj: JsonObject, name: string): void {
    if (info.name === "namespaces") {
      const m = obj.metadata as JsonObject;
      m.labels = { ...(objectAt(m, "labels") ?? {}), [NAMESPACE_NAME_LABEL]: name };
      const spec = objectAt(obj, "spec") ?? {};
      if (!Array.isArray(spec.finalizers)) spec.finalizers = ["kubernetes"];
      obj.spec = spec;
      const status = objectAt(obj, "status") ?? {};
      status.phase = "Active";
      obj.status = status;
    } else if (info.name === "pods") {
      const status = objectAt(obj, "status") ?? {};
      if (stringAt(status, "phase") === undefined) status.phase = "Pending";
      obj.status = status;
    } else if (info.name === "services") {
      this.services.create(obj, name);
    } else if (info.name === "endpointslices") {
      admitEndpointSliceCreate(obj, name);
    }
  }

  /**
   * Defaults and validates the next version of `old` in place (server-managed metadata already
   * carried over). Called last before the comparison with `old` and the write.
   */
  admitUpdate(info: ResourceInfo, next: JsonObject, old: JsonObject, name: string): void {
    if (info.name === "namespaces") {
      const m = next.metadata as JsonObject;
      m.labels = { ...(objectAt(m, "labels") ?? {}), [NAMESPACE_NAME_LABEL]: name };
      const status = objectAt(next, "status") ?? {};
      status.phase = "Active";
      next.status = status;
    }
    this.validateMeta(info, next, name);
    if (info.name === "services") this.services.update(next, old, name);
    else if (info.name === "endpointslices") admitEndpointSliceUpdate(next, old, name);
  }

  /** 403 for the namespaces the real server's NamespaceLifecycle admission keeps. */
  admitDelete(info: ResourceInfo, name: string): void {
    if (info.name === "namespaces" && PROTECTED_NAMESPACES.has(name))
      throw forbidden(info, name, "this namespace may not be deleted");
  }

  /** Gives back what a deleted object held. */
  released(info: ResourceInfo, obj: JsonObject): void {
    if (info.name === "services") this.services.release(obj);
  }
}
