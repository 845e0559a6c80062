/**
 * Services through admission as kube-apiserver does it for a single-stack IPv4 cluster: v1
 * defaulting (type, sessionAffinity and its ClientIP timeout, port protocol and targetPort,
 * traffic policies, allocateLoadBalancerNodePorts), ClusterIP/NodePort allocation (pkg/registry/
 * core/service/storage: allocated values the client left out are kept on update, explicit values
 * must be in range and free), IP family defaulting, type-dependent fields dropped on a type
 * change, and ValidateService/ValidateServiceUpdate's checks with their messages. Allocation is
 * transactional: whatever a rejected request allocated is given back, and what an update frees
 * is released only once the update is accepted.
 */
import { AllocationError, type ClusterIpAllocator, type NodePortAllocator } from "./allocators.js";
import { ApiError, invalid } from "./errors.js";
import {
  dns1123LabelErrors,
  dns1123SubdomainErrors,
  FieldErrors,
  goRaw,
  type GoValue,
  goStrings,
  portNameErrors,
  portNumError,
  specialIPv4Error,
} from "./field-errors.js";
import { isJsonObject, jsonEqual, objectAt, type JsonObject } from "./json.js";
import { labelKeyError, labelValueError } from "./selectors.js";

const TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS = ["SCTP", "TCP", "UDP"];
const AFFINITIES = ["ClientIP", "None"];
const TRAFFIC_POLICIES = ["Cluster", "Local"];
const FAMILIES = ["IPv4", "IPv6"];
const FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"];
/** v1.DefaultClientIPServiceAffinitySeconds and core.MaxClientIPServiceAffinitySeconds. */
const DEFAULT_AFFINITY_SECONDS = 10800;
const MAX_AFFINITY_SECONDS = 86400;
const IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/** A JSON value as the Go field it decodes into: null and wrong types read as unset. */
function str(obj: JsonObject, key: string): string {
  const v = obj[key];
  return typeof v === "string" ? v : "";
}

function num(obj: JsonObject, key: string): number {
  const v = obj[key];
  return typeof v === "number" ? v : 0;
}

function strings(obj: JsonObject, key: string): string[] {
  const v = obj[key];
  return Array.isArray(v) ? v.map((e) => (typeof e === "string" ? e : "")) : [];
}

function isSet(obj: JsonObject, key: string): boolean {
  return obj[key] !== undefined && obj[key] !== null;
}

function dropNulls(obj: JsonObject): void {
  for (const [k, v] of Object.entries(obj)) if (v === null) Reflect.deleteProperty(obj, k);
}

/** The spec's ports as objects (a null element decodes to an empty port). */
function portsOf(spec: JsonObject): JsonObject[] {
  const list = spec.ports;
  if (!Array.isArray(list)) return [];
  return list.map((p) => (isJsonObject(p) ? p : {}));
}

function octets(ip: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (m === null) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255) || m.slice(1).some((p) => p.length > 1 && p.startsWith("0")))
    return undefined;
  return parts;
}

/** Go's net.ParseIP, roughly: a dotted quad, or text with a colon that Node accepts as IPv6. */
function ipFamily(ip: string): "IPv4" | "IPv6" | undefined {
  if (octets(ip) !== undefined) return "IPv4";
  if (ip.includes(":") && /^[0-9a-fA-F:.]+$/.test(ip)) {
    try {
      new URL(`http://[${ip}]/`);
      return "IPv6";
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isHeadless(spec: JsonObject): boolean {
  return str(spec, "clusterIP") === "None";
}

function hasSelector(spec: JsonObject): boolean {
  const sel = objectAt(spec, "selector");
  return sel !== undefined && Object.keys(sel).length > 0;
}

function needsClusterIP(spec: JsonObject): boolean {
  return str(spec, "type") !== "ExternalName" && !isHeadless(spec);
}

function needsNodePorts(spec: JsonObject): boolean {
  const type = str(spec, "type");
  return type === "NodePort" || (type === "LoadBalancer" && spec.allocateLoadBalancerNodePorts !== false);
}

function needsHealthCheck(spec: JsonObject): boolean {
  return str(spec, "type") === "LoadBalancer" && str(spec, "externalTrafficPolicy") === "Local";
}

function externallyAccessible(spec: JsonObject): boolean {
  const type = str(spec, "type");
  return (
    type === "LoadBalancer" ||
    type === "NodePort" ||
    (type === "ClusterIP" && strings(spec, "externalIPs").length > 0)
  );
}

/** SetDefaults_Service and SetDefaults_ServicePort (k8s.io/kubernetes pkg/apis/core/v1). */
function setDefaults(spec: JsonObject): void {
  dropNulls(spec);
  if (str(spec, "type") === "") spec.type = "ClusterIP";
  if (str(spec, "sessionAffinity") === "") spec.sessionAffinity = "None";
  if (spec.sessionAffinity === "ClientIP") {
    const config = objectAt(spec, "sessionAffinityConfig") ?? {};
    const clientIP = objectAt(config, "clientIP") ?? {};
    if (!isSet(clientIP, "timeoutSeconds")) clientIP.timeoutSeconds = DEFAULT_AFFINITY_SECONDS;
    config.clientIP = clientIP;
    spec.sessionAffinityConfig = config;
  }
  if (Array.isArray(spec.ports)) {
    const ports = portsOf(spec);
    for (const p of ports) {
      dropNulls(p);
      if (str(p, "protocol") === "") p.protocol = "TCP";
      if (p.targetPort === undefined || p.targetPort === 0 || p.targetPort === "")
        p.targetPort = num(p, "port");
    }
    spec.ports = ports;
  }
  if (!isSet(spec, "externalTrafficPolicy") || spec.externalTrafficPolicy === "") {
    if (externallyAccessible(spec)) spec.externalTrafficPolicy = "Cluster";
  }
  if (!isSet(spec, "internalTrafficPolicy") && spec.type !== "ExternalName")
    spec.internalTrafficPolicy = "Cluster";
  if (spec.type === "LoadBalancer" && !isSet(spec, "allocateLoadBalancerNodePorts"))
    spec.allocateLoadBalancerNodePorts = true;
}

/** NormalizeClusterIPs: keeps the singular and plural fields in step. */
function normalizeClusterIPs(spec: JsonObject, old: JsonObject | undefined): void {
  const ip = str(spec, "clusterIP");
  const ips = strings(spec, "clusterIPs");
  if (old === undefined) {
    if (ip !== "" && ips.length === 0) spec.clusterIPs = [ip];
    return;
  }
  // The client changed the singular field and left the plural one as it was: follow the singular.
  if (ip !== str(old, "clusterIP") && jsonEqual(ips, strings(old, "clusterIPs"))) {
    if (ip === "") delete spec.clusterIPs;
    else spec.clusterIPs = [ip];
  }
}

/** patchAllocatedValues: allocated values the client did not send are kept, for idempotence. */
function patchAllocatedValues(spec: JsonObject, old: JsonObject): void {
  if (needsClusterIP(old) && needsClusterIP(spec)) {
    if (str(spec, "clusterIP") === "") spec.clusterIP = str(old, "clusterIP");
    if (strings(spec, "clusterIPs").length === 0 && strings(old, "clusterIPs").length > 0)
      spec.clusterIPs = strings(old, "clusterIPs");
  }
  if (needsNodePorts(old) && needsNodePorts(spec)) {
    const oldPorts = portsOf(old);
    const newPorts = portsOf(spec);
    const inNew = new Set(newPorts.map((p) => num(p, "nodePort")));
    const used = new Set(oldPorts.map((p) => num(p, "nodePort")).filter((n) => inNew.has(n)));
    const byName = new Map(oldPorts.map((p) => [str(p, "name"), num(p, "nodePort")]));
    for (const p of newPorts) {
      if (num(p, "nodePort") !== 0) continue;
      const was = byName.get(str(p, "name")) ?? 0;
      if (was !== 0 && !used.has(was)) p.nodePort = was;
    }
  }
  if (needsHealthCheck(old) && needsHealthCheck(spec) && num(spec, "healthCheckNodePort") === 0) {
    const was = num(old, "healthCheckNodePort");
    if (was !== 0) spec.healthCheckNodePort = was;
  }
}

/** dropTypeDependentFields: what the old type needed and the new one does not, unless the client changed it. */
function dropTypeDependentFields(spec: JsonObject, old: JsonObject): void {
  if (needsClusterIP(old) && !needsClusterIP(spec) && str(spec, "type") === "ExternalName") {
    if (str(spec, "clusterIP") === str(old, "clusterIP")) delete spec.clusterIP;
    if (jsonEqual(strings(spec, "clusterIPs"), strings(old, "clusterIPs"))) delete spec.clusterIPs;
    if (jsonEqual(spec.ipFamilies, old.ipFamilies)) delete spec.ipFamilies;
    if (jsonEqual(spec.ipFamilyPolicy, old.ipFamilyPolicy)) delete spec.ipFamilyPolicy;
  }
  if (needsNodePorts(old) && !needsNodePorts(spec)) {
    const oldPorts = portsOf(old);
    for (const p of portsOf(spec)) {
      const n = num(p, "nodePort");
      if (n !== 0 && oldPorts.some((o) => num(o, "nodePort") === n)) delete p.nodePort;
    }
  }
  if (
    needsHealthCheck(old) &&
    !needsHealthCheck(spec) &&
    num(spec, "healthCheckNodePort") === num(old, "healthCheckNodePort")
  )
    delete spec.healthCheckNodePort;
  if (
    str(spec, "type") !== "LoadBalancer" &&
    jsonEqual(spec.allocateLoadBalancerNodePorts, old.allocateLoadBalancerNodePorts)
  )
    delete spec.allocateLoadBalancerNodePorts;
  if (
    !externallyAccessible(spec) &&
    externallyAccessible(old) &&
    spec.externalTrafficPolicy === old.externalTrafficPolicy
  )
    delete spec.externalTrafficPolicy;
  if (spec.type === "ExternalName" && jsonEqual(spec.internalTrafficPolicy, old.internalTrafficPolicy))
    delete spec.internalTrafficPolicy;
}

/** ValidateServiceClusterIPsRelatedFields. */
function validateClusterIPsRelated(spec: JsonObject, errs: FieldErrors): void {
  if (str(spec, "type") === "ExternalName") return;
  const ip = str(spec, "clusterIP");
  const ips = strings(spec, "clusterIPs");
  if (ip !== "") {
    if (ips.length === 0) errs.required("spec.clusterIPs");
    else if (ips[0] !== ip)
      errs.invalid("spec.clusterIPs", goStrings(ips), "first value must match `clusterIP`");
  } else if (ips.length > 0) {
    errs.invalid("spec.clusterIPs", goStrings(ips), "must be empty when `clusterIP` is not specified");
  }
  const families = strings(spec, "ipFamilies");
  const seen = new Set<string>();
  families.forEach((f, i) => {
    if (!FAMILIES.includes(f)) errs.notSupported(`spec.ipFamilies[${i}]`, f, FAMILIES);
    if (seen.has(f)) errs.duplicate(`spec.ipFamilies[${i}]`, f);
    seen.add(f);
  });
  if (isSet(spec, "ipFamilyPolicy") && !FAMILY_POLICIES.includes(str(spec, "ipFamilyPolicy")))
    errs.notSupported("spec.ipFamilyPolicy", str(spec, "ipFamilyPolicy"), FAMILY_POLICIES);
  let badIPs = false;
  for (const [i, v] of ips.entries()) {
    if (i === 0 && v === "None") {
      if (ips.length > 1) {
        badIPs = true;
        errs.invalid("spec.clusterIPs", goStrings(ips), "'None' must be the first and only value");
      }
      continue;
    }
    if (ipFamily(v) === undefined) {
      badIPs = true;
      errs.invalid(`spec.clusterIPs[${i}]`, v, IP_MESSAGE);
    }
  }
  if (ips.length > 2) errs.invalid("spec.clusterIPs", goStrings(ips), "may only hold up to 2 values");
  if (badIPs) return;
  if (ips.length > 1 && ipFamily(ips[0] ?? "") === ipFamily(ips[1] ?? ""))
    errs.invalid("spec.clusterIPs", goStrings(ips), "may specify no more than one IP for each IP family");
  if (!isHeadless(spec)) {
    ips.forEach((v, i) => {
      const want = families[i];
      if (want === undefined) return;
      const got = ipFamily(v);
      if (want === "IPv4" && got === "IPv6")
        errs.invalid(
          `spec.clusterIPs[${i}]`,
          v,
          `expected an IPv4 value as indicated by \`ipFamilies[${i}]\``,
        );
      if (want === "IPv6" && got !== "IPv6")
        errs.invalid(
          `spec.clusterIPs[${i}]`,
          v,
          `expected an IPv6 value as indicated by \`ipFamilies[${i}]\``,
        );
    });
  }
}

function goServicePort(protocol: string, port: number): string {
  return `core.ServicePort{Name:"", Protocol:${JSON.stringify(protocol)}, AppProtocol:(*string)(nil), Port:${port}, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`;
}

/** ValidateService (after defaulting), without the metadata checks the store already made. */
function validateService(spec: JsonObject, errs: FieldErrors): void {
  const type = str(spec, "type");
  const headless = isHeadless(spec);
  const ports = portsOf(spec);
  if (ports.length === 0 && !headless && type !== "ExternalName") errs.required("spec.ports");
  const ips = strings(spec, "clusterIPs");
  if ((type === "LoadBalancer" || type === "NodePort") && headless)
    errs.invalid("spec.clusterIPs[0]", ips[0] ?? "None", `may not be set to 'None' for ${type} services`);
  if (type === "ExternalName") {
    if (ips.length > 0) errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
    if (strings(spec, "ipFamilies").length > 0)
      errs.forbidden("spec.ipFamilies", "may not be set for ExternalName services");
    if (isSet(spec, "ipFamilyPolicy"))
      errs.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services");
    const cname = str(spec, "externalName").replace(/\.$/, "");
    if (cname === "") errs.required("spec.externalName");
    else for (const msg of dns1123SubdomainErrors(cname)) errs.invalid("spec.externalName", cname, msg);
  }

  const names = new Set<string>();
  ports.forEach((p, i) => {
    const path = `spec.ports[${i}]`;
    const name = str(p, "name");
    if (ports.length > 1 && name === "") errs.required(`${path}.name`);
    else if (name !== "") {
      for (const msg of dns1123LabelErrors(name)) errs.invalid(`${path}.name`, name, msg);
      if (names.has(name)) errs.duplicate(`${path}.name`, name);
      else names.add(name);
    }
    const portError = portNumError(num(p, "port"));
    if (portError !== undefined) errs.invalid(`${path}.port`, num(p, "port"), portError);
    const protocol = str(p, "protocol");
    if (protocol === "") errs.required(`${path}.protocol`);
    else if (!PROTOCOLS.includes(protocol)) errs.notSupported(`${path}.protocol`, protocol, PROTOCOLS);
    const target = p.targetPort;
    if (typeof target === "number") {
      const e = portNumError(target);
      if (e !== undefined) errs.invalid(`${path}.targetPort`, target, e);
    } else if (typeof target === "string") {
      for (const msg of portNameErrors(target)) errs.invalid(`${path}.targetPort`, target, msg);
    }
  });

  const selector = objectAt(spec, "selector");
  if (selector !== undefined) {
    for (const [k, v] of Object.entries(selector)) {
      const ke = labelKeyError(k);
      if (ke !== undefined) errs.invalid("spec.selector", k, ke);
      const ve = typeof v === "string" ? labelValueError(v) : undefined;
      if (ve !== undefined && typeof v === "string") errs.invalid("spec.selector", v, ve);
    }
  }

  const affinity = str(spec, "sessionAffinity");
  if (affinity === "") errs.required("spec.sessionAffinity");
  else if (!AFFINITIES.includes(affinity)) errs.notSupported("spec.sessionAffinity", affinity, AFFINITIES);
  const config = objectAt(spec, "sessionAffinityConfig");
  if (affinity === "ClientIP") {
    const clientIP = objectAt(config, "clientIP");
    if (config === undefined)
      errs.required("spec.sessionAffinityConfig", "when session affinity type is ClientIP");
    else if (clientIP === undefined)
      errs.required("spec.sessionAffinityConfig.clientIP", "when session affinity type is ClientIP");
    else {
      const t = num(clientIP, "timeoutSeconds");
      if (t <= 0 || t > MAX_AFFINITY_SECONDS)
        errs.invalid(
          "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
          t,
          `must be greater than 0 and less than ${MAX_AFFINITY_SECONDS}`,
        );
    }
  } else if (affinity === "None" && isSet(spec, "sessionAffinityConfig")) {
    errs.forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None");
  }

  validateClusterIPsRelated(spec, errs);

  strings(spec, "externalIPs").forEach((ip, i) => {
    const path = `spec.externalIPs[${i}]`;
    const family = ipFamily(ip);
    if (family === undefined) errs.invalid(path, ip, IP_MESSAGE);
    else if (family === "IPv4") {
      const special = specialIPv4Error(octets(ip) ?? []);
      if (special !== undefined) errs.invalid(path, ip, special);
    }
  });

  if (type === "") errs.required("spec.type");
  else if (!TYPES.includes(type)) errs.notSupported("spec.type", type, TYPES);

  if (type === "ClusterIP") {
    ports.forEach((p, i) => {
      if (num(p, "nodePort") !== 0)
        errs.forbidden(`spec.ports[${i}].nodePort`, "may not be used when `type` is 'ClusterIP'");
    });
  }
  const nodePorts = new Set<string>();
  ports.forEach((p, i) => {
    const n = num(p, "nodePort");
    if (n === 0) return;
    const key = `${str(p, "protocol")}/${n}`;
    if (nodePorts.has(key)) errs.duplicate(`spec.ports[${i}].nodePort`, n);
    nodePorts.add(key);
  });
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    const key = `${str(p, "protocol")}/${num(p, "port")}`;
    if (seen.has(key))
      errs.duplicate(`spec.ports[${i}]`, goRaw(goServicePort(str(p, "protocol"), num(p, "port"))));
    seen.add(key);
  });

  if (isSet(spec, "allocateLoadBalancerNodePorts") && type !== "LoadBalancer")
    errs.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'");

  const etp = str(spec, "externalTrafficPolicy");
  if (!externallyAccessible(spec)) {
    if (etp !== "")
      errs.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services");
  } else if (etp === "") errs.required("spec.externalTrafficPolicy");
  else if (!TRAFFIC_POLICIES.includes(etp))
    errs.notSupported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES);
  const hc = num(spec, "healthCheckNodePort");
  if (!needsHealthCheck(spec)) {
    if (hc !== 0)
      errs.invalid(
        "spec.healthCheckNodePort",
        hc,
        "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
      );
  } else if (hc === 0) errs.required("spec.healthCheckNodePort");
  else {
    const e = portNumError(hc);
    if (e !== undefined) errs.invalid("spec.healthCheckNodePort", hc, e);
  }

  if (!isSet(spec, "internalTrafficPolicy")) {
    if (type === "NodePort" || type === "LoadBalancer" || type === "ClusterIP")
      errs.required("spec.internalTrafficPolicy");
  } else if (!TRAFFIC_POLICIES.includes(str(spec, "internalTrafficPolicy"))) {
    errs.notSupported("spec.internalTrafficPolicy", str(spec, "internalTrafficPolicy"), TRAFFIC_POLICIES);
  }
}

/** validateUpgradeDowngradeClusterIPs for a single-stack cluster: the primary ClusterIP is fixed. */
function validateClusterIPUpdate(spec: JsonObject, old: JsonObject, errs: FieldErrors): void {
  if (str(spec, "type") === "ExternalName" || str(old, "type") === "ExternalName") return;
  if (isHeadless(spec) && isHeadless(old)) return;
  const before = strings(old, "clusterIPs");
  const after = strings(spec, "clusterIPs");
  if (before.length === after.length) {
    before.forEach((ip, i) => {
      if (ip !== after[i]) errs.invalid(`spec.clusterIPs[${i}]`, goStrings(after), "may not change once set");
    });
  } else if (before.length > after.length) {
    if (after.length === 0)
      errs.invalid("spec.clusterIPs[0]", goStrings(after), "primary clusterIP can not be unset");
    else if (after[0] !== before[0])
      errs.invalid("spec.clusterIPs[0]", goStrings(after), "may not change once set");
  } else if (before.length > 0 && after[0] !== before[0]) {
    errs.invalid("spec.clusterIPs[0]", goStrings(after), "may not change once set");
  }
}

/** What one request allocated (given back if it fails) and what it frees (released if it succeeds). */
interface Txn {
  ips: string[];
  ports: number[];
  freeIps: string[];
  freePorts: number[];
}

/**
 * Service admission with its allocators. `create`/`update` change the object in place and
 * throw an {@link ApiError} (422 with causes; 500 when a range is full) leaving the allocators as
 * they were.
 */
export class ServiceAdmission {
  readonly ips: ClusterIpAllocator;
  readonly nodePorts: NodePortAllocator;

  constructor(ips: ClusterIpAllocator, nodePorts: NodePortAllocator) {
    this.ips = ips;
    this.nodePorts = nodePorts;
  }

  /** Defaults, allocates and validates a new Service. */
  create(obj: JsonObject, name: string): void {
    const spec = objectAt(obj, "spec") ?? {};
    obj.spec = spec;
    setDefaults(spec);
    normalizeClusterIPs(spec, undefined);
    if (!isJsonObject(obj.status)) obj.status = { loadBalancer: {} };
    const txn: Txn = { ips: [], ports: [], freeIps: [], freePorts: [] };
    try {
      this.#allocate(spec, undefined, name, txn);
      const errs = new FieldErrors();
      validateService(spec, errs);
      if (!errs.empty) throw invalid("Service", "", name, errs.causes);
    } catch (err) {
      this.#rollback(txn);
      throw err;
    }
  }

  /** Defaults, keeps what was allocated, allocates what is new and validates an updated Service. */
  update(next: JsonObject, old: JsonObject, name: string): void {
    const spec = objectAt(next, "spec") ?? {};
    next.spec = spec;
    const oldSpec = objectAt(old, "spec") ?? {};
    setDefaults(spec);
    patchAllocatedValues(spec, oldSpec);
    normalizeClusterIPs(spec, oldSpec);
    dropTypeDependentFields(spec, oldSpec);
    if (!isJsonObject(next.status)) next.status = { loadBalancer: {} };
    const txn: Txn = { ips: [], ports: [], freeIps: [], freePorts: [] };
    try {
      this.#allocate(spec, oldSpec, name, txn);
      const errs = new FieldErrors();
      validateClusterIPUpdate(spec, oldSpec, errs);
      validateService(spec, errs);
      if (!errs.empty) throw invalid("Service", "", name, errs.causes);
    } catch (err) {
      this.#rollback(txn);
      throw err;
    }
    for (const ip of txn.freeIps) this.ips.release(ip);
    for (const p of txn.freePorts) this.nodePorts.release(p);
  }

  /** Releases the ClusterIP and NodePorts of a deleted Service. */
  release(obj: JsonObject): void {
    const spec = objectAt(obj, "spec") ?? {};
    for (const ip of held(spec).ips) this.ips.release(ip);
    for (const p of held(spec).ports) this.nodePorts.release(p);
  }

  #rollback(txn: Txn): void {
    for (const ip of txn.ips) this.ips.release(ip);
    for (const p of txn.ports) this.nodePorts.release(p);
  }

  #allocate(spec: JsonObject, old: JsonObject | undefined, name: string, txn: Txn): void {
    const pre = new FieldErrors();
    validateClusterIPsRelated(spec, pre);
    if (!pre.empty) throw invalid("Service", "", name, pre.causes);
    this.#families(spec, name);
    const before = old === undefined ? { ips: [], ports: [] } : held(old);

    // ClusterIP: allocated when the Service starts needing one; a change is caught by validation.
    if (needsClusterIP(spec) && (old === undefined || !needsClusterIP(old) || before.ips.length === 0)) {
      const want = str(spec, "clusterIP");
      try {
        const ip = this.ips.allocate(want === "" ? undefined : want);
        txn.ips.push(ip);
        spec.clusterIP = ip;
        spec.clusterIPs = [ip];
      } catch (err) {
        throw allocationFailure(
          err,
          name,
          "spec.clusterIPs",
          goStrings(strings(spec, "clusterIPs")),
          `failed to allocate IP ${want}: `,
          "failed to allocate a serviceIP: ",
        );
      }
    }
    if (!needsClusterIP(spec)) txn.freeIps.push(...before.ips);

    // NodePorts: one per port number (TCP and UDP on one port may share it).
    const keep = new Set(before.ports);
    const wanted = new Set<number>();
    if (needsNodePorts(spec)) {
      const ports = portsOf(spec);
      ports.forEach((p, i) => {
        const n = num(p, "nodePort");
        if (n === 0 || wanted.has(n)) return;
        wanted.add(n);
        if (keep.has(n)) return;
        try {
          txn.ports.push(this.nodePorts.allocate(n));
        } catch (err) {
          throw allocationFailure(
            err,
            name,
            `spec.ports[${i}].nodePort`,
            n,
            "",
            "failed to allocate a nodePort: ",
          );
        }
      });
      for (const p of ports) {
        if (num(p, "nodePort") !== 0) continue;
        try {
          const n = this.nodePorts.allocate();
          txn.ports.push(n);
          wanted.add(n);
          p.nodePort = n;
        } catch (err) {
          throw allocationFailure(err, name, "spec.ports", 0, "", "failed to allocate a nodePort: ");
        }
      }
      spec.ports = ports;
    }
    if (needsHealthCheck(spec)) {
      const n = num(spec, "healthCheckNodePort");
      if (n === 0 || (!keep.has(n) && !wanted.has(n))) {
        try {
          const got = this.nodePorts.allocate(n === 0 ? undefined : n);
          txn.ports.push(got);
          spec.healthCheckNodePort = got;
        } catch (err) {
          throw allocationFailure(
            err,
            name,
            "spec.healthCheckNodePort",
            n,
            "",
            "failed to allocate a nodePort: ",
          );
        }
      }
      wanted.add(num(spec, "healthCheckNodePort"));
    }
    for (const p of before.ports) if (!wanted.has(p)) txn.freePorts.push(p);
  }

  /** initIPFamilyFields for a single-stack IPv4 cluster. */
  #families(spec: JsonObject, name: string): void {
    if (str(spec, "type") === "ExternalName") return;
    const errs = new FieldErrors();
    const selectorless = isHeadless(spec) && !hasSelector(spec);
    if (!isSet(spec, "ipFamilyPolicy"))
      spec.ipFamilyPolicy = selectorless ? "RequireDualStack" : "SingleStack";
    const policy = str(spec, "ipFamilyPolicy");
    let families = strings(spec, "ipFamilies");
    if (families.length === 0) {
      const fromIP = strings(spec, "clusterIPs")
        .filter((ip) => ip !== "None")
        .map((ip) => ipFamily(ip) ?? "IPv4");
      families = fromIP.length > 0 ? fromIP : ["IPv4"];
    }
    if (selectorless) {
      if (families.length < 2 && policy !== "SingleStack")
        families = [...families, families[0] === "IPv6" ? "IPv4" : "IPv6"];
      spec.ipFamilies = families;
      return;
    }
    if (policy === "RequireDualStack")
      errs.invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services");
    if (policy === "SingleStack" && families.length > 1)
      errs.invalid(
        "spec.ipFamilyPolicy",
        policy,
        "must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified",
      );
    if (policy === "PreferDualStack") families = families.slice(0, 1);
    families.forEach((f, i) => {
      if (f !== "IPv4") errs.invalid(`spec.ipFamilies[${i}]`, f, "not configured on this cluster");
    });
    if (!errs.empty) throw invalid("Service", "", name, errs.causes);
    spec.ipFamilies = families;
  }
}

/** The ClusterIPs and NodePorts a stored Service holds. */
function held(spec: JsonObject): { ips: string[]; ports: number[] } {
  const ips = needsClusterIP(spec)
    ? strings(spec, "clusterIPs").filter((ip) => ip !== "" && ip !== "None")
    : [];
  const ports = new Set<number>();
  if (needsNodePorts(spec))
    for (const p of portsOf(spec)) if (num(p, "nodePort") !== 0) ports.add(num(p, "nodePort"));
  if (needsHealthCheck(spec) && num(spec, "healthCheckNodePort") !== 0)
    ports.add(num(spec, "healthCheckNodePort"));
  return { ips, ports: [...ports] };
}

function allocationFailure(
  err: unknown,
  name: string,
  field: string,
  value: GoValue,
  prefix: string,
  fullPrefix: string,
): ApiError {
  if (!(err instanceof AllocationError))
    return err instanceof ApiError ? err : new ApiError(500, "InternalError", String(err));
  if (err.kind === "full")
    return new ApiError(500, "InternalError", `Internal error occurred: ${fullPrefix}${err.message}`, {});
  const errs = new FieldErrors().invalid(field, value, `${prefix}${err.message}`);
  return invalid("Service", "", name, errs.causes);
}
