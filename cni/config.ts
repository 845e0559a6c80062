/**
 * The network configuration skein-cni reads on stdin: decoding (code 6), version (code 1) and
 * validation (code 7). Accepts a single plugin configuration, the per-plugin form runtimes derive
 * from a conflist, and a whole conflist (its skein-cni entry is used). Key lookup falls back to a
 * case-insensitive match, because Go runtimes and plugins decode JSON case-insensitively and some
 * send `RuntimeConfig`, `IPs` or `Mac`.
 */
import { isAbsolute, normalize } from "node:path";
import { CONF_KEYS, DEFAULT_DATA_DIR, OVERLAY_OVERHEAD, PLUGIN_TYPE } from "../maps/cni-conflist.js";
import { DEFAULT_BPFFS_ROOT } from "../maps/pins.js";
import { isIPv4, parsePrefix, type Prefix } from "../maps/net.js";
import { CniError, ErrorCode } from "./errors.js";
import {
  SUPPORTED_VERSIONS,
  isSupportedVersion,
  parseResult,
  type CniResult,
  type CniVersion,
} from "./spec.js";

export { DEFAULT_DATA_DIR, OVERLAY_OVERHEAD, PLUGIN_TYPE };

/** An attachment as GC lists it. */
export interface Attachment {
  containerId: string;
  ifname: string;
}

/** What the runtime asked for through capabilities (runtimeConfig) or `args.cni`. */
export interface RuntimeRequests {
  /** Specific addresses requested (the `ips` capability), without prefix length. */
  ips: string[];
  /** A specific MAC for the container interface (the `mac` capability). */
  mac?: string;
}

/** A validated skein-cni configuration. */
export interface NetworkConfig {
  cniVersion: CniVersion;
  /** Network name: also the IPAM directory under dataDir. */
  name: string;
  type: string;
  /** The range addresses are allocated from. */
  podCidr: Prefix;
  bpffsRoot: string;
  /** Pod MTU; undefined means "uplink MTU minus OVERLAY_OVERHEAD", decided at ADD. */
  mtu: number | undefined;
  dataDir: string;
  dns?: Record<string, unknown>;
  requests: RuntimeRequests;
  prevResult?: CniResult;
  /** GC only: the attachments that stay. */
  validAttachments?: Attachment[];
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `o[key]`, or the value of the one key equal to `key` ignoring case. */
export function field(o: Json, key: string): unknown {
  if (Object.hasOwn(o, key)) return o[key];
  const lower = key.toLowerCase();
  const match = Object.keys(o).find((k) => k.toLowerCase() === lower);
  return match === undefined ? undefined : o[match];
}

function invalid(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.invalidConfig, msg, details);
}

/** Decodes stdin. Throws CniError 6 when it is not a JSON object. */
export function decodeConfig(bytes: string | Uint8Array): Json {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      ErrorCode.decodingFailure,
      "error decoding network configuration",
      err instanceof Error ? err.message : String(err),
    );
  }
  if (!isRecord(value))
    throw new CniError(
      ErrorCode.decodingFailure,
      "error decoding network configuration",
      "expected a JSON object",
    );
  return value;
}

/**
 * The configuration's cniVersion, if it is one we support. Throws CniError 6 when it is not a
 * string and 1 when it is missing (which the spec reads as 0.1.0) or unsupported.
 */
export function configVersion(raw: Json): CniVersion {
  const v = field(raw, "cniVersion");
  if (v !== undefined && typeof v !== "string")
    throw new CniError(
      ErrorCode.decodingFailure,
      "error decoding network configuration",
      "cniVersion must be a string",
    );
  const version = v === undefined || v === "" ? "0.1.0" : v;
  if (!isSupportedVersion(version))
    throw new CniError(
      ErrorCode.incompatibleVersion,
      "incompatible CNI versions",
      `config is "${version}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    );
  return version;
}

/** A conflist on stdin: its skein-cni entry, with name and cniVersion from the list. */
function selectPlugin(raw: Json): Json {
  const plugins = field(raw, "plugins");
  if (field(raw, "type") !== undefined || !Array.isArray(plugins)) return raw;
  const entry: unknown = (plugins as unknown[]).find((p) => isRecord(p) && field(p, "type") === PLUGIN_TYPE);
  if (!isRecord(entry)) throw invalid(`configuration list has no plugin of type ${PLUGIN_TYPE}`);
  const merged: Json = { ...entry };
  for (const key of ["cniVersion", "name"]) {
    const v = field(raw, key);
    if (v !== undefined) merged[key] = v;
  }
  return merged;
}

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function stringField(o: Json, key: string, fallback?: string): string {
  const v = field(o, key);
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw invalid(`missing ${key}`);
  }
  if (typeof v !== "string") throw invalid(`${key} must be a string`, `got ${JSON.stringify(v)}`);
  return v;
}

function absolutePath(o: Json, key: string, fallback: string): string {
  const v = stringField(o, key, fallback);
  if (!isAbsolute(v)) throw invalid(`${key} must be an absolute path`, v);
  return normalize(v).replace(/\/+$/, "") || "/";
}

function parsePodCidr(o: Json): Prefix {
  const text = stringField(o, CONF_KEYS.podCidr);
  let prefix: Prefix;
  try {
    prefix = parsePrefix(text);
  } catch (err) {
    throw invalid(`podCIDR is not an IPv4 CIDR`, err instanceof Error ? err.message : String(err));
  }
  if (!text.includes("/")) throw invalid("podCIDR needs a prefix length", text);
  if (prefix.length > 30)
    throw invalid(
      `network ${text} too small to allocate from`,
      "podCIDR needs a prefix length of 30 or less",
    );
  return prefix;
}

function parseMtu(o: Json): number | undefined {
  const v = field(o, CONF_KEYS.mtu);
  if (v === undefined || v === null || v === 0) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 68 || v > 65535)
    throw invalid("mtu must be an integer between 68 and 65535", `got ${JSON.stringify(v)}`);
  return v;
}

function addressOf(text: string, where: string): string {
  const ip = text.split("/")[0] ?? "";
  if (!isIPv4(ip)) throw invalid(`${where}: not an IPv4 address`, text);
  return ip;
}

/** runtimeConfig (`ips`, `mac` capabilities) and the `args.cni` convention. */
function parseRequests(o: Json): RuntimeRequests {
  const requests: RuntimeRequests = { ips: [] };
  const runtimeConfig = field(o, "runtimeConfig");
  if (runtimeConfig !== undefined && runtimeConfig !== null && !isRecord(runtimeConfig))
    throw invalid("runtimeConfig must be an object");
  const args = field(o, "args");
  if (args !== undefined && args !== null && !isRecord(args)) throw invalid("args must be an object");
  const argsCni = isRecord(args) ? field(args, "cni") : undefined;
  for (const source of [runtimeConfig, argsCni]) {
    if (!isRecord(source)) continue;
    const ips = field(source, "ips");
    if (ips !== undefined && ips !== null) {
      if (!Array.isArray(ips) || !ips.every((x) => typeof x === "string"))
        throw invalid("ips must be a list of strings", JSON.stringify(ips));
      for (const text of ips) requests.ips.push(addressOf(text, "ips"));
    }
    const mac = field(source, "mac");
    if (mac !== undefined && mac !== null && mac !== "") {
      if (typeof mac !== "string" || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac))
        throw invalid("mac is not a MAC address", JSON.stringify(mac));
      if ((Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) throw invalid("mac is a multicast address", mac);
      requests.mac = mac.toLowerCase();
    }
  }
  requests.ips = [...new Set(requests.ips)];
  return requests;
}

function parseAttachments(o: Json): Attachment[] | undefined {
  const list = field(o, "cni.dev/valid-attachments") ?? field(o, "cni.dev/attachments");
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw invalid("cni.dev/valid-attachments must be a list");
  return list.map((a) => {
    if (!isRecord(a)) throw invalid("cni.dev/valid-attachments entries must be objects", JSON.stringify(a));
    const containerId = field(a, "containerID");
    const ifname = field(a, "ifname");
    if (typeof containerId !== "string" || typeof ifname !== "string")
      throw invalid("cni.dev/valid-attachments entries need containerID and ifname", JSON.stringify(a));
    return { containerId, ifname };
  });
}

/**
 * Validates a decoded configuration. Throws CniError 1 (version), 6 (wrong JSON types where
 * decoding is concerned) or 7 (anything else invalid). Unknown keys are ignored.
 */
export function parseNetworkConfig(decoded: Json): NetworkConfig {
  const raw = selectPlugin(decoded);
  const cniVersion = configVersion(raw);
  const name = stringField(raw, "name");
  if (!namePattern.test(name)) throw invalid("invalid characters found in network name", name);
  const type = stringField(raw, "type");
  const capabilities = field(raw, "capabilities");
  if (capabilities !== undefined && capabilities !== null && !isRecord(capabilities))
    throw invalid("capabilities must be an object");
  const config: NetworkConfig = {
    cniVersion,
    name,
    type,
    podCidr: parsePodCidr(raw),
    bpffsRoot: absolutePath(raw, CONF_KEYS.bpffsRoot, DEFAULT_BPFFS_ROOT),
    mtu: parseMtu(raw),
    dataDir: absolutePath(raw, CONF_KEYS.dataDir, DEFAULT_DATA_DIR),
    requests: parseRequests(raw),
  };
  const dns = field(raw, "dns");
  if (isRecord(dns) && Object.keys(dns).length > 0) config.dns = dns;
  const prev = field(raw, "prevResult");
  if (prev !== undefined && prev !== null) {
    try {
      config.prevResult = parseResult(prev);
    } catch (err) {
      throw new CniError(
        ErrorCode.decodingFailure,
        "error decoding prevResult",
        err instanceof Error ? err.message : String(err),
      );
    }
  }
  const attachments = parseAttachments(raw);
  if (attachments !== undefined) config.validAttachments = attachments;
  return config;
}
