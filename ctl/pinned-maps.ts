/**
 * Every pinned map of a node as skeinctl shows it: a description (type, sizes, fill) for
 * `map list` and `status`, and a decoded dump through the maps/ codecs for `map dump`.
 */
import { MapType, RawMap, type MapInfo } from "../loader/index.js";
import { openOptional } from "./optional.js";
import { ConfigMap } from "../maps/config.js";
import { CONNTRACK_MAP, ConntrackMap } from "../maps/conntrack.js";
import { EndpointsMap } from "../maps/endpoints.js";
import { EVENTS_MAP } from "../maps/events.js";
import { reservedIdentityName } from "../maps/identities.js";
import { IpcacheMap } from "../maps/ipcache.js";
import { TypedMap, type MapCodec } from "../maps/codec.js";
import { lbAffinityCodec } from "../maps/lb-affinity.js";
import { lbBackendCodec } from "../maps/lb-backend.js";
import { lbFlowCodec } from "../maps/lb-flow.js";
import { lbMaglevCodec } from "../maps/lb-maglev.js";
import { lbRevnatCodec } from "../maps/lb-revnat.js";
import { lbSlotCodec } from "../maps/lb-slot.js";
import { lbSvcCodec } from "../maps/lb-svc.js";
import { MetricsMap, isDrop } from "../maps/metrics.js";
import { formatPrefix, parseIPv4 } from "../maps/net.js";
import { PolicyMap } from "../maps/policy.js";
import { MAP_ALIASES, PINNED_MAPS, pinPath, type PinnedMapName } from "../maps/pins.js";
import { CtlError } from "./cli.js";
import {
  configFlagNames,
  conntrackFlagNames,
  formatDuration,
  ipcacheFlagNames,
  monotonicNowNs,
  pressurePercent,
  protocolName,
} from "./describe.js";
import type { Column } from "./output.js";

/** bpftool's names are MapType's keys in lower case. */
const TYPE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(MapType).map(([name, type]) => [type, name.toLowerCase()]),
);

/** A kernel map type number as bpftool names it. */
export function mapTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `type_${type}`;
}

/** One pinned map as `map list` shows it. */
export interface MapDescription {
  name: PinnedMapName;
  path: string;
  /** False when nothing is pinned at `path`; the other fields are then null. */
  pinned: boolean;
  id: number | null;
  type: string | null;
  keySize: number | null;
  valueSize: number | null;
  /** Entries in use; arrays always hold `capacity`; null for the ring buffer (it has records, not entries). */
  entries: number | null;
  /** max_entries: entries, or bytes for the ring buffer. */
  capacity: number | null;
  /** entries / capacity in percent, for maps that fill up (hash, LRU, LPM); null otherwise. */
  pressurePercent: number | null;
}

const FIXED_SIZE = new Set<number>([MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.RINGBUF]);

function describeOpen(name: PinnedMapName, path: string, raw: RawMap): MapDescription {
  const info: MapInfo = raw.info;
  const fixed = FIXED_SIZE.has(info.type);
  const entries = info.type === MapType.RINGBUF ? null : fixed ? info.maxEntries : raw.count();
  return {
    name,
    path,
    pinned: true,
    id: info.id,
    type: mapTypeName(info.type),
    keySize: info.keySize,
    valueSize: info.valueSize,
    entries,
    capacity: info.maxEntries,
    pressurePercent: fixed || entries === null ? null : pressurePercent(entries, info.maxEntries),
  };
}

/** Describes every map Skein pins under `root`; missing pins are reported, not thrown. Throws SysError otherwise. */
export function describePinnedMaps(root: string): MapDescription[] {
  return PINNED_MAPS.map((name) => {
    const path = pinPath(root, name);
    const raw = openOptional(() => RawMap.openPinned(path));
    if (raw === undefined)
      return {
        name,
        path,
        pinned: false,
        id: null,
        type: null,
        keySize: null,
        valueSize: null,
        entries: null,
        capacity: null,
        pressurePercent: null,
      };
    try {
      return describeOpen(name, path, raw);
    } finally {
      raw.close();
    }
  });
}

/** Columns of `map list` (and the map part of `status`). */
export const MAP_COLUMNS: readonly Column<MapDescription>[] = [
  { header: "NAME", value: (m) => m.name },
  { header: "ID", value: (m) => m.id ?? "-" },
  { header: "TYPE", value: (m) => m.type ?? "not pinned" },
  { header: "KEY", value: (m) => m.keySize ?? "-" },
  { header: "VALUE", value: (m) => m.valueSize ?? "-" },
  { header: "ENTRIES", value: (m) => m.entries ?? "-" },
  {
    header: "CAPACITY",
    value: (m) => (m.capacity === null ? "-" : m.type === "ringbuf" ? `${m.capacity} B` : m.capacity),
  },
  {
    header: "PRESSURE",
    value: (m) => (m.pressurePercent === null ? "-" : `${m.pressurePercent.toFixed(1)}%`),
  },
];

/** The pinned map `name` refers to: `skn_ipcache` or just `ipcache` (`conntrack` too). Throws CtlError naming the choices. */
export function resolveMapName(name: string): PinnedMapName {
  const alias = MAP_ALIASES[name];
  if (alias !== undefined) return alias;
  const full = name.startsWith("skn_") ? name : `skn_${name}`;
  const found = PINNED_MAPS.find((m) => m === full);
  if (found === undefined)
    throw new CtlError(`no map ${JSON.stringify(name)}: Skein pins ${PINNED_MAPS.join(", ")}`);
  return found;
}

/** A decoded map: rows for JSON, columns for the table. */
export interface MapDump {
  name: PinnedMapName;
  rows: Record<string, unknown>[];
  columns: Column<Record<string, unknown>>[];
  /** A line for people under the table (what was left out, how to see it). */
  note?: string;
}

/** Context a dump may use to say more than the bytes: interface names in this network namespace. */
export interface DumpContext {
  ifnames: ReadonlyMap<number, string>;
  /** Include zero counters in the metrics dump. */
  all: boolean;
}

function col(header: string, key: string): Column<Record<string, unknown>> {
  return {
    header,
    value: (r) => {
      const v = r[key];
      if (v === null || v === undefined) return "-";
      if (Array.isArray(v)) return v.length === 0 ? "-" : v.join(",");
      return typeof v === "object" ? JSON.stringify(v) : (v as string | number | bigint | boolean);
    },
  };
}

function numberedIdentityText(id: number): string {
  const name = reservedIdentityName(id);
  return name === undefined ? String(id) : `${id} (${name})`;
}

function byIp(a: string, b: string): number {
  return parseIPv4(a) - parseIPv4(b);
}

function dumpEndpoints(root: string, dc: DumpContext): MapDump {
  using map = EndpointsMap.openPinned(root);
  const rows = [...map.entries()]
    .sort(([a], [b]) => byIp(a, b))
    .map(([ip, e]) => ({
      ip,
      ifindex: e.ifindex,
      ifname: dc.ifnames.get(e.ifindex) ?? null,
      flags: e.flags,
      mac: e.mac,
      hostMac: e.hostMac,
    }));
  return {
    name: "skn_endpoints",
    rows,
    columns: [
      col("IP", "ip"),
      col("IFINDEX", "ifindex"),
      col("IFNAME", "ifname"),
      col("MAC", "mac"),
      col("HOST-MAC", "hostMac"),
      col("FLAGS", "flags"),
    ],
  };
}

function dumpIpcache(root: string): MapDump {
  using map = IpcacheMap.openPinned(root);
  const rows = [...map.entries()]
    .sort(([a], [b]) => byIp(a.ip, b.ip) || a.length - b.length)
    .map(([p, e]) => ({
      prefix: formatPrefix(p),
      identity: e.identity,
      identityName: reservedIdentityName(e.identity) ?? null,
      tunnelIp: e.tunnelIp,
      cidrIdentity: e.cidrIdentity,
      flags: e.flags,
      flagNames: ipcacheFlagNames(e.flags),
    }));
  return {
    name: "skn_ipcache",
    rows,
    columns: [
      col("PREFIX", "prefix"),
      { header: "IDENTITY", value: (r) => numberedIdentityText(r.identity as number) },
      { header: "TUNNEL", value: (r) => (r.tunnelIp as string | null) ?? "- (local)" },
      {
        header: "CIDR-IDENTITY",
        value: (r) => ((r.cidrIdentity as number) === 0 ? "-" : (r.cidrIdentity as number)),
      },
      col("FLAGS", "flagNames"),
    ],
  };
}

function dumpPolicy(root: string): MapDump {
  using map = PolicyMap.openPinned(root);
  const rows = [...map.entries()].map(([k, e]) => ({
    endpointIp: k.endpointIp,
    direction: k.direction,
    peerIdentity: k.peerIp === undefined ? k.peerIdentity : null,
    peerIp: k.peerIp ?? null,
    protocol: k.protocol === undefined ? null : protocolName(k.protocol),
    port: k.port ?? null,
    portBits: k.portBits ?? null,
    ruleId: e.ruleId,
    flags: e.flags,
  }));
  rows.sort(
    (a, b) =>
      byIp(a.endpointIp, b.endpointIp) ||
      a.direction.localeCompare(b.direction) ||
      (a.peerIdentity ?? 0) - (b.peerIdentity ?? 0) ||
      (a.port ?? 0) - (b.port ?? 0),
  );
  return {
    name: "skn_policy",
    rows,
    columns: [
      col("ENDPOINT", "endpointIp"),
      col("DIRECTION", "direction"),
      {
        header: "PEER",
        value: (r) =>
          r.peerIp !== null
            ? `ip ${r.peerIp as string}`
            : (r.peerIdentity as number) === 0
              ? "any"
              : numberedIdentityText(r.peerIdentity as number),
      },
      { header: "PROTO", value: (r) => (r.protocol as string | null) ?? "any" },
      {
        header: "PORT",
        value: (r) => {
          const port = r.port as number | null;
          const bits = r.portBits as number | null;
          if (port === null) return "any";
          if (bits === 16 || bits === null) return port;
          return `${port}-${port + (1 << (16 - bits)) - 1}`;
        },
      },
      col("RULE", "ruleId"),
    ],
  };
}

function dumpConntrack(root: string): MapDump {
  using map = ConntrackMap.openPinned(root);
  const now = monotonicNowNs();
  const rows = [...map.entries()].map(([k, e]) => ({
    protocol: protocolName(k.proto),
    addrA: k.addrA,
    portA: k.portA,
    addrB: k.addrB,
    portB: k.portB,
    identityA: e.identityA,
    identityB: e.identityB,
    ageS: Number(now - e.createdNs) / 1e9,
    idleS: Number(now - e.lastSeenNs) / 1e9,
    flags: e.flags,
    flagNames: conntrackFlagNames(e.flags),
    ruleId: e.ruleId,
    tunnelIp: e.tunnelIp,
  }));
  rows.sort((a, b) => a.idleS - b.idleS);
  return {
    name: CONNTRACK_MAP,
    rows,
    columns: [
      col("PROTO", "protocol"),
      // ICMP flows are keyed by echo id, which both ends share: print it once.
      {
        header: "A",
        value: (r) =>
          r.protocol === "ICMP"
            ? `${r.addrA as string} id=${r.portA as number}`
            : `${r.addrA as string}:${r.portA as number}`,
      },
      {
        header: "B",
        value: (r) =>
          r.protocol === "ICMP" ? (r.addrB as string) : `${r.addrB as string}:${r.portB as number}`,
      },
      { header: "IDENTITY-A", value: (r) => numberedIdentityText(r.identityA as number) },
      { header: "IDENTITY-B", value: (r) => numberedIdentityText(r.identityB as number) },
      { header: "AGE", value: (r) => formatDuration(r.ageS as number) },
      { header: "IDLE", value: (r) => formatDuration(r.idleS as number) },
      col("FLAGS", "flagNames"),
      { header: "TUNNEL", value: (r) => (r.tunnelIp as string | null) ?? "-" },
      { header: "RULE", value: (r) => ((r.ruleId as number) === 0 ? "-" : (r.ruleId as number)) },
    ],
  };
}

function dumpMetrics(root: string, dc: DumpContext): MapDump {
  using map = MetricsMap.openPinned(root);
  const rows: Record<string, unknown>[] = map
    .counters()
    .filter((c) => dc.all || c.packets !== 0n)
    .map((c) => ({
      counter: c.reason,
      direction: c.direction,
      verdict: isDrop(c.reason) ? "drop" : "forward",
      packets: c.packets,
      bytes: c.bytes,
    }));
  for (const direction of ["ingress", "egress"] as const) {
    const n = map.policyAllowed(direction);
    if (dc.all || n !== 0n)
      rows.push({ counter: "policy_allowed_flows", direction, verdict: "allow", packets: n, bytes: null });
  }
  const lost = map.eventsLost();
  if (dc.all || lost !== 0n)
    rows.push({ counter: "events_lost", direction: null, verdict: null, packets: lost, bytes: null });
  return {
    name: "skn_metrics",
    rows,
    columns: [
      col("COUNTER", "counter"),
      col("DIRECTION", "direction"),
      col("VERDICT", "verdict"),
      col("PACKETS", "packets"),
      col("BYTES", "bytes"),
    ],
    ...(dc.all ? {} : { note: "summed over CPUs; zero counters left out: --all shows them" }),
  };
}

function dumpConfig(root: string, dc: DumpContext): MapDump {
  using map = ConfigMap.openPinned(root);
  const c = map.read();
  return {
    name: "skn_config",
    rows: [
      {
        vxlanIfindex: c.vxlanIfindex,
        vxlanIfname: dc.ifnames.get(c.vxlanIfindex) ?? null,
        nodeIp: c.nodeIp,
        vxlanMac: c.vxlanMac,
        vxlanPort: c.vxlanPort,
        uplinkIfindex: c.uplinkIfindex,
        uplinkIfname: c.uplinkIfindex === 0 ? null : (dc.ifnames.get(c.uplinkIfindex) ?? null),
        flags: c.flags,
        flagNames: configFlagNames(c.flags),
      },
    ],
    columns: [
      col("VXLAN-IFINDEX", "vxlanIfindex"),
      col("VXLAN-IFNAME", "vxlanIfname"),
      col("NODE-IP", "nodeIp"),
      col("VXLAN-MAC", "vxlanMac"),
      col("PORT", "vxlanPort"),
      col("UPLINK", "uplinkIfname"),
      col("FLAGS", "flagNames"),
    ],
  };
}

const LB_CODECS = {
  skn_lb_svc: lbSvcCodec,
  skn_lb_slot: lbSlotCodec,
  skn_lb_backend: lbBackendCodec,
  skn_lb_revnat: lbRevnatCodec,
  skn_lb_affinity: lbAffinityCodec,
  skn_lb_maglev: lbMaglevCodec,
  skn_lb_flow: lbFlowCodec,
} as const;

/** The Service maps decoded field by field (key, then value); `skeinctl service list` joins them. */
function dumpLb(root: string, name: keyof typeof LB_CODECS): MapDump {
  const codec = LB_CODECS[name] as MapCodec<unknown, unknown>;
  using map = new TypedMap(RawMap.openPinned(pinPath(root, name)), codec);
  // bigints (timestamps) as decimal strings, so the rows are plain JSON.
  const plain = (x: unknown): unknown =>
    JSON.parse(JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
  const rows = [...map.entries()].map(([k, v]) => ({ key: plain(k), value: plain(v) }));
  return { name, rows, columns: [col("KEY", "key"), col("VALUE", "value")] };
}

/**
 * Reads and decodes one pinned map. Throws SysError (ENOENT: not pinned), or CtlError for the ring
 * buffer, whose records are consumed (`skeinctl monitor`), not dumped.
 */
export function dumpPinnedMap(root: string, name: PinnedMapName, dc: DumpContext): MapDump {
  switch (name) {
    case "skn_endpoints":
      return dumpEndpoints(root, dc);
    case "skn_ipcache":
      return dumpIpcache(root);
    case "skn_policy":
      return dumpPolicy(root);
    case CONNTRACK_MAP:
      return dumpConntrack(root);
    case "skn_metrics":
      return dumpMetrics(root, dc);
    case "skn_config":
      return dumpConfig(root, dc);
    case "skn_lb_svc":
    case "skn_lb_slot":
    case "skn_lb_backend":
    case "skn_lb_revnat":
    case "skn_lb_affinity":
    case "skn_lb_maglev":
    case "skn_lb_flow":
      return dumpLb(root, name);
    case "skn_events": {
      // Opening it first turns a missing datapath into the usual fix message.
      RawMap.openPinned(pinPath(root, EVENTS_MAP)).close();
      throw new CtlError(
        `${EVENTS_MAP} is a ring buffer: its records are consumed, not stored, so there is nothing to dump; ` +
          `follow them live with 'skeinctl monitor --bpffs-root ${root}'`,
      );
    }
  }
}
