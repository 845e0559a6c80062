/**
 * BGP settings of native routing (`bgp:` in the agent's config file, or the --bgp-* flags): this
 * node's ASN, the routers it peers with, and whether the nodes form a full iBGP mesh. Pure parsing
 * and validation: a bad value throws a BgpSettingsError naming the field, before anything touches
 * the node, so a refused start leaves the running datapath and BIRD as they were.
 */
import { parseIPv4 } from "../../maps/net.js";

/** A router this node peers with (a top-of-rack router, a route reflector). */
export interface BgpPeer {
  /** IPv4 address of the peer. */
  address: string;
  /** The peer's ASN: the node's own for iBGP (route reflector), another for eBGP. */
  asn: number;
  /** TCP MD5 signature key (RFC 2385), the same on both ends. */
  password?: string;
  /** The peer's BGP port (default 179). */
  port?: number;
}

export interface BgpSettings {
  /** This node's ASN (4-byte: 1..4294967295, not 23456). */
  asn: number;
  peers: BgpPeer[];
  /** Full iBGP mesh: every node peers with every other node of the Node list, in `asn`. */
  mesh: boolean;
}

/** A refused BGP setting; `field` is its name in the config file (`bgp.peers[1].asn`). */
export class BgpSettingsError extends RangeError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "BgpSettingsError";
    this.field = field;
  }
}

export const MAX_ASN = 4294967295;
/** AS_TRANS (RFC 6793): stands in for 4-byte ASNs towards 2-byte speakers; no AS's own number. */
export const AS_TRANS = 23456;
/** TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN). */
const MAX_PASSWORD_BYTES = 80;

/** `value` as an ASN: an integer or its decimal text in 1..4294967295, not AS_TRANS. */
export function parseAsn(value: unknown, field: string): number {
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^\d{1,10}$/.test(value.trim())) n = Number(value.trim());
  else throw new BgpSettingsError(field, `expected an ASN (integer 1..${MAX_ASN}), got ${show(value)}`);
  if (!Number.isInteger(n) || n < 1 || n > MAX_ASN)
    throw new BgpSettingsError(field, `ASN out of range (1..${MAX_ASN}): ${show(value)}`);
  if (n === AS_TRANS)
    throw new BgpSettingsError(field, `ASN ${AS_TRANS} is AS_TRANS (RFC 6793), not usable as an AS number`);
  return n;
}

/**
 * `value` as a peer address: dotted-quad IPv4, unicast, not 0.0.0.0, loopback, multicast or
 * broadcast (BIRD would accept some of them and never connect).
 */
export function parsePeerAddress(value: unknown, field: string): string {
  if (typeof value !== "string")
    throw new BgpSettingsError(field, `expected an IPv4 address, got ${show(value)}`);
  let n: number;
  try {
    n = parseIPv4(value);
  } catch {
    throw new BgpSettingsError(field, `unparsable peer address ${show(value)} (expected IPv4 a.b.c.d)`);
  }
  // Leading zeros read as octal by some tools and as decimal by others: refuse the ambiguity.
  if (value.split(".").some((o) => o.length > 1 && o.startsWith("0")))
    throw new BgpSettingsError(field, `peer address ${show(value)} has leading zeros`);
  const first = n >>> 24;
  if (n === 0 || first === 0)
    throw new BgpSettingsError(field, `peer address ${value} is not a host address`);
  if (first === 127) throw new BgpSettingsError(field, `peer address ${value} is a loopback address`);
  if (first >= 224) throw new BgpSettingsError(field, `peer address ${value} is multicast or reserved`);
  return value;
}

function parsePort(value: unknown, field: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new BgpSettingsError(field, `expected a TCP port 1..65535, got ${show(value)}`);
  return n;
}

function parsePassword(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "")
    throw new BgpSettingsError(field, "expected a non-empty string");
  // It goes into BIRD's configuration between double quotes.
  if (!/^[\x20-\x7e]*$/.test(value) || /["\\]/.test(value))
    throw new BgpSettingsError(field, 'printable ASCII only, without " or \\');
  if (value.length > MAX_PASSWORD_BYTES)
    throw new BgpSettingsError(field, `at most ${MAX_PASSWORD_BYTES} characters (TCP MD5 key)`);
  return value;
}

function parseBool(value: unknown, field: string): boolean {
  if (value === true || value === "true") return true;
  if (value === false || value === "false") return false;
  throw new BgpSettingsError(field, `expected true or false, got ${show(value)}`);
}

const PEER_KEYS = new Set(["address", "asn", "password", "port"]);
const BGP_KEYS = new Set(["asn", "peers", "mesh"]);

/** One peer object of `bgp.peers`. */
export function parsePeer(value: unknown, field: string): BgpPeer {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new BgpSettingsError(field, `expected {address, asn, password?, port?}, got ${show(value)}`);
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!PEER_KEYS.has(k))
      throw new BgpSettingsError(`${field}.${k}`, `unknown key (expected address, asn, password, port)`);
  const peer: BgpPeer = {
    address: parsePeerAddress(o.address, `${field}.address`),
    asn: parseAsn(o.asn, `${field}.asn`),
  };
  if (o.password !== undefined && o.password !== null)
    peer.password = parsePassword(o.password, `${field}.password`);
  if (o.port !== undefined && o.port !== null) peer.port = parsePort(o.port, `${field}.port`);
  return peer;
}

/**
 * The `--bgp-peers` flag: comma-separated `ASN@ADDRESS[:PORT]` (`65000@192.0.2.1,65000@192.0.2.2:1179`).
 * Passwords only in the config file (a flag shows in `ps`).
 */
export function parsePeerList(text: string, field = "--bgp-peers"): BgpPeer[] {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return items.map((item, i) => {
    const m = /^([^@]+)@([^:]+)(?::(.*))?$/.exec(item);
    const f = `${field}[${i}]`;
    if (m === null) throw new BgpSettingsError(f, `expected ASN@ADDRESS[:PORT], got ${show(item)}`);
    const peer: BgpPeer = {
      address: parsePeerAddress(m[2], `${f}.address`),
      asn: parseAsn(m[1], `${f}.asn`),
    };
    if (m[3] !== undefined) peer.port = parsePort(m[3], `${f}.port`);
    return peer;
  });
}

/** What the config file's `bgp:` object and the flags say; a flag, when given, wins per field. */
export interface BgpInput {
  /** The config file's `bgp` value (undefined when absent). */
  file?: unknown;
  flags?: { asn?: string | undefined; peers?: string | undefined; mesh?: string | boolean | undefined };
}

/**
 * The BGP settings, or null when BGP is not configured (no ASN, no peers, no mesh). Throws
 * BgpSettingsError naming the field: a bad ASN, address, port, password or unknown key; peers or
 * mesh without an ASN; the same peer address twice.
 */
export function parseBgpSettings({ file, flags = {} }: BgpInput): BgpSettings | null {
  let o: Record<string, unknown> = {};
  if (file !== undefined && file !== null) {
    if (typeof file !== "object" || Array.isArray(file))
      throw new BgpSettingsError("bgp", `expected an object {asn, peers, mesh}, got ${show(file)}`);
    o = file as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!BGP_KEYS.has(k)) throw new BgpSettingsError(`bgp.${k}`, "unknown key (expected asn, peers, mesh)");
  }
  const asnValue = flags.asn ?? o.asn;
  let peers: BgpPeer[] = [];
  if (flags.peers !== undefined) peers = parsePeerList(flags.peers);
  else if (o.peers !== undefined && o.peers !== null) {
    if (!Array.isArray(o.peers))
      throw new BgpSettingsError("bgp.peers", `expected a list of {address, asn}, got ${show(o.peers)}`);
    peers = o.peers.map((p, i) => parsePeer(p, `bgp.peers[${i}]`));
  }
  const meshValue = flags.mesh ?? o.mesh;
  const mesh =
    meshValue === undefined || meshValue === null
      ? false
      : parseBool(meshValue, flags.mesh !== undefined ? "--bgp-mesh" : "bgp.mesh");
  const asnField = flags.asn !== undefined ? "--bgp-asn" : "bgp.asn";
  if (asnValue === undefined || asnValue === null || asnValue === "") {
    if (peers.length > 0 || mesh)
      throw new BgpSettingsError(asnField, "required when bgp.peers or bgp.mesh is set");
    return null;
  }
  const asn = parseAsn(asnValue, asnField);
  const seen = new Map<string, number>();
  peers.forEach((p, i) => {
    const prev = seen.get(p.address);
    if (prev !== undefined)
      throw new BgpSettingsError(`bgp.peers[${i}].address`, `${p.address} is also bgp.peers[${prev}]`);
    seen.set(p.address, i);
  });
  if (peers.length === 0 && !mesh)
    throw new BgpSettingsError("bgp.peers", "no peer and no mesh: give bgp.peers, bgp.mesh: true, or both");
  return { asn, peers, mesh };
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "function" || typeof v === "symbol" || typeof v === "bigint") return typeof v;
  try {
    return JSON.stringify(v);
  } catch {
    return "an unprintable value";
  }
}
