/**
 * NetworkPolicy ports: validation as the API server does it, endPort ranges as LPM prefixes,
 * and container ports by name for named-port resolution.
 */
import type { V1Container, V1ContainerPort, V1Pod } from "@kubernetes/client-node";
import { Protocol, portRangePrefixes } from "../maps/policy.js";

/** The protocols a NetworkPolicy may name, with their IP protocol numbers. */
export const POLICY_PROTOCOLS: ReadonlyMap<string, number> = new Map([
  ["TCP", Protocol.TCP],
  ["UDP", Protocol.UDP],
  ["SCTP", Protocol.SCTP],
]);

/** What one entry of a rule's `ports` allows. */
export type PortSpec =
  /** No `ports` at all: every protocol and port. */
  | { readonly kind: "any" }
  /** A protocol without `port`: every port of it. */
  | { readonly kind: "protocol"; readonly protocol: number }
  /** A number, or `port`..`endPort`, as LPM prefixes over the 16 port bits. */
  | {
      readonly kind: "range";
      readonly protocol: number;
      readonly from: number;
      readonly to: number;
      readonly prefixes: readonly { readonly port: number; readonly bits: number }[];
    }
  /** A named port, resolved on a pod's container ports (same name and protocol). */
  | { readonly kind: "named"; readonly protocol: number; readonly name: string };

const ianaChars = /^[-a-z0-9]+$/;
const hasLetter = /[a-z]/;

/**
 * Is `name` an IANA_SVC_NAME (RFC 6335): 1-15 characters of a-z, 0-9 and '-', at least one letter,
 * no leading, trailing or doubled '-'? That is what the API accepts as a named port.
 */
export function isIanaSvcName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 15 &&
    ianaChars.test(name) &&
    hasLetter.test(name) &&
    !name.startsWith("-") &&
    !name.endsWith("-") &&
    !name.includes("--")
  );
}

function isPortNumber(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Result of compiling a rule's ports: the specs, or every problem found. */
export type PortsResult = { ok: true; ports: PortSpec[] } | { ok: false; errors: string[] };

/**
 * Validates and compiles a rule's `ports`. Absent or empty = every protocol and port; protocol
 * defaults to TCP; `endPort` needs a numeric `port` and must not be below it. `path` names the
 * field in error messages. `ports` is normally V1NetworkPolicyPort[]; anything else is reported,
 * never thrown.
 */
export function compilePorts(ports: unknown, path: string): PortsResult {
  if (ports === undefined || ports === null) return { ok: true, ports: [{ kind: "any" }] };
  if (!Array.isArray(ports)) return { ok: false, errors: [`${path}: not a list`] };
  if (ports.length === 0) return { ok: true, ports: [{ kind: "any" }] };
  const errors: string[] = [];
  const out: PortSpec[] = [];
  ports.forEach((raw: unknown, i) => {
    const p = `${path}[${i}]`;
    if (typeof raw !== "object" || raw === null) {
      errors.push(`${p}: not an object`);
      return;
    }
    const entry = raw as { port?: unknown; endPort?: unknown; protocol?: unknown };
    const protoName = entry.protocol === undefined || entry.protocol === null ? "TCP" : entry.protocol;
    const protocol = typeof protoName === "string" ? POLICY_PROTOCOLS.get(protoName) : undefined;
    if (protocol === undefined)
      errors.push(`${p}.protocol: ${JSON.stringify(protoName)} is not one of TCP, UDP, SCTP`);
    const port = entry.port === null ? undefined : entry.port;
    const endPort = entry.endPort === null ? undefined : entry.endPort;
    if (port === undefined) {
      if (endPort !== undefined) errors.push(`${p}.endPort: may not be specified when port is not specified`);
      else if (protocol !== undefined) out.push({ kind: "protocol", protocol });
      return;
    }
    if (typeof port === "string") {
      if (!isIanaSvcName(port))
        errors.push(`${p}.port: ${JSON.stringify(port)} is not a valid port name (IANA_SVC_NAME)`);
      if (endPort !== undefined) errors.push(`${p}.endPort: may not be specified when port is a name`);
      else if (protocol !== undefined && isIanaSvcName(port))
        out.push({ kind: "named", protocol, name: port });
      return;
    }
    if (!isPortNumber(port)) {
      errors.push(`${p}.port: ${JSON.stringify(port)} is not a port number (1-65535) or name`);
      return;
    }
    let to = port;
    if (endPort !== undefined) {
      if (!isPortNumber(endPort)) {
        errors.push(`${p}.endPort: ${JSON.stringify(endPort)} is not a port number (1-65535)`);
        return;
      }
      if (endPort < port) {
        errors.push(`${p}.endPort: ${endPort} must be greater than or equal to port ${port}`);
        return;
      }
      to = endPort;
    }
    if (protocol !== undefined)
      out.push({ kind: "range", protocol, from: port, to, prefixes: portRangePrefixes(port, to) });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, ports: out };
}

/** Key of a named port in `containerNamedPorts`: protocol number and name. */
export function namedPortKey(protocol: number, name: string): string {
  return `${protocol}/${name}`;
}

/**
 * The pod's named container ports, `namedPortKey(protocol, name)` → number. Regular containers
 * first, then sidecars (init containers with restartPolicy Always, which run for the pod's
 * lifetime); the first declaration of a name and protocol wins, as Kubernetes' own FindPort does.
 */
export function containerNamedPorts(pod: V1Pod): Map<string, number> {
  const out = new Map<string, number>();
  const visit = (containers: unknown, sidecarsOnly: boolean): void => {
    if (!Array.isArray(containers)) return;
    for (const c of containers as V1Container[]) {
      if (sidecarsOnly && c.restartPolicy !== "Always") continue;
      const ports: unknown = c.ports;
      if (!Array.isArray(ports)) continue;
      for (const cp of ports as V1ContainerPort[]) {
        if (typeof cp.name !== "string" || cp.name === "" || !isPortNumber(cp.containerPort)) continue;
        const protocol = POLICY_PROTOCOLS.get(cp.protocol ?? "TCP");
        if (protocol === undefined) continue;
        const key = namedPortKey(protocol, cp.name);
        if (!out.has(key)) out.set(key, cp.containerPort);
      }
    }
  };
  visit(pod.spec?.containers, false);
  visit(pod.spec?.initContainers, true);
  return out;
}

/** The port part of policy keys: protocol and port prefix, both optional. */
export interface PortTuple {
  readonly protocol?: number;
  readonly port?: number;
  readonly portBits?: number;
}

const ANY_TUPLE: PortTuple = {};

/**
 * The port tuples a spec stands for. Named specs resolve through `named` (a pod's
 * `containerNamedPorts`); without it, or when the pod lacks the name, they stand for nothing.
 */
export function portTuples(spec: PortSpec, named?: ReadonlyMap<string, number>): PortTuple[] {
  switch (spec.kind) {
    case "any":
      return [ANY_TUPLE];
    case "protocol":
      return [{ protocol: spec.protocol }];
    case "range":
      return spec.prefixes.map((p) => ({ protocol: spec.protocol, port: p.port, portBits: p.bits }));
    case "named": {
      const port = named?.get(namedPortKey(spec.protocol, spec.name));
      return port === undefined ? [] : [{ protocol: spec.protocol, port, portBits: 16 }];
    }
  }
}
