/**
 * discovery.k8s.io/v1 EndpointSlices through admission as kube-apiserver does it: v1 defaulting
 * (a port's name "" and protocol TCP) and ValidateEndpointSlice/ValidateEndpointSliceUpdate
 * (addressType required and one of FQDN/IPv4/IPv6, immutable once set; every endpoint has 1 to
 * 100 addresses valid for the address type; nodeName and hostname are DNS names; ports have
 * unique names and a supported protocol) with their messages. Conditions are booleans (checked
 * by the shape check) and stay unset when the writer leaves them unset, meaning "unknown".
 */
import { invalid } from "./errors.js";
import {
  dns1123LabelErrors,
  dns1123SubdomainErrors,
  FieldErrors,
  portNumError,
  specialIPv4Error,
} from "./field-errors.js";
import { isJsonObject, type JsonObject } from "./json.js";

const ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS = ["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS = 1000;
const MAX_ADDRESSES = 100;
const MAX_PORTS = 20000;

function objects(v: unknown): JsonObject[] {
  return Array.isArray(v) ? v.map((e) => (isJsonObject(e) ? e : {})) : [];
}

function ipv4Octets(ip: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (m === null) return undefined;
  const parts = m.slice(1);
  if (parts.some((p) => Number(p) > 255 || (p.length > 1 && p.startsWith("0")))) return undefined;
  return parts.map(Number);
}

/** SetDefaults_EndpointPort on every port; null list elements decode to empty structs. */
function setDefaults(obj: JsonObject): void {
  if (Array.isArray(obj.ports)) {
    obj.ports = objects(obj.ports).map((p) => {
      const port = { ...p };
      if (typeof port.name !== "string") port.name = "";
      if (typeof port.protocol !== "string") port.protocol = "TCP";
      return port;
    });
  }
  if (Array.isArray(obj.endpoints)) obj.endpoints = objects(obj.endpoints);
}

function validate(obj: JsonObject, errs: FieldErrors): void {
  const addressType = typeof obj.addressType === "string" ? obj.addressType : "";
  const endpoints = objects(obj.endpoints);
  if (endpoints.length > MAX_ENDPOINTS) errs.tooMany("endpoints", endpoints.length, MAX_ENDPOINTS);
  endpoints.forEach((ep, i) => {
    const path = `endpoints[${i}]`;
    const addresses = Array.isArray(ep.addresses) ? ep.addresses : [];
    if (addresses.length === 0) errs.required(`${path}.addresses`, "must contain at least 1 address");
    else if (addresses.length > MAX_ADDRESSES)
      errs.tooMany(`${path}.addresses`, addresses.length, MAX_ADDRESSES);
    addresses.forEach((a, j) => {
      const address = typeof a === "string" ? a : "";
      const field = `${path}.addresses[${j}]`;
      if (addressType === "IPv4") {
        const octets = ipv4Octets(address);
        if (octets === undefined) errs.invalid(field, address, "must be a valid IPv4 address");
        else {
          const special = specialIPv4Error(octets);
          if (special !== undefined) errs.invalid(field, address, special);
        }
      } else if (addressType === "IPv6") {
        let ok = address.includes(":");
        try {
          new URL(`http://[${address}]/`);
        } catch {
          ok = false;
        }
        if (!ok) errs.invalid(field, address, "must be a valid IPv6 address");
      } else if (addressType === "FQDN") {
        for (const msg of dns1123SubdomainErrors(address)) errs.invalid(field, address, msg);
      }
    });
    if (typeof ep.nodeName === "string")
      for (const msg of dns1123SubdomainErrors(ep.nodeName))
        errs.invalid(`${path}.nodeName`, ep.nodeName, msg);
    if (typeof ep.hostname === "string")
      for (const msg of dns1123LabelErrors(ep.hostname)) errs.invalid(`${path}.hostname`, ep.hostname, msg);
  });

  const ports = objects(obj.ports);
  if (ports.length > MAX_PORTS) errs.tooMany("ports", ports.length, MAX_PORTS);
  const names = new Set<string>();
  ports.forEach((p, i) => {
    const path = `ports[${i}]`;
    const name = typeof p.name === "string" ? p.name : "";
    if (name !== "") for (const msg of dns1123LabelErrors(name)) errs.invalid(`${path}.name`, name, msg);
    if (names.has(name)) errs.duplicate(`${path}.name`, name);
    else names.add(name);
    if (typeof p.protocol !== "string") errs.required(`${path}.protocol`);
    else if (!PROTOCOLS.includes(p.protocol)) errs.notSupported(`${path}.protocol`, p.protocol, PROTOCOLS);
    if (typeof p.port === "number") {
      const e = portNumError(p.port);
      if (e !== undefined) errs.invalid(`${path}.port`, p.port, e);
    }
  });

  if (addressType === "") errs.required("addressType");
  else if (!ADDRESS_TYPES.includes(addressType)) errs.notSupported("addressType", addressType, ADDRESS_TYPES);
}

/** Defaults and validates a new EndpointSlice in place; throws 422 Invalid with causes. */
export function admitEndpointSliceCreate(obj: JsonObject, name: string): void {
  setDefaults(obj);
  const errs = new FieldErrors();
  validate(obj, errs);
  if (!errs.empty) throw invalid("EndpointSlice", "discovery.k8s.io", name, errs.causes);
}

/** Like {@link admitEndpointSliceCreate}, and `addressType` may not change. */
export function admitEndpointSliceUpdate(next: JsonObject, old: JsonObject, name: string): void {
  setDefaults(next);
  const errs = new FieldErrors();
  validate(next, errs);
  if (next.addressType !== old.addressType)
    errs.invalid(
      "addressType",
      typeof next.addressType === "string" ? next.addressType : "",
      "field is immutable",
    );
  if (!errs.empty) throw invalid("EndpointSlice", "discovery.k8s.io", name, errs.causes);
}
