/**
 * The CNI specification as far as skein-cni speaks it: supported versions, the version-neutral
 * result Skein builds, and how that result is written for each version (0.3.x/0.4.0 carry
 * `"version": "4"` in ips; 1.x drop it; 1.1.0 adds interface `mtu` and route `scope`).
 */

/** Spec versions this plugin supports, oldest first. */
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
/** A supported spec version. */
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The newest version: used in answers when the input names none we know. */
export const CURRENT_VERSION: CniVersion = "1.1.0";

/** Whether the plugin speaks `v`. */
export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares two dotted versions numerically (`0.4.0` < `1.0.0`); non-numeric parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(".").map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The VERSION answer. */
export interface VersionResult {
  cniVersion: string;
  supportedVersions: string[];
}

/** The VERSION answer for a request in `requested` (whatever stdin said, if anything). */
export function versionResult(requested: string | undefined): VersionResult {
  // The spec answers with the version the runtime asked in; one we do not know gets ours
  // (libcni reads cniVersion "0.1.0"/"" as "legacy plugin", so never echo those).
  const cniVersion = requested !== undefined && isSupportedVersion(requested) ? requested : CURRENT_VERSION;
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** An interface entry of a result. */
export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** Netns path for interfaces inside the container; absent for host interfaces. */
  sandbox?: string;
}

/** An address entry of a result. */
export interface ResultIp {
  /** CIDR notation. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

/** A route entry of a result (1.1.0 fields optional). */
export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  /** 0 global, 253 link, 254 host. */
  scope?: number;
}

/** A CNI result, independent of the version it is written in. */
export interface CniResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns?: Record<string, unknown>;
}

/** Route scope "link" as results write it. */
export const SCOPE_LINK = 253;

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Writes a result as `version` specifies it. The input is not modified. */
export function formatResult(result: CniResult, version: CniVersion): Record<string, unknown> {
  const v1 = compareVersions(version, "1.0.0") >= 0;
  const v11 = compareVersions(version, "1.1.0") >= 0;
  const interfaces = result.interfaces.map((i) =>
    pick(i, v11 ? (["name", "mac", "mtu", "sandbox"] as const) : (["name", "mac", "sandbox"] as const)),
  );
  const ips = result.ips.map((ip) => ({
    ...(v1 ? {} : { version: ip.address.includes(":") ? "6" : "4" }),
    ...pick(ip, ["interface", "address", "gateway"] as const),
  }));
  const routes = result.routes.map((r) =>
    pick(
      r,
      v11
        ? (["dst", "gw", "mtu", "advmss", "priority", "table", "scope"] as const)
        : (["dst", "gw"] as const),
    ),
  );
  const out: Record<string, unknown> = { cniVersion: version, interfaces, ips, routes };
  out.dns = result.dns ?? {};
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function optionalNumber(o: Record<string, unknown>, key: string): number | undefined {
  const v = o[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/**
 * Reads a result written in any supported version (a `prevResult`). Lenient: fields of the wrong
 * type are dropped. Throws TypeError when `value` is not an object at all.
 */
export function parseResult(value: unknown): CniResult {
  if (!isRecord(value)) throw new TypeError("a CNI result must be a JSON object");
  const list = (key: string): Record<string, unknown>[] => {
    const v = value[key];
    return Array.isArray(v) ? v.filter(isRecord) : [];
  };
  const interfaces: ResultInterface[] = list("interfaces").map((i) => {
    const out: ResultInterface = { name: optionalString(i, "name") ?? "" };
    const mac = optionalString(i, "mac");
    const mtu = optionalNumber(i, "mtu");
    const sandbox = optionalString(i, "sandbox");
    if (mac !== undefined) out.mac = mac;
    if (mtu !== undefined) out.mtu = mtu;
    if (sandbox !== undefined) out.sandbox = sandbox;
    return out;
  });
  const ips: ResultIp[] = list("ips").flatMap((ip) => {
    const address = optionalString(ip, "address");
    if (address === undefined) return [];
    const out: ResultIp = { address };
    const gateway = optionalString(ip, "gateway");
    const index = optionalNumber(ip, "interface");
    if (gateway !== undefined) out.gateway = gateway;
    if (index !== undefined) out.interface = index;
    return [out];
  });
  const routes: ResultRoute[] = list("routes").flatMap((r) => {
    const dst = optionalString(r, "dst");
    if (dst === undefined) return [];
    const out: ResultRoute = { dst };
    const gw = optionalString(r, "gw");
    if (gw !== undefined) out.gw = gw;
    for (const key of ["mtu", "advmss", "priority", "table", "scope"] as const) {
      const n = optionalNumber(r, key);
      if (n !== undefined) out[key] = n;
    }
    return [out];
  });
  const result: CniResult = { interfaces, ips, routes };
  if (isRecord(value.dns) && Object.keys(value.dns).length > 0) result.dns = value.dns;
  return result;
}

/**
 * Appends `ours` to a result a previous plugin in the chain produced, renumbering our interface
 * indexes (the spec: a plugin given prevResult outputs it with its own changes included).
 */
export function mergeResults(previous: CniResult | undefined, ours: CniResult): CniResult {
  if (previous === undefined) return ours;
  const offset = previous.interfaces.length;
  const merged: CniResult = {
    interfaces: [...previous.interfaces, ...ours.interfaces],
    ips: [
      ...previous.ips,
      ...ours.ips.map((ip) =>
        ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset },
      ),
    ],
    routes: [...previous.routes, ...ours.routes],
  };
  const dns = ours.dns ?? previous.dns;
  if (dns !== undefined) merged.dns = dns;
  return merged;
}
