/**
 * The desired Service maps: Services and EndpointSlices (trimmed to the views below) and this node
 * → every entry of skn_lb_svc, skn_lb_slot, skn_lb_backend, skn_lb_revnat and skn_lb_maglev.
 * Pure: the agent (maps/lb-apply.ts writes the result) and the simulator share it.
 *
 * Rules, as kube-proxy applies them:
 * - a backend is an endpoint address with the port the EndpointSlice names like the Service port
 *   (the slice holds the resolved targetPort) and the Service port's protocol;
 * - usable: the ready endpoints (ready unset counts as ready); only when none is ready, the serving
 *   and terminating ones (ProxyTerminatingEndpoints);
 * - internalTrafficPolicy Local (ClusterIP frontends) and externalTrafficPolicy Local (NodePort,
 *   externalIP, LoadBalancer frontends): only this node's endpoints, chosen by the same rule among
 *   them; none ⇒ the frontend rejects;
 * - a frontend with no usable backend stays in the map with count 0: the datapath rejects;
 * - terminating endpoints not in use (a ready one exists) stay in skn_lb_backend, flagged, in no
 *   slot: established TCP connections to them drain, other flows move to a usable backend.
 *
 * Ids: svc_id per frontend and backend_id per backend (address, port, protocol) come from an
 * LbIdAllocator that the caller keeps across builds: an unchanged frontend or backend keeps its id,
 * so the agent's diff touches only what changed. Freed ids are not reused until the 32-bit space
 * wraps: a flow the datapath remembers by backend id must never land on a newcomer that took it.
 */
import type { LbMapsDesired } from "../maps/lb-apply.js";
import type { LbBackendEntry } from "../maps/lb-backend.js";
import { LbBackendFlag } from "../maps/lb-backend.js";
import { MAGLEV_M, type LbMaglevEntry } from "../maps/lb-maglev.js";
import type { LbRevnatEntry } from "../maps/lb-revnat.js";
import type { LbSlotEntry, LbSlotKey } from "../maps/lb-slot.js";
import { lbSlotKeyString } from "../maps/lb-slot.js";
import {
  LbProto,
  LbSvcFlag,
  lbSvcKeyString,
  type LbProtoNumber,
  type LbSvcEntry,
  type LbSvcKey,
} from "../maps/lb-svc.js";
import { isIPv4, parseIPv4 } from "../maps/net.js";

/** Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10800;

export type ServiceProtocol = "TCP" | "UDP" | "SCTP";

/** A Service port (v1 ServicePort). */
export interface ServicePortView {
  /** Required by the API when a Service has several ports; "" or absent when it has one. */
  name?: string;
  port: number;
  protocol?: ServiceProtocol;
  nodePort?: number;
  /** Informational: the EndpointSlice carries the resolved port. */
  targetPort?: number | string;
}

/** What the builder needs of a v1 Service. */
export interface ServiceView {
  namespace: string;
  name: string;
  type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
  /** spec.clusterIPs (or [spec.clusterIP]); "None" (headless) and IPv6 entries are skipped. */
  clusterIPs?: readonly string[];
  ports?: readonly ServicePortView[];
  externalIPs?: readonly string[];
  /** status.loadBalancer.ingress[].ip */
  loadBalancerIPs?: readonly string[];
  sessionAffinity?: "None" | "ClientIP";
  /** spec.sessionAffinityConfig.clientIP.timeoutSeconds */
  affinityTimeoutS?: number;
  externalTrafficPolicy?: "Cluster" | "Local";
  internalTrafficPolicy?: "Cluster" | "Local";
}

/** One endpoint of an EndpointSlice (discovery.k8s.io/v1). */
export interface EndpointView {
  addresses: readonly string[];
  /** conditions.ready; unset means ready. */
  ready?: boolean;
  /** conditions.serving; unset means the same as ready. */
  serving?: boolean;
  /** conditions.terminating; unset means false. */
  terminating?: boolean;
  nodeName?: string;
}

/** What the builder needs of an EndpointSlice. */
export interface EndpointSliceView {
  namespace: string;
  /** The kubernetes.io/service-name label. */
  serviceName: string;
  /** Only IPv4 slices are used. */
  addressType?: "IPv4" | "IPv6" | "FQDN";
  endpoints: readonly EndpointView[];
  ports?: readonly { name?: string; port?: number; protocol?: ServiceProtocol }[];
}

/** This node. */
export interface LbNodeView {
  nodeName: string;
  /** Addresses NodePorts answer on (the node's InternalIP, ExternalIP…). */
  nodeAddresses: readonly string[];
}

export interface LbInputs {
  node: LbNodeView;
  services: readonly ServiceView[];
  endpointSlices: readonly EndpointSliceView[];
}

/** Which kind of frontend an entry is. */
export type FrontendKind = "ClusterIP" | "NodePort" | "ExternalIP" | "LoadBalancer";

/** Where a frontend comes from, for `skeinctl service list` and metrics. */
export interface FrontendOrigin {
  namespace: string;
  name: string;
  portName: string;
  kind: FrontendKind;
  key: LbSvcKey;
  svcId: number;
  /** Backend ids in slot order. */
  backendIds: readonly number[];
}

type Entries<K, V> = Map<string, { key: K; entry: V }>;

/** The desired content of every Service map the agent writes (skn_lb_affinity and skn_lb_flow are
 * the datapath's own). Maps are keyed by the maps/ modules' key strings: hand it to
 * maps/lb-apply.ts's LbMapsWriter as is. */
export interface LbDesired extends LbMapsDesired {
  svc: Entries<LbSvcKey, LbSvcEntry>;
  slot: Entries<LbSlotKey, LbSlotEntry>;
  backend: Entries<number, LbBackendEntry>;
  revnat: Entries<number, LbRevnatEntry>;
  maglev: Entries<number, LbMaglevEntry>;
  /** svc_id → origin. */
  origins: Map<number, FrontendOrigin>;
  /** Inputs left out, with the reason (a frontend claimed twice, an SCTP port change…). */
  problems: string[];
}

/** The string an LbIdAllocator keys a backend by: `10.244.1.5:8080/6`. */
export function backendKeyString(addr: string, port: number, proto: number): string {
  return `${addr}:${port}/${proto}`;
}

const MAX_ID = 0xffffffff;

/** Hands out ids from 1, monotonically; see the module comment. */
class IdSpace {
  readonly ids = new Map<string, number>();
  readonly #used = new Set<number>();
  #next: number;

  constructor(next = 1) {
    this.#next = next;
  }

  get(key: string): number {
    const have = this.ids.get(key);
    if (have !== undefined) return have;
    if (this.#used.size >= MAX_ID) throw new RangeError("every 32-bit id is in use");
    while (this.#used.has(this.#next) || this.#next === 0)
      this.#next = this.#next >= MAX_ID ? 1 : this.#next + 1;
    const id = this.#next;
    this.#next = id >= MAX_ID ? 1 : id + 1;
    this.ids.set(key, id);
    this.#used.add(id);
    return id;
  }

  adopt(key: string, id: number): void {
    if (!Number.isInteger(id) || id < 1 || id > MAX_ID) return;
    const other = this.ids.get(key);
    if (other !== undefined || this.#used.has(id)) return;
    this.ids.set(key, id);
    this.#used.add(id);
    if (id >= this.#next) this.#next = id >= MAX_ID ? 1 : id + 1;
  }

  /** Forgets every key not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [k, id] of this.ids)
      if (!keep.has(k)) {
        this.ids.delete(k);
        this.#used.delete(id);
      }
  }

  get next(): number {
    return this.#next;
  }
}

/**
 * svc_id and backend_id allocation that outlives builds. The agent keeps one per node; after a
 * restart it adopts the ids already in the pinned maps (`adopt`), so established flows keep their
 * meaning. Not thread-safe (nothing in Node is).
 */
export class LbIdAllocator {
  readonly #svc = new IdSpace();
  readonly #backend = new IdSpace();

  /** The id of frontend `key`, allocated if new. */
  svcId(key: LbSvcKey): number {
    return this.#svc.get(lbSvcKeyString(key));
  }

  /** The id of backend (addr, port, proto), allocated if new. */
  backendId(addr: string, port: number, proto: number): number {
    return this.#backend.get(backendKeyString(addr, port, proto));
  }

  /** Takes over ids found in the pinned maps (skn_lb_svc, skn_lb_backend); conflicting ones are skipped. */
  adopt(
    frontends: Iterable<readonly [LbSvcKey, { svcId: number }]>,
    backends: Iterable<readonly [number, { addr: string; port: number; proto: number }]>,
  ): void {
    for (const [k, v] of frontends) this.#svc.adopt(lbSvcKeyString(k), v.svcId);
    for (const [id, b] of backends) this.#backend.adopt(backendKeyString(b.addr, b.port, b.proto), id);
  }

  /** Releases the ids of frontends and backends not in the sets (key strings). */
  retain(frontendKeys: ReadonlySet<string>, backendKeys: ReadonlySet<string>): void {
    this.#svc.retain(frontendKeys);
    this.#backend.retain(backendKeys);
  }

  get frontendCount(): number {
    return this.#svc.ids.size;
  }

  get backendCount(): number {
    return this.#backend.ids.size;
  }
}

const PROTO: Record<ServiceProtocol, LbProtoNumber> = {
  TCP: LbProto.tcp,
  UDP: LbProto.udp,
  SCTP: LbProto.sctp,
};

interface Candidate {
  addr: string;
  port: number;
  local: boolean;
  terminating: boolean;
}

/** kube-proxy's choice: ready endpoints, or else the serving terminating ones. Sorted by address, port. */
function usable(all: readonly (Candidate & { ready: boolean; serving: boolean })[]): Candidate[] {
  const ready = all.filter((c) => c.ready);
  const chosen = ready.length > 0 ? ready : all.filter((c) => c.serving && c.terminating);
  return chosen
    .map((c) => ({ addr: c.addr, port: c.port, local: c.local, terminating: !c.ready }))
    .sort((a, b) => parseIPv4(a.addr) - parseIPv4(b.addr) || a.port - b.port);
}

/**
 * One candidate per address and port, whatever the slices repeat: ready, serving or terminating if
 * any copy says so, local if any copy names this node (an address lives on one node; a slice that
 * says otherwise must not make the same backend local for one frontend and remote for another).
 */
function merge(
  all: readonly (Candidate & { ready: boolean; serving: boolean })[],
): (Candidate & { ready: boolean; serving: boolean })[] {
  const by = new Map<string, Candidate & { ready: boolean; serving: boolean }>();
  for (const c of all) {
    const k = `${c.addr}:${c.port}`;
    const have = by.get(k);
    if (have === undefined) by.set(k, { ...c });
    else {
      have.ready ||= c.ready;
      have.serving ||= c.serving;
      have.terminating ||= c.terminating;
      have.local ||= c.local;
    }
  }
  return [...by.values()];
}

/** 32-bit FNV-1a of `text` after `seed`: deterministic everywhere (the same table on every node). */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4) of `backends` (address:port
 * strings with their ids): each backend walks its own permutation of the M slots (offset and skip
 * from two hashes of its address) and backends take turns claiming their next free slot. Input order
 * does not matter (sorted here), so every node computes the same table for the same set.
 */
export function maglevTable(backends: readonly { name: string; id: number }[], m = MAGLEV_M): number[] {
  const sorted = [...backends].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id));
  const table = new Array<number>(m).fill(0);
  if (sorted.length === 0) return table;
  const walkers = sorted.map((b) => ({
    id: b.id,
    offset: fnv1a(b.name, 0x5e1c) % m,
    skip: (fnv1a(b.name, 0x1ce5) % (m - 1)) + 1,
    next: 0,
  }));
  let filled = 0;
  for (;;) {
    for (const w of walkers) {
      let c = (w.offset + w.next * w.skip) % m;
      while (table[c] !== 0) {
        w.next++;
        c = (w.offset + w.next * w.skip) % m;
      }
      table[c] = w.id;
      w.next++;
      if (++filled === m) return table;
    }
  }
}

function ipv4s(list: readonly string[] | undefined): string[] {
  return [...new Set((list ?? []).filter((a) => a !== "None" && isIPv4(a)))];
}

function isPort(n: number | undefined): n is number {
  return n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Builds the desired Service maps. Never throws for bad input: what cannot be used is left out and
 * named in `problems`. Releases the allocator's ids of frontends and backends no longer built.
 */
export function buildLb(inputs: LbInputs, alloc: LbIdAllocator): LbDesired {
  const out: LbDesired = {
    svc: new Map(),
    slot: new Map(),
    backend: new Map(),
    revnat: new Map(),
    maglev: new Map(),
    origins: new Map(),
    problems: [],
  };
  const nodeName = inputs.node.nodeName;
  const nodeAddrs = ipv4s(inputs.node.nodeAddresses);
  const slicesBySvc = new Map<string, EndpointSliceView[]>();
  for (const s of inputs.endpointSlices) {
    if (s.addressType !== undefined && s.addressType !== "IPv4") continue;
    const k = `${s.namespace}/${s.serviceName}`;
    const list = slicesBySvc.get(k) ?? [];
    list.push(s);
    slicesBySvc.set(k, list);
  }
  // A frontend claimed by two Services goes to the first by namespace/name, as the API would
  // have refused the second ClusterIP anyway; externalIPs can genuinely collide.
  const services = [...inputs.services].sort((a, b) =>
    a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1,
  );

  for (const svc of services) {
    if (svc.type === "ExternalName") continue;
    const id = `${svc.namespace}/${svc.name}`;
    const slices = slicesBySvc.get(id) ?? [];
    const flagsBase = svc.sessionAffinity === "ClientIP" ? LbSvcFlag.affinity : 0;
    const timeout = flagsBase !== 0 ? (svc.affinityTimeoutS ?? DEFAULT_AFFINITY_TIMEOUT_S) : 0;
    if (flagsBase !== 0 && (!Number.isInteger(timeout) || timeout < 1 || timeout > 86400)) {
      out.problems.push(`${id}: sessionAffinity timeout ${timeout} s is outside 1..86400: Service left out`);
      continue;
    }
    for (const sp of svc.ports ?? []) {
      const portName = sp.name ?? "";
      const protoName = sp.protocol ?? "TCP";
      const proto = PROTO[protoName] as LbProtoNumber | undefined;
      if (proto === undefined || !isPort(sp.port)) {
        out.problems.push(`${id}: port ${JSON.stringify(sp)} has no usable port or protocol: left out`);
        continue;
      }
      // Backends of this port: the slices' port of the same name and protocol.
      const all: (Candidate & { ready: boolean; serving: boolean })[] = [];
      for (const slice of slices) {
        const p = (slice.ports ?? []).find(
          (x) => (x.name ?? "") === portName && (x.protocol ?? "TCP") === protoName,
        );
        if (p === undefined || !isPort(p.port)) continue;
        for (const ep of slice.endpoints) {
          const ready = ep.ready ?? true;
          const serving = ep.serving ?? ready;
          const terminating = ep.terminating ?? false;
          const addr = ep.addresses.find(isIPv4);
          if (addr === undefined) continue;
          all.push({ addr, port: p.port, local: ep.nodeName === nodeName, ready, serving, terminating });
        }
      }
      const merged = merge(all);
      const clusterSet = usable(merged);
      const localSet = usable(merged.filter((c) => c.local));
      const sctpMismatch = (c: Candidate) => proto === LbProto.sctp && c.port !== sp.port;
      const keepSctp = (set: Candidate[]) => {
        // SCTP's CRC32c covers the ports, which BPF cannot recompute: only the address is rewritten.
        const bad = set.find(sctpMismatch);
        if (bad !== undefined)
          out.problems.push(
            `${id} port ${sp.port}/SCTP: backends on another port (${bad.port}) cannot be reached (SCTP's checksum covers the ports): left out`,
          );
        return set.filter((c) => !sctpMismatch(c));
      };

      const frontend = (kind: FrontendKind, addr: string, port: number, flags: number, local: boolean) => {
        const key: LbSvcKey = { addr, port, proto };
        const ks = lbSvcKeyString(key);
        const taken = out.svc.get(ks);
        if (taken !== undefined) {
          const other = out.origins.get(taken.entry.svcId);
          out.problems.push(
            `${id}: ${kind} ${ks} is already ${other?.namespace ?? "?"}/${other?.name ?? "?"}'s: left out`,
          );
          return;
        }
        const chosen = keepSctp(local ? localSet : clusterSet);
        // Local backends first: slots 0..local_count-1.
        const ordered = [...chosen.filter((c) => c.local), ...chosen.filter((c) => !c.local)];
        if (ordered.length > 0xffff) {
          out.problems.push(
            `${id}: ${ordered.length} backends, more than a frontend holds (65535): left out`,
          );
          return;
        }
        const svcId = alloc.svcId(key);
        const backendIds: number[] = [];
        for (const [slot, c] of ordered.entries()) {
          const backendId = alloc.backendId(c.addr, c.port, proto);
          backendIds.push(backendId);
          const bks = String(backendId);
          const entry: LbBackendEntry = {
            addr: c.addr,
            port: c.port,
            proto,
            flags: (c.terminating ? LbBackendFlag.terminating : 0) | (c.local ? LbBackendFlag.local : 0),
          };
          out.backend.set(bks, { key: backendId, entry });
          const sk = { svcId, slot };
          out.slot.set(lbSlotKeyString(sk), { key: sk, entry: { backendId } });
        }
        // Terminating endpoints no longer picked stay as backends (flag terminating, in no slot):
        // their TCP connections drain, as with kube-proxy; other flows move (lib/lb.h).
        for (const c of local ? merged.filter((x) => x.local) : merged) {
          if (
            !c.terminating ||
            sctpMismatch(c) ||
            ordered.some((o) => o.addr === c.addr && o.port === c.port)
          )
            continue;
          const backendId = alloc.backendId(c.addr, c.port, proto);
          if (!out.backend.has(String(backendId)))
            out.backend.set(String(backendId), {
              key: backendId,
              entry: {
                addr: c.addr,
                port: c.port,
                proto,
                flags: LbBackendFlag.terminating | (c.local ? LbBackendFlag.local : 0),
              },
            });
        }
        const localCount = ordered.filter((c) => c.local).length;
        out.svc.set(ks, {
          key,
          entry: {
            svcId,
            count: ordered.length,
            localCount,
            flags: flagsBase | flags,
            affinityTimeoutS: timeout,
          },
        });
        out.revnat.set(String(svcId), { key: svcId, entry: { addr, port, proto } });
        if ((flags & LbSvcFlag.consistent) !== 0 && ordered.length > 0) {
          const table = maglevTable(
            ordered.map((c, i) => ({ name: `${c.addr}:${c.port}`, id: backendIds[i] ?? 0 })),
          );
          out.maglev.set(String(svcId), { key: svcId, entry: table });
        }
        out.origins.set(svcId, {
          namespace: svc.namespace,
          name: svc.name,
          portName,
          kind,
          key,
          svcId,
          backendIds,
        });
      };

      const intLocal = svc.internalTrafficPolicy === "Local";
      const extLocal = svc.externalTrafficPolicy === "Local";
      const ext = LbSvcFlag.consistent | (extLocal ? LbSvcFlag.extLocal : 0);
      for (const ip of ipv4s(svc.clusterIPs))
        frontend("ClusterIP", ip, sp.port, intLocal ? LbSvcFlag.intLocal : 0, intLocal);
      if ((svc.type === "NodePort" || svc.type === "LoadBalancer") && sp.nodePort !== undefined) {
        if (!isPort(sp.nodePort))
          out.problems.push(`${id}: nodePort ${String(sp.nodePort)} is not a port: left out`);
        else
          for (const ip of nodeAddrs)
            frontend("NodePort", ip, sp.nodePort, ext | LbSvcFlag.nodePort, extLocal);
      }
      for (const ip of ipv4s(svc.externalIPs))
        frontend("ExternalIP", ip, sp.port, ext | LbSvcFlag.external, extLocal);
      if (svc.type === "LoadBalancer")
        for (const ip of ipv4s(svc.loadBalancerIPs))
          frontend("LoadBalancer", ip, sp.port, ext | LbSvcFlag.external, extLocal);
    }
  }

  alloc.retain(
    new Set(out.svc.keys()),
    new Set(
      [...out.backend.values()].map((b) => backendKeyString(b.entry.addr, b.entry.port, b.entry.proto)),
    ),
  );
  return out;
}

/** `10.96.0.10:53/UDP` for people. */
export function formatFrontend(k: LbSvcKey): string {
  const name = k.proto === LbProto.tcp ? "TCP" : k.proto === LbProto.udp ? "UDP" : "SCTP";
  return `${k.addr}:${k.port}/${name}`;
}
