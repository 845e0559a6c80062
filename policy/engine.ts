/**
 * The NetworkPolicy engine: Kubernetes objects in, desired skn_policy entries, identities and
 * enforcement flags out, maintained incrementally.
 *
 * How the computation is laid out. Rules with identical content (direction, peers, ports; the
 * namespace for podSelector-only peers) share one *shape*: its peer identities, allowed CIDR
 * identities and index registrations exist once, however many policies repeat it ("allow DNS",
 * "allow the internet on 443" are typically templated into hundreds of policies). For each local
 * endpoint E and shape S that some rule selecting E has, a *slot* holds the keys S allows at E,
 * split into atoms:
 *   - `any`      every peer (no from/to): peer identity 0;
 *   - `i:<text>` one pod identity matched by a selector peer;
 *   - `c:<cidr>` one known ipBlock prefix the shape's blocks allow (a CIDR identity);
 *   - `d:<pod>`  egress named ports only: one destination pod, keyed by its address;
 * each times the port tails (named ingress ports resolved on E). The slot also knows which of
 * S's rules select E, so that the entry can name one. Keys are reference-counted per slot, so
 * every event is applied as "recompute these few atoms and diff them": an identity that appears
 * or disappears touches the shapes whose peers match it (found through an anchor index, not a
 * scan), a policy touches the endpoints it selects, a pod touches itself and the named-port egress
 * shapes that name its ports. Nothing is ever recomputed cluster-wide.
 */
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { IpcacheFlag } from "../maps/ipcache.js";
import { formatIPv4, parseIPv4, parsePrefix, type Prefix } from "../maps/net.js";
import {
  parsePolicyKeyString,
  policyKeyHead,
  policyKeyTail,
  type PolicyEntry,
  type PolicyKey,
} from "../maps/policy.js";
import { PrefixTrie, blockAllowsIp, blockAllowsPrefix } from "./cidr.js";
import {
  compilePolicy,
  namespaceOf,
  type CompiledPolicy,
  type CompiledRule,
  type SelectorPeer,
} from "./compile.js";
import {
  NAMESPACE_NAME_LABEL,
  cidrIdentityAllocator,
  cidrIdentityText,
  podIdentityAllocator,
  podIdentityText,
  type IdentityHash,
  type OrderedProbingAllocator,
  type Renumbered,
} from "./identity.js";
import { containerNamedPorts, namedPortKey, portTuples, type PortSpec } from "./ports.js";
import { RuleIds, type RuleRef } from "./rule-ids.js";
import { SelectorIndex, labelBuckets, matches, selectorAnchors, type Labels } from "./selector.js";

/** Construction options. */
export interface PolicyEngineOptions {
  /** This node's name; pods scheduled elsewhere are peers only. Undefined: every pod is local. */
  nodeName?: string;
  /** Identity hash (tests inject one to force collisions). Default: SHA-256. */
  hash?: IdentityHash;
}

/** A desired skn_policy entry. */
export interface DesiredPolicyEntry {
  readonly key: PolicyKey;
  readonly entry: PolicyEntry;
}

/** What an identity stands for. */
export interface IdentityInfo {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly namespaceLabels: Readonly<Record<string, string>>;
}

/** An object the engine rejected (in part or whole) and why. */
export interface EngineError {
  /** `NetworkPolicy ns/name`, `Pod ns/name`, `Namespace name`. */
  readonly object: string;
  readonly message: string;
}

/** What the last upsert/delete changed. */
export interface EngineChange {
  /** `version` after the event (unchanged when the event changed nothing). */
  readonly version: number;
  /** policyKeyString of every key added, removed or given another rule id. */
  readonly policyKeys: ReadonlySet<string>;
  /** Pod addresses whose identityOfIp or localFlags changed. */
  readonly addresses: ReadonlySet<string>;
  /** Local endpoints (pod IPs) whose entries were (re)computed, changed or not. */
  readonly endpoints: ReadonlySet<string>;
  /** Identities, CIDR identities, rule table or errors changed. */
  readonly other: boolean;
}

interface PodInfo {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly local: boolean;
  readonly labels: Labels;
  readonly namedPorts: ReadonlyMap<string, number>;
  /** Address, locality and named ports (not labels), for no-op detection. */
  readonly fingerprint: string;
}

interface PodState extends PodInfo {
  readonly identity: IdentityState;
}

interface IdentityState {
  readonly canonical: string;
  id: number;
  readonly namespace: string;
  readonly labels: Labels;
  readonly namespaceLabels: Labels;
  readonly pods: Set<PodState>;
  readonly localPods: Set<PodState>;
  /** Policies whose podSelector selects it. */
  readonly subjectOf: Set<PolicyState>;
  ingressPolicies: number;
  egressPolicies: number;
  /** Shapes with a selector peer matching it. */
  readonly peerOf: Set<ShapeState>;
}

interface PolicyState {
  readonly compiled: CompiledPolicy;
  readonly rules: RuleState[];
  readonly subjects: Set<IdentityState>;
  /** Every ipBlock cidr and except it holds a reference on. */
  readonly prefixes: Prefix[];
}

interface RuleState {
  readonly id: number;
  readonly ref: RuleRef;
  readonly shape: ShapeState;
}

type NamedSpec = Extract<PortSpec, { kind: "named" }>;

interface PeerRef {
  readonly shape: ShapeState;
  readonly peer: SelectorPeer;
}

/** What rules with identical content share. */
interface ShapeState {
  readonly fingerprint: string;
  readonly rule: CompiledRule;
  readonly identities: Set<IdentityState>;
  readonly cidrs: Set<CidrState>;
  /** Egress named ports: resolved per destination pod into address-keyed entries. */
  readonly namedEgress: readonly NamedSpec[];
  readonly peerRefs: PeerRef[];
  /** Port tails of its keys when they do not depend on the endpoint (see tails()). */
  tails?: readonly string[];
  /** Rules of this shape. */
  readonly rules: Set<RuleState>;
  /** Where it is applied. */
  readonly slots: Set<Slot>;
}

/** A shape applied at one endpoint. */
interface Slot {
  readonly endpoint: EndpointState;
  readonly shape: ShapeState;
  /** Rules of the shape that select the endpoint: id → rank (see rank()). */
  readonly members: Map<number, string>;
  /** The member reported for its keys: the lowest rank. */
  best: number;
  bestRank: string;
  /** atom → policyKeyStrings it contributes. */
  readonly atoms: Map<string, readonly string[]>;
}

interface CidrState {
  readonly prefix: Prefix;
  readonly text: string;
  id: number;
  refs: number;
  /** Shapes with a block allowing this prefix. */
  readonly shapes: Set<ShapeState>;
}

interface EndpointState {
  pod: PodState;
  readonly slots: Map<ShapeState, Slot>;
}

interface DesiredState {
  readonly key: PolicyKey;
  /** Slot → how many of its atoms contribute the key. */
  readonly slots: Map<Slot, number>;
  /** The contributing slot with the lowest best rank: its rule is the one reported. */
  bestSlot: Slot;
}

interface Tx {
  readonly keys: Map<string, DesiredPolicyEntry | undefined>;
  readonly addresses: Map<string, { identity: number | undefined; flags: number }>;
  readonly endpoints: Set<string>;
  other: boolean;
}

const EMPTY: readonly string[] = [];

function sameLabels(a: Labels, b: Labels): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function stringLabels(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof raw === "object" && raw !== null)
    for (const k of Object.keys(raw)) {
      const v = (raw as Record<string, unknown>)[k];
      if (typeof v === "string") out[k] = v;
    }
  return out;
}

/** `c` normalised when it is IPv4 text, else undefined. */
function ipv4Text(c: unknown): string | undefined {
  if (typeof c !== "string") return undefined;
  try {
    return formatIPv4(parseIPv4(c));
  } catch {
    return undefined;
  }
}

/** The first IPv4 address of a pod (status.podIPs, then status.podIP), normalised. */
function podIPv4(pod: V1Pod): string | undefined {
  const list: unknown = pod.status?.podIPs;
  if (Array.isArray(list))
    for (const p of list as unknown[]) {
      const ip = ipv4Text((p as { ip?: unknown } | null)?.ip);
      if (ip !== undefined) return ip;
    }
  return ipv4Text(pod.status?.podIP);
}

/**
 * Incremental NetworkPolicy compiler for one node. Feed it Namespaces, Pods and NetworkPolicies
 * (upserts are idempotent and never throw); read the desired policy map, identities and flags.
 * Outputs are live views: copy them to keep a snapshot. Holds no resources; nothing to close.
 */
export class PolicyEngine {
  private readonly nodeName: string | undefined;
  private readonly podIds: OrderedProbingAllocator;
  private readonly cidrIds: OrderedProbingAllocator;

  private readonly namespaces = new Map<string, Labels>();
  private readonly pods = new Map<string, PodState>();
  private readonly podsByNs = new Map<string, Set<PodState>>();
  private readonly podsByIp = new Map<string, Set<PodState>>();
  private readonly identityByText = new Map<string, IdentityState>();
  private readonly identitiesByNs = new Map<string, Set<IdentityState>>();
  private readonly publicIdentities = new Map<number, IdentityInfo>();

  private readonly policies = new Map<string, PolicyState>();
  private readonly subjectIndex = new Map<string, SelectorIndex<PolicyState>>();
  private readonly peerIndex = new SelectorIndex<PeerRef>();
  private readonly ruleIds = new RuleIds();
  private readonly ruleRanks = new Map<number, string>();
  private readonly shapes = new Map<string, ShapeState>();

  private readonly cidrTrie = new PrefixTrie<CidrState>();
  private readonly publicCidrs = new Map<string, number>();
  private readonly shapesByBlockCidr = new Map<string, Set<ShapeState>>();

  private readonly namedPortPods = new Map<string, Set<PodState>>();
  private readonly namedEgressShapes = new Map<string, Set<ShapeState>>();

  private readonly endpoints = new Map<string, EndpointState>();
  private readonly desired = new Map<string, DesiredState>();
  private readonly publicDesired = new Map<string, DesiredPolicyEntry>();

  private readonly objectErrors = new Map<string, readonly string[]>();
  private errorList: EngineError[] | undefined;

  private currentVersion = 0;
  private tx: Tx | undefined;
  /** During upsertPods: identity texts by namespace and pod labels in their own order. */
  private identityTexts: Map<string, string> | undefined;
  /** During upsertPods: pods' labels and named ports by content, shared by the batch's pods. */
  private batchShared:
    | {
        labels: Map<string, Labels>;
        ports: Map<string, { ports: ReadonlyMap<string, number>; text: string }>;
      }
    | undefined;
  private last: EngineChange = {
    version: 0,
    policyKeys: new Set(),
    addresses: new Set(),
    endpoints: new Set(),
    other: false,
  };

  /** An empty engine; see PolicyEngineOptions. */
  constructor(options: PolicyEngineOptions = {}) {
    this.nodeName = options.nodeName;
    this.podIds = podIdentityAllocator(options.hash);
    this.cidrIds = cidrIdentityAllocator(options.hash);
  }

  // ---------------------------------------------------------------- public: events

  /** Adds or updates a namespace; a label change re-identifies its pods. */
  upsertNamespace(ns: V1Namespace): void {
    const name = ns.metadata?.name;
    if (typeof name !== "string" || name === "") {
      this.run(undefined, () => undefined);
      return;
    }
    this.run(`Namespace ${name}`, () => {
      this.setNamespace(name, stringLabels(ns.metadata?.labels));
    });
  }

  /** Forgets a namespace's labels (its pods keep only the name label until they go too). */
  deleteNamespace(name: string): void {
    this.run(`Namespace ${name}`, () => {
      this.setNamespace(name, undefined);
    });
  }

  /** Adds or updates a pod. Pods without an IPv4 address, on the host network or finished don't count. */
  upsertPod(pod: V1Pod): void {
    const namespace = namespaceOf(pod.metadata);
    const name = pod.metadata?.name;
    if (typeof name !== "string" || name === "") return;
    const object = `Pod ${namespace}/${name}`;
    this.run(object, () => {
      const info = this.podInfo(pod, namespace, name, object);
      this.setPod(`${namespace}/${name}`, info);
    });
  }

  /**
   * Adds or updates many pods in one transaction, in order: the same outcome as `upsertPod` for
   * each, for the cost of the pods alone (the first lists' path). Pods sharing labels share one
   * identity text, made once per batch; `lastChange()` names everything the batch changed.
   */
  upsertPods(pods: Iterable<V1Pod>): void {
    const tx: Tx = { keys: new Map(), addresses: new Map(), endpoints: new Set(), other: false };
    this.tx = tx;
    this.identityTexts = new Map();
    this.batchShared = { labels: new Map(), ports: new Map() };
    try {
      for (const pod of pods) {
        const namespace = namespaceOf(pod.metadata);
        const name = pod.metadata?.name;
        if (typeof name !== "string" || name === "") continue;
        const object = `Pod ${namespace}/${name}`;
        try {
          this.setPod(`${namespace}/${name}`, this.podInfo(pod, namespace, name, object));
        } catch (err) {
          // As upsertPod: never thrown; the pod is reported, the others go on.
          this.setErrors(object, [`internal error: ${err instanceof Error ? err.message : String(err)}`]);
        }
      }
    } finally {
      this.identityTexts = undefined;
      this.batchShared = undefined;
      this.tx = undefined;
      this.commit(tx);
    }
  }

  /** Forgets a pod (idempotent). */
  deletePod(namespace: string, name: string): void {
    this.run(`Pod ${namespace}/${name}`, () => {
      this.setErrors(`Pod ${namespace}/${name}`, []);
      this.setPod(`${namespace}/${name}`, undefined);
    });
  }

  /**
   * Adds or updates a NetworkPolicy. An invalid one is recorded in errors() and fails closed: it
   * isolates the pods it selects in its directions and allows nothing.
   */
  upsertPolicy(np: V1NetworkPolicy): void {
    const compiled = compilePolicy(np);
    const object = `NetworkPolicy ${compiled.key}`;
    this.run(object, () => {
      this.setErrors(object, compiled.errors);
      if (compiled.name === "") return;
      const old = this.policies.get(compiled.key);
      if (old !== undefined && old.compiled.fingerprint === compiled.fingerprint) return;
      const oldRefs = old?.rules.map((r) => r.ref) ?? [];
      if (old !== undefined) this.removePolicy(old);
      this.addPolicy(compiled);
      for (const ref of oldRefs) if (!this.ruleStillUsed(compiled, ref)) this.releaseRule(ref);
    });
  }

  /** Forgets a NetworkPolicy (idempotent); its rule ids become free. */
  deletePolicy(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.run(`NetworkPolicy ${key}`, () => {
      this.setErrors(`NetworkPolicy ${key}`, []);
      const old = this.policies.get(key);
      if (old === undefined) return;
      this.removePolicy(old);
      for (const r of old.rules) this.releaseRule(r.ref);
    });
  }

  // ---------------------------------------------------------------- public: outputs

  /** Bumps on every change to any output. */
  get version(): number {
    return this.currentVersion;
  }

  /** What the last event changed (for reconcilers that apply deltas, and for tests). */
  lastChange(): EngineChange {
    return this.last;
  }

  /** Identity of a counted pod, anywhere in the cluster. */
  podIdentity(namespace: string, name: string): number | undefined {
    return this.pods.get(`${namespace}/${name}`)?.identity.id;
  }

  /**
   * Identity of the pod holding `ip` (any node). When stale objects share an address, the pod
   * with the smallest namespace/name wins, so that every agent picks the same one.
   */
  identityOfIp(ip: string): number | undefined {
    const set = this.podsByIp.get(ip);
    if (set === undefined) return undefined;
    let best: PodState | undefined;
    for (const p of set) if (best === undefined || p.key < best.key) best = p;
    return best?.identity.id;
  }

  /** IpcacheFlag bits of a local pod: enforceIngress / enforceEgress when a policy selects it. */
  localFlags(podIp: string): number {
    let flags = 0;
    for (const p of this.podsByIp.get(podIp) ?? []) {
      if (!p.local) continue;
      if (p.identity.ingressPolicies > 0) flags |= IpcacheFlag.enforceIngress;
      if (p.identity.egressPolicies > 0) flags |= IpcacheFlag.enforceEgress;
    }
    return flags;
  }

  /** Every ipBlock cidr and except of the valid policies, `a.b.c.d/n` → CIDR identity. */
  cidrPrefixes(): ReadonlyMap<string, number> {
    return this.publicCidrs;
  }

  /**
   * CIDR identity of the longest known ipBlock prefix containing `ipOrPrefix` (an address or
   * `a.b.c.d/n`); 0 when none does or the input is not IPv4. This is the ipcache's cidrIdentity.
   */
  cidrIdentityOf(ipOrPrefix: string): number {
    let p: Prefix;
    try {
      p = parsePrefix(ipOrPrefix);
    } catch {
      return 0;
    }
    return this.cidrTrie.longestMatch(p)?.value.id ?? 0;
  }

  /** Desired skn_policy contents, policyKeyString → key and entry. Live view. */
  desiredPolicy(): ReadonlyMap<string, DesiredPolicyEntry> {
    return this.publicDesired;
  }

  /** Pod identities in use, number → what it stands for. Live view. */
  identities(): ReadonlyMap<number, IdentityInfo> {
    return this.publicIdentities;
  }

  /** Where rule `ruleId` comes from; undefined for 0 and unknown ids. */
  rule(ruleId: number): RuleRef | undefined {
    return this.ruleIds.lookup(ruleId);
  }

  /** Objects rejected (in whole or part), with why. */
  errors(): readonly EngineError[] {
    if (this.errorList === undefined) {
      const list: EngineError[] = [];
      for (const [object, messages] of this.objectErrors)
        for (const message of messages) list.push({ object, message });
      this.errorList = list;
    }
    return this.errorList;
  }

  // ---------------------------------------------------------------- transactions

  private run(object: string | undefined, fn: () => void): void {
    const tx: Tx = { keys: new Map(), addresses: new Map(), endpoints: new Set(), other: false };
    this.tx = tx;
    try {
      if (object === undefined) this.setErrors("(unnamed object)", ["metadata.name: required"]);
      else fn();
    } catch (err) {
      // Never throw from upserts; a bug here must not take the agent down.
      this.setErrors(object ?? "(unnamed object)", [
        `internal error: ${err instanceof Error ? err.message : String(err)}`,
      ]);
    } finally {
      this.tx = undefined;
      this.commit(tx);
    }
  }

  private commit(tx: Tx): void {
    const policyKeys = new Set<string>();
    for (const [ks, before] of tx.keys) {
      const after = this.publicDesired.get(ks);
      if (before !== undefined && after !== undefined && before.entry.ruleId === after.entry.ruleId) {
        // Unchanged in the end: keep the old object so that consumers can compare by reference.
        if (before !== after) this.publicDesired.set(ks, before);
      } else if (before !== after) policyKeys.add(ks);
    }
    const addresses = new Set<string>();
    for (const [ip, before] of tx.addresses)
      if (this.identityOfIp(ip) !== before.identity || this.localFlags(ip) !== before.flags)
        addresses.add(ip);
    const changed = policyKeys.size > 0 || addresses.size > 0 || tx.other;
    if (changed) this.currentVersion++;
    this.last = {
      version: this.currentVersion,
      policyKeys,
      addresses,
      endpoints: tx.endpoints,
      other: tx.other,
    };
  }

  private txn(): Tx {
    if (this.tx === undefined) throw new Error("engine state changed outside a transaction");
    return this.tx;
  }

  /** Records the address's outputs before a change to them. */
  private touchAddress(ip: string): void {
    const tx = this.txn();
    if (!tx.addresses.has(ip))
      tx.addresses.set(ip, { identity: this.identityOfIp(ip), flags: this.localFlags(ip) });
  }

  private setErrors(object: string, messages: readonly string[]): void {
    const old = this.objectErrors.get(object) ?? EMPTY;
    if (old.length === messages.length && old.every((m, i) => m === messages[i])) return;
    if (messages.length === 0) this.objectErrors.delete(object);
    else this.objectErrors.set(object, [...messages]);
    this.errorList = undefined;
    this.txn().other = true;
  }

  // ---------------------------------------------------------------- desired entries

  private incRef(ks: string, slot: Slot): void {
    const d = this.desired.get(ks);
    if (d === undefined) {
      const fresh: DesiredState = {
        key: parsePolicyKeyString(ks),
        slots: new Map([[slot, 1]]),
        bestSlot: slot,
      };
      this.desired.set(ks, fresh);
      this.publish(ks, fresh);
      return;
    }
    const n = d.slots.get(slot);
    d.slots.set(slot, (n ?? 0) + 1);
    if (n === undefined && slot.bestRank < d.bestSlot.bestRank) {
      d.bestSlot = slot;
      this.publish(ks, d);
    }
  }

  private decRef(ks: string, slot: Slot): void {
    const d = this.desired.get(ks);
    if (d === undefined) return;
    const n = (d.slots.get(slot) ?? 0) - 1;
    if (n > 0) {
      d.slots.set(slot, n);
      return;
    }
    d.slots.delete(slot);
    if (d.slots.size === 0) {
      this.desired.delete(ks);
      this.publish(ks, undefined);
    } else if (d.bestSlot === slot) this.rebest(ks, d);
  }

  /** Re-picks the reported rule of a key among its contributors. */
  private rebest(ks: string, d: DesiredState): void {
    let best: Slot | undefined;
    for (const s of d.slots.keys()) if (best === undefined || s.bestRank < best.bestRank) best = s;
    if (best === undefined) return;
    d.bestSlot = best;
    this.publish(ks, d);
  }

  /**
   * Makes the public entry reflect `d`. Of several rules allowing the same key, the first in
   * (namespace, policy, direction, index) order is reported: independent of history, so every
   * agent names the same rule for the same flow.
   */
  private publish(ks: string, d: DesiredState | undefined): void {
    const current = this.publicDesired.get(ks);
    const ruleId = d?.bestSlot.best;
    if (current?.entry.ruleId === ruleId) return;
    const tx = this.txn();
    if (!tx.keys.has(ks)) tx.keys.set(ks, current);
    if (d === undefined || ruleId === undefined) this.publicDesired.delete(ks);
    else this.publicDesired.set(ks, { key: d.key, entry: { ruleId, flags: 0 } });
  }

  /** Order of rules for `publish`, cached per rule id while the id is held. */
  private rank(id: number): string {
    let r = this.ruleRanks.get(id);
    if (r === undefined) {
      const ref = this.ruleIds.lookup(id);
      r =
        ref === undefined
          ? ""
          : `${ref.namespace}\u0000${ref.policy}\u0000${ref.direction}\u0000${String(ref.index).padStart(6, "0")}`;
      this.ruleRanks.set(id, r);
    }
    return r;
  }

  /**
   * Replaces what (slot, atom) contributes with `keys` (policyKeyStrings, no duplicates). The hot
   * path of every event: no allocation beyond the new list when nothing was there before.
   */
  private setAtom(slot: Slot, atom: string, keys: readonly string[]): void {
    this.txn().endpoints.add(slot.endpoint.pod.ip);
    const old = slot.atoms.get(atom);
    if (old === undefined) {
      if (keys.length === 0) return;
      for (const s of keys) this.incRef(s, slot);
      slot.atoms.set(atom, keys);
      return;
    }
    if (keys.length === 0) {
      for (const s of old) this.decRef(s, slot);
      slot.atoms.delete(atom);
      return;
    }
    if (old.length === keys.length && old.every((s, i) => s === keys[i])) return;
    const next = new Set(keys);
    const prev = new Set(old);
    for (const s of old) if (!next.has(s)) this.decRef(s, slot);
    for (const s of keys) if (!prev.has(s)) this.incRef(s, slot);
    slot.atoms.set(atom, keys);
  }

  /**
   * The port part of S's keys at E for identity/CIDR/any peers, as policyKeyString tails (named
   * ingress ports resolved on E, named egress ports left to address-keyed atoms). Cached on the
   * shape when it does not depend on the endpoint.
   */
  private tails(e: EndpointState, s: ShapeState): readonly string[] {
    if (s.tails !== undefined) return s.tails;
    const out = new Set<string>();
    let perEndpoint = false;
    for (const spec of s.rule.ports) {
      if (spec.kind === "named") {
        if (s.rule.direction === "egress") continue;
        perEndpoint = true;
      }
      for (const t of portTuples(spec, e.pod.namedPorts)) out.add(policyKeyTail(t));
    }
    const tails = [...out];
    if (!perEndpoint) s.tails = tails;
    return tails;
  }

  /** Keys of S at E for one peer (identity number, CIDR identity or 0). */
  private peerKeys(e: EndpointState, s: ShapeState, peer: number): string[] {
    const tails = this.tails(e, s);
    if (tails.length === 0) return [];
    const head = policyKeyHead(e.pod.ip, s.rule.direction, peer);
    return tails.map((t) => head + t);
  }

  private destMatches(s: ShapeState, d: PodState): boolean {
    return (
      s.rule.anyPeer || s.identities.has(d.identity) || s.rule.blocks.some((b) => blockAllowsIp(b, d.ip))
    );
  }

  /** Address-keyed egress keys of S at E towards destination pod D (its named ports). */
  private destKeys(e: EndpointState, s: ShapeState, d: PodState): string[] {
    if (!this.destMatches(s, d)) return [];
    const out = new Set<string>();
    for (const spec of s.namedEgress) {
      const port = d.namedPorts.get(namedPortKey(spec.protocol, spec.name));
      if (port !== undefined)
        out.add(
          policyKeyHead(e.pod.ip, "egress", { ip: d.ip }) +
            policyKeyTail({ protocol: spec.protocol, port, portBits: 16 }),
        );
    }
    return [...out];
  }

  /** Every atom of S at E, from scratch. */
  private computeAtoms(e: EndpointState, s: ShapeState): Map<string, string[]> {
    const atoms = new Map<string, string[]>();
    if (this.tails(e, s).length > 0) {
      if (s.rule.anyPeer) atoms.set("any", this.peerKeys(e, s, 0));
      for (const x of s.identities) atoms.set(`i:${x.canonical}`, this.peerKeys(e, s, x.id));
      for (const c of s.cidrs) atoms.set(`c:${c.text}`, this.peerKeys(e, s, c.id));
    }
    if (s.namedEgress.length > 0)
      for (const d of this.destCandidates(s)) {
        const keys = this.destKeys(e, s, d);
        if (keys.length > 0) atoms.set(`d:${d.key}`, keys);
      }
    return atoms;
  }

  /** Pods that might be destinations of S's named egress ports: those declaring one of the names. */
  private destCandidates(s: ShapeState): Set<PodState> {
    const out = new Set<PodState>();
    for (const spec of s.namedEgress)
      for (const d of this.namedPortPods.get(namedPortKey(spec.protocol, spec.name)) ?? []) out.add(d);
    return out;
  }

  /** Rule R now applies at endpoint E (its policy selects E). */
  private addRuleAt(e: EndpointState, r: RuleState): void {
    const rank = this.rank(r.id);
    const slot = e.slots.get(r.shape);
    if (slot === undefined) {
      const fresh: Slot = {
        endpoint: e,
        shape: r.shape,
        members: new Map([[r.id, rank]]),
        best: r.id,
        bestRank: rank,
        atoms: new Map(),
      };
      e.slots.set(r.shape, fresh);
      r.shape.slots.add(fresh);
      for (const [a, keys] of this.computeAtoms(e, r.shape)) this.setAtom(fresh, a, keys);
      this.txn().endpoints.add(e.pod.ip);
      return;
    }
    slot.members.set(r.id, rank);
    if (rank < slot.bestRank) this.setSlotBest(slot);
  }

  /** Rule R no longer applies at endpoint E. */
  private removeRuleAt(e: EndpointState, r: RuleState): void {
    const slot = e.slots.get(r.shape);
    if (slot === undefined || !slot.members.delete(r.id)) return;
    if (slot.members.size === 0) this.dropSlot(slot);
    else if (slot.best === r.id) this.setSlotBest(slot);
  }

  private dropSlot(slot: Slot): void {
    for (const a of [...slot.atoms.keys()]) this.setAtom(slot, a, []);
    this.txn().endpoints.add(slot.endpoint.pod.ip);
    slot.endpoint.slots.delete(slot.shape);
    slot.shape.slots.delete(slot);
  }

  /** Re-picks the member a slot reports and re-publishes its keys if that changed. */
  private setSlotBest(slot: Slot): void {
    let best: number | undefined;
    let bestRank = "";
    for (const [id, rank] of slot.members)
      if (best === undefined || rank < bestRank) {
        best = id;
        bestRank = rank;
      }
    if (best === undefined || best === slot.best) return;
    const before = slot.bestRank;
    slot.best = best;
    slot.bestRank = bestRank;
    this.txn().endpoints.add(slot.endpoint.pod.ip);
    for (const keys of slot.atoms.values())
      for (const ks of keys) {
        const d = this.desired.get(ks);
        if (d === undefined) continue;
        if (d.bestSlot === slot) {
          if (bestRank < before) this.publish(ks, d);
          else this.rebest(ks, d);
        } else if (bestRank < d.bestSlot.bestRank) {
          d.bestSlot = slot;
          this.publish(ks, d);
        }
      }
  }

  // ---------------------------------------------------------------- namespaces and pods

  private namespaceLabels(name: string): Labels {
    let labels = this.namespaces.get(name);
    if (labels === undefined) {
      // The API server labels every namespace with its name; assume it before the object arrives.
      labels = Object.freeze({ [NAMESPACE_NAME_LABEL]: name });
      this.namespaces.set(name, labels);
    }
    return labels;
  }

  private setNamespace(name: string, raw: Record<string, string> | undefined): void {
    // The API server forces this label to the namespace's name; do the same for offline objects.
    const labels = Object.freeze({ ...raw, [NAMESPACE_NAME_LABEL]: name });
    if (sameLabels(this.namespaceLabels(name), labels)) return;
    this.namespaces.set(name, labels);
    for (const p of [...(this.podsByNs.get(name) ?? [])]) this.setPod(p.key, p);
  }

  private podInfo(pod: V1Pod, namespace: string, name: string, object: string): PodInfo | undefined {
    const phase = pod.status?.phase;
    const counted =
      pod.spec?.hostNetwork !== true &&
      phase !== "Succeeded" &&
      phase !== "Failed" &&
      ((typeof pod.status?.podIP === "string" && pod.status.podIP !== "") ||
        (Array.isArray(pod.status?.podIPs) && pod.status.podIPs.length > 0));
    if (!counted) {
      this.setErrors(object, []);
      return undefined;
    }
    const ip = podIPv4(pod);
    if (ip === undefined) {
      this.setErrors(object, ["status.podIPs: no IPv4 address; Skein's datapath is IPv4 only"]);
      return undefined;
    }
    this.setErrors(object, []);
    let labels = Object.freeze(stringLabels(pod.metadata?.labels));
    let namedPorts: ReadonlyMap<string, number> = containerNamedPorts(pod);
    const local = this.nodeName === undefined || pod.spec?.nodeName === this.nodeName;
    // Compared only with the same pod's previous fingerprint: ports in declaration order.
    let ports = "";
    namedPorts.forEach((port, k) => {
      ports += `|${k.length}:${k}=${port}`;
    });
    const shared = this.batchShared;
    if (shared !== undefined) {
      // Pods of one template share their (frozen, never mutated) labels and named ports.
      const p = shared.ports.get(ports);
      if (p === undefined) shared.ports.set(ports, { ports: namedPorts, text: ports });
      else ({ ports: namedPorts, text: ports } = p);
      let key = "";
      for (const k in labels) key += `${k.length}:${k}${(labels[k] ?? "").length}:${labels[k] ?? ""}`;
      const l = shared.labels.get(key);
      if (l === undefined) shared.labels.set(key, labels);
      else labels = l;
    }
    const fingerprint = `${ip}|${local ? 1 : 0}${ports}`;
    return { key: `${namespace}/${name}`, namespace, name, ip, local, labels, namedPorts, fingerprint };
  }

  /** Moves a pod from its old state to `info` (undefined = gone). */
  private setPod(key: string, info: PodInfo | undefined): void {
    const old = this.pods.get(key);
    if (info === undefined && old === undefined) return;
    let identity: IdentityState | undefined;
    if (info !== undefined) {
      const nsLabels = this.namespaceLabels(info.namespace);
      const text = this.identityText(info.namespace, nsLabels, info.labels);
      if (old !== undefined && old.fingerprint === info.fingerprint && old.identity.canonical === text)
        return;
      identity = this.ensureIdentity(text, info.namespace, nsLabels, info.labels);
      if (identity === undefined)
        this.setErrors(`Pod ${key}`, ["no free pod identity: the identity range is exhausted"]);
    }
    // Same address, ports and selecting policies: the endpoint's entries stay valid as they are.
    const keep =
      old !== undefined &&
      info !== undefined &&
      identity !== undefined &&
      old.local &&
      info.local &&
      old.fingerprint === info.fingerprint &&
      (old.identity === identity ||
        (old.identity.subjectOf.size === identity.subjectOf.size &&
          [...identity.subjectOf].every((p) => old.identity.subjectOf.has(p))));
    const endpoint = old === undefined ? undefined : this.detachPod(old, keep);
    if (info !== undefined && identity !== undefined)
      this.attachPod({ ...info, identity }, keep ? endpoint : undefined);
    if (old !== undefined && old.identity !== identity && old.identity.pods.size === 0)
      this.dropIdentity(old.identity);
  }

  private detachPod(p: PodState, keepEndpoint: boolean): EndpointState | undefined {
    this.touchAddress(p.ip);
    p.identity.pods.delete(p);
    p.identity.localPods.delete(p);
    this.pods.delete(p.key);
    deleteFrom(this.podsByNs, p.namespace, p);
    deleteFrom(this.podsByIp, p.ip, p);
    for (const k of p.namedPorts.keys()) deleteFrom(this.namedPortPods, k, p);
    let endpoint: EndpointState | undefined;
    if (p.local) {
      endpoint = this.endpoints.get(p.key);
      this.endpoints.delete(p.key);
      if (endpoint !== undefined && !keepEndpoint)
        for (const slot of [...endpoint.slots.values()]) this.dropSlot(slot);
    }
    this.refreshDestination(p, false);
    return endpoint;
  }

  private attachPod(p: PodState, endpoint: EndpointState | undefined): void {
    this.touchAddress(p.ip);
    this.pods.set(p.key, p);
    addTo(this.podsByNs, p.namespace, p);
    addTo(this.podsByIp, p.ip, p);
    for (const k of p.namedPorts.keys()) addTo(this.namedPortPods, k, p);
    p.identity.pods.add(p);
    if (p.local) {
      p.identity.localPods.add(p);
      if (endpoint !== undefined) {
        endpoint.pod = p;
        this.endpoints.set(p.key, endpoint);
      } else {
        const e: EndpointState = { pod: p, slots: new Map() };
        this.endpoints.set(p.key, e);
        this.txn().endpoints.add(p.ip);
        for (const pol of p.identity.subjectOf) for (const r of pol.rules) this.addRuleAt(e, r);
      }
    }
    this.refreshDestination(p, true);
  }

  /** Re-derives the address-keyed entries towards pod D in every shape naming one of its ports. */
  private refreshDestination(d: PodState, present: boolean): void {
    // No shape names an egress port (the common case): nothing to do, and no Set per pod.
    if (this.namedEgressShapes.size === 0) return;
    const shapes = new Set<ShapeState>();
    for (const k of d.namedPorts.keys()) for (const s of this.namedEgressShapes.get(k) ?? []) shapes.add(s);
    for (const s of shapes)
      for (const slot of s.slots)
        this.setAtom(slot, `d:${d.key}`, present ? this.destKeys(slot.endpoint, s, d) : []);
  }

  // ---------------------------------------------------------------- identities

  /**
   * podIdentityText, made once per label set during upsertPods (namespace labels cannot change
   * within a batch): the memo's key keeps the labels in their own order, without sorting (pods of
   * one template list them alike; another order only costs another entry).
   */
  private identityText(namespace: string, nsLabels: Labels, labels: Labels): string {
    const memo = this.identityTexts;
    if (memo === undefined) return podIdentityText(namespace, nsLabels, labels);
    // Length-prefixed: unambiguous whatever the names hold.
    let key = `${namespace.length}:${namespace}`;
    for (const k in labels) {
      const v = labels[k] ?? "";
      key += `${k.length}:${k}${v.length}:${v}`;
    }
    let text = memo.get(key);
    if (text === undefined) {
      text = podIdentityText(namespace, nsLabels, labels);
      memo.set(key, text);
    }
    return text;
  }

  private ensureIdentity(
    text: string,
    namespace: string,
    namespaceLabels: Labels,
    labels: Labels,
  ): IdentityState | undefined {
    const have = this.identityByText.get(text);
    if (have !== undefined) return have;
    if (this.podIds.full) return undefined;
    const { id, moved } = this.podIds.insert(text);
    this.renumberIdentities(moved);
    const x: IdentityState = {
      canonical: text,
      id,
      namespace,
      labels,
      namespaceLabels,
      pods: new Set(),
      localPods: new Set(),
      subjectOf: new Set(),
      ingressPolicies: 0,
      egressPolicies: 0,
      peerOf: new Set(),
    };
    this.identityByText.set(text, x);
    addTo(this.identitiesByNs, namespace, x);
    this.publicIdentities.set(id, Object.freeze({ namespace, labels, namespaceLabels }));
    this.txn().other = true;
    for (const pol of this.subjectIndex.get(namespace)?.candidates(labelBuckets(labels)) ?? [])
      if (matches(pol.compiled.selector, labels)) this.addSubject(pol, x);
    for (const ref of this.peerIndex.candidates(identityBuckets(x)))
      if (peerMatches(ref.peer, x)) this.joinShape(ref.shape, x);
    return x;
  }

  private dropIdentity(x: IdentityState): void {
    for (const s of [...x.peerOf]) this.leaveShape(s, x);
    for (const pol of [...x.subjectOf]) this.removeSubject(pol, x);
    this.identityByText.delete(x.canonical);
    deleteFrom(this.identitiesByNs, x.namespace, x);
    this.publicIdentities.delete(x.id);
    this.txn().other = true;
    this.renumberIdentities(this.podIds.remove(x.canonical));
  }

  /** Applies collision renumbering: new numbers in identities(), ipcache and every key naming them. */
  private renumberIdentities(moved: readonly Renumbered[]): void {
    if (moved.length === 0) return;
    const xs = moved.map((m) => this.identityByText.get(m.canonical) as IdentityState);
    for (const x of xs) for (const p of x.pods) this.touchAddress(p.ip);
    for (const m of moved) this.publicIdentities.delete(m.from);
    moved.forEach((m, i) => {
      const x = xs[i] as IdentityState;
      x.id = m.to;
      this.publicIdentities.set(
        m.to,
        Object.freeze({ namespace: x.namespace, labels: x.labels, namespaceLabels: x.namespaceLabels }),
      );
    });
    this.txn().other = true;
    for (const x of xs)
      for (const s of x.peerOf)
        for (const slot of s.slots)
          this.setAtom(slot, `i:${x.canonical}`, this.peerKeys(slot.endpoint, s, x.id));
  }

  /** X now matches one of S's selector peers. */
  private joinShape(s: ShapeState, x: IdentityState): void {
    if (s.identities.has(x)) return;
    s.identities.add(x);
    x.peerOf.add(s);
    for (const slot of s.slots) {
      this.setAtom(slot, `i:${x.canonical}`, this.peerKeys(slot.endpoint, s, x.id));
      if (s.namedEgress.length > 0)
        for (const d of x.pods) this.setAtom(slot, `d:${d.key}`, this.destKeys(slot.endpoint, s, d));
    }
  }

  private leaveShape(s: ShapeState, x: IdentityState): void {
    if (!s.identities.delete(x)) return;
    x.peerOf.delete(s);
    for (const slot of s.slots) {
      this.setAtom(slot, `i:${x.canonical}`, []);
      if (s.namedEgress.length > 0)
        for (const d of x.pods) this.setAtom(slot, `d:${d.key}`, this.destKeys(slot.endpoint, s, d));
    }
  }

  private addSubject(pol: PolicyState, x: IdentityState): void {
    for (const p of x.localPods) this.touchAddress(p.ip);
    pol.subjects.add(x);
    x.subjectOf.add(pol);
    if (pol.compiled.ingress) x.ingressPolicies++;
    if (pol.compiled.egress) x.egressPolicies++;
    for (const p of x.localPods) {
      const e = this.endpoints.get(p.key);
      if (e !== undefined) {
        this.txn().endpoints.add(p.ip);
        for (const r of pol.rules) this.addRuleAt(e, r);
      }
    }
  }

  private removeSubject(pol: PolicyState, x: IdentityState): void {
    for (const p of x.localPods) this.touchAddress(p.ip);
    for (const p of x.localPods) {
      const e = this.endpoints.get(p.key);
      if (e !== undefined) {
        this.txn().endpoints.add(p.ip);
        for (const r of pol.rules) this.removeRuleAt(e, r);
      }
    }
    pol.subjects.delete(x);
    x.subjectOf.delete(pol);
    if (pol.compiled.ingress) x.ingressPolicies--;
    if (pol.compiled.egress) x.egressPolicies--;
  }

  // ---------------------------------------------------------------- CIDR identities

  private acquirePrefix(p: Prefix): void {
    const have = this.cidrTrie.get(p);
    if (have !== undefined) {
      have.refs++;
      return;
    }
    const text = cidrIdentityText(p);
    const { id, moved } = this.cidrIds.insert(text);
    this.renumberCidrs(moved);
    const c: CidrState = { prefix: p, text, id, refs: 1, shapes: new Set() };
    this.cidrTrie.set(p, c);
    this.publicCidrs.set(text, id);
    this.txn().other = true;
    // Shapes whose block cidr contains the new prefix may now allow it.
    for (const { prefix: outer } of this.cidrTrie.containing(p))
      for (const s of this.shapesByBlockCidr.get(cidrIdentityText(outer)) ?? [])
        if (s.rule.blocks.some((b) => blockAllowsPrefix(b, p))) this.attachCidr(s, c);
  }

  private releasePrefix(p: Prefix): void {
    const c = this.cidrTrie.get(p);
    if (c === undefined) return;
    if (--c.refs > 0) return;
    for (const s of [...c.shapes]) {
      s.cidrs.delete(c);
      for (const slot of s.slots) this.setAtom(slot, `c:${c.text}`, []);
    }
    c.shapes.clear();
    this.cidrTrie.delete(p);
    this.publicCidrs.delete(c.text);
    this.txn().other = true;
    this.renumberCidrs(this.cidrIds.remove(c.text));
  }

  private attachCidr(s: ShapeState, c: CidrState): void {
    if (s.cidrs.has(c)) return;
    s.cidrs.add(c);
    c.shapes.add(s);
    for (const slot of s.slots) this.setAtom(slot, `c:${c.text}`, this.peerKeys(slot.endpoint, s, c.id));
  }

  private renumberCidrs(moved: readonly Renumbered[]): void {
    if (moved.length === 0) return;
    const cs = moved.map((m) => this.cidrTrie.get(parsePrefix(m.canonical)) as CidrState);
    moved.forEach((m, i) => {
      const c = cs[i] as CidrState;
      c.id = m.to;
      this.publicCidrs.set(c.text, m.to);
    });
    this.txn().other = true;
    for (const c of cs)
      for (const s of c.shapes)
        for (const slot of s.slots) this.setAtom(slot, `c:${c.text}`, this.peerKeys(slot.endpoint, s, c.id));
  }

  // ---------------------------------------------------------------- policies and shapes

  private releaseRule(ref: RuleRef): void {
    const id = this.ruleIds.idOf(ref);
    if (id !== undefined) this.ruleRanks.delete(id);
    this.ruleIds.release(ref);
  }

  private ruleStillUsed(compiled: CompiledPolicy, ref: RuleRef): boolean {
    return compiled.rules.some((r) => r.direction === ref.direction && r.index === ref.index);
  }

  /** The shape of `rule`, created (peers matched, blocks expanded, indexes filled) on first use. */
  private acquireShape(rule: CompiledRule): ShapeState {
    const fingerprint = rule.content;
    const have = this.shapes.get(fingerprint);
    if (have !== undefined) return have;
    const s: ShapeState = {
      fingerprint,
      rule,
      identities: new Set(),
      cidrs: new Set(),
      namedEgress:
        rule.direction === "egress" ? rule.ports.filter((p): p is NamedSpec => p.kind === "named") : [],
      peerRefs: [],
      rules: new Set(),
      slots: new Set(),
    };
    this.shapes.set(fingerprint, s);
    for (const peer of rule.peers) {
      const pr: PeerRef = { shape: s, peer };
      s.peerRefs.push(pr);
      this.peerIndex.add(pr, peerAnchors(peer));
      for (const x of this.identitiesMatching(peer)) {
        s.identities.add(x);
        x.peerOf.add(s);
      }
    }
    for (const b of rule.blocks) {
      addTo(this.shapesByBlockCidr, cidrIdentityText(b.cidr), s);
      for (const { prefix, value } of this.cidrTrie.within(b.cidr))
        if (blockAllowsPrefix(b, prefix)) {
          s.cidrs.add(value);
          value.shapes.add(s);
        }
    }
    for (const n of s.namedEgress) addTo(this.namedEgressShapes, namedPortKey(n.protocol, n.name), s);
    return s;
  }

  private releaseShape(s: ShapeState): void {
    if (s.rules.size > 0 || s.slots.size > 0) return;
    this.shapes.delete(s.fingerprint);
    for (const pr of s.peerRefs) this.peerIndex.delete(pr);
    for (const x of s.identities) x.peerOf.delete(s);
    for (const b of s.rule.blocks) deleteFrom(this.shapesByBlockCidr, cidrIdentityText(b.cidr), s);
    for (const c of s.cidrs) c.shapes.delete(s);
    for (const n of s.namedEgress) deleteFrom(this.namedEgressShapes, namedPortKey(n.protocol, n.name), s);
  }

  private addPolicy(compiled: CompiledPolicy): void {
    const pol: PolicyState = { compiled, rules: [], subjects: new Set(), prefixes: [] };
    this.policies.set(compiled.key, pol);
    let index = this.subjectIndex.get(compiled.namespace);
    if (index === undefined) this.subjectIndex.set(compiled.namespace, (index = new SelectorIndex()));
    index.add(pol, selectorAnchors(compiled.selector));
    this.txn().other = true;

    // Known prefixes first, so that new shapes see them all.
    for (const rule of compiled.rules)
      for (const b of rule.blocks)
        for (const p of [b.cidr, ...b.except]) {
          pol.prefixes.push(p);
          this.acquirePrefix(p);
        }
    for (const rule of compiled.rules) {
      const ref: RuleRef = {
        namespace: compiled.namespace,
        policy: compiled.name,
        direction: rule.direction,
        index: rule.index,
      };
      const r: RuleState = {
        id: this.ruleIds.acquire(ref),
        ref,
        shape: this.acquireShape(rule),
      };
      r.shape.rules.add(r);
      pol.rules.push(r);
    }
    for (const x of this.identitiesByNs.get(compiled.namespace) ?? [])
      if (matches(compiled.selector, x.labels)) this.addSubject(pol, x);
  }

  private removePolicy(pol: PolicyState): void {
    for (const x of [...pol.subjects]) this.removeSubject(pol, x);
    this.subjectIndex.get(pol.compiled.namespace)?.delete(pol);
    for (const r of pol.rules) {
      r.shape.rules.delete(r);
      this.releaseShape(r.shape);
    }
    for (const p of pol.prefixes) this.releasePrefix(p);
    this.policies.delete(pol.compiled.key);
    this.txn().other = true;
  }

  /** Identities matching a selector peer, visiting only the namespaces it can match. */
  private *identitiesMatching(peer: SelectorPeer): Generator<IdentityState> {
    if (peer.namespace !== undefined) {
      for (const x of this.identitiesByNs.get(peer.namespace) ?? []) if (peerMatches(peer, x)) yield x;
      return;
    }
    for (const [ns, xs] of this.identitiesByNs) {
      const nsSel = peer.namespaceSelector;
      if (nsSel !== undefined && !matches(nsSel, this.namespaceLabels(ns))) {
        // Identities carry the labels their namespace had when they were made; normally current.
        let stale = false;
        for (const x of xs) if (x.namespaceLabels !== this.namespaces.get(ns)) stale = true;
        if (!stale) continue;
      }
      for (const x of xs) if (peerMatches(peer, x)) yield x;
    }
  }

  // ---------------------------------------------------------------- introspection

  /** Sizes of the engine's state (for tests, metrics and benchmarks). */
  stats(): {
    pods: number;
    identities: number;
    policies: number;
    shapes: number;
    endpoints: number;
    keys: number;
    cidrs: number;
    /** Σ over slots and atoms of keys: the work a from-scratch rebuild would do. */
    contributions: number;
  } {
    let contributions = 0;
    for (const s of this.shapes.values())
      for (const slot of s.slots) for (const keys of slot.atoms.values()) contributions += keys.length;
    return {
      pods: this.pods.size,
      identities: this.identityByText.size,
      policies: this.policies.size,
      shapes: this.shapes.size,
      endpoints: this.endpoints.size,
      keys: this.publicDesired.size,
      cidrs: this.publicCidrs.size,
      contributions,
    };
  }
}

function peerMatches(peer: SelectorPeer, x: IdentityState): boolean {
  return (
    (peer.namespace === undefined || peer.namespace === x.namespace) &&
    (peer.namespaceSelector === undefined || matches(peer.namespaceSelector, x.namespaceLabels)) &&
    matches(peer.pod, x.labels)
  );
}

/** Index anchors of a peer: a pod-label bucket, else a namespace-label bucket, else its namespace. */
function peerAnchors(peer: SelectorPeer): string[] | undefined {
  const pod = selectorAnchors(peer.pod);
  if (pod !== undefined) return pod.map((a) => `p:${a}`);
  if (peer.namespaceSelector !== undefined) {
    const ns = selectorAnchors(peer.namespaceSelector);
    if (ns !== undefined) return ns.map((a) => `n:${a}`);
  }
  if (peer.namespace !== undefined) return [`ns:${peer.namespace}`];
  return undefined;
}

function identityBuckets(x: IdentityState): string[] {
  return [`ns:${x.namespace}`, ...labelBuckets(x.labels, "p:"), ...labelBuckets(x.namespaceLabels, "n:")];
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new Set()));
  s.add(v);
}

function deleteFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}
