/**
 * The NetworkPolicy engine: Kubernetes objects in, desired skn_policy entries, identities and
 * enforcement flags out, maintained incrementally.
 *
 * Shape of the computation. A policy's rule R allows, for each local endpoint E the policy
 * selects, a set of keys made of "atoms":
 *   - `any`      every peer (no from/to): peer identity 0;
 *   - `i:<id>`   one pod identity matched by a selector peer;
 *   - `c:<cidr>` one known ipBlock prefix the rule's blocks allow (a CIDR identity);
 *   - `d:<pod>`  egress named ports only: one destination pod, keyed by its address.
 * times the rule's port tuples (named ingress ports resolved on E). Every (E, R, atom) remembers
 * the keys it added, and keys are reference-counted per rule id, so any event is applied as
 * "recompute these few atoms and diff them": an identity that appears or disappears touches the
 * rules whose peers match it (found through an anchor index, not a scan), a policy touches the
 * endpoints it selects, a pod touches itself and the named-port egress rules that name its ports.
 * Nothing is ever recomputed cluster-wide.
 */
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { formatIPv4, parseIPv4, parsePrefix, type Prefix } from "../../maps/net.js";
import { policyKeyString, type PolicyEntry, type PolicyKey } from "../../maps/policy.js";
import { blockAllowsIp, blockAllowsPrefix, PrefixTrie } from "./cidr.js";
import { compilePolicy, namespaceOf, type CompiledPolicy, type CompiledRule, type SelectorPeer } from "./compile.js";
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
import { containerNamedPorts, namedPortKey, portTuples, type PortSpec, type PortTuple } from "./ports.js";
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
  /** Everything above but the identity, for no-op detection. */
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
  /** Rules with a selector peer matching it. */
  readonly peerOf: Set<RuleState>;
}

interface PolicyState {
  readonly compiled: CompiledPolicy;
  readonly rules: RuleState[];
  readonly subjects: Set<IdentityState>;
  /** Every ipBlock cidr and except it holds a reference on. */
  readonly prefixes: Prefix[];
}

interface PeerRef {
  readonly rule: RuleState;
  readonly peer: SelectorPeer;
}

interface RuleState {
  readonly id: number;
  readonly ref: RuleRef;
  readonly policy: PolicyState;
  readonly compiled: CompiledRule;
  readonly identities: Set<IdentityState>;
  readonly cidrs: Set<CidrState>;
  /** Egress named ports: resolved per destination pod into address-keyed entries. */
  readonly namedEgress: readonly Extract<PortSpec, { kind: "named" }>[];
  readonly peerRefs: PeerRef[];
}

interface CidrState {
  readonly prefix: Prefix;
  readonly text: string;
  id: number;
  refs: number;
  /** Rules with a block allowing this prefix. */
  readonly rules: Set<RuleState>;
}

interface EndpointState {
  pod: PodState;
  /** rule → atom → policyKeyStrings it contributes. */
  readonly contrib: Map<RuleState, Map<string, readonly string[]>>;
}

interface DesiredState {
  readonly key: PolicyKey;
  /** rule id → how many atoms contribute this key under it. */
  readonly rules: Map<number, number>;
}

interface Tx {
  readonly keys: Map<string, DesiredPolicyEntry | undefined>;
  readonly addresses: Map<string, { identity: number | undefined; flags: number }>;
  readonly endpoints: Set<string>;
  other: boolean;
}

const EMPTY: readonly string[] = [];

function sameMap(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function sameLabels(a: Labels, b: Labels): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function stringLabels(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof raw === "object" && raw !== null)
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The first IPv4 address of a pod (status.podIPs, then status.podIP), normalised. */
function podIPv4(pod: V1Pod): string | undefined {
  const candidates: unknown[] = [];
  if (Array.isArray(pod.status?.podIPs)) for (const p of pod.status.podIPs) candidates.push(p?.ip);
  candidates.push(pod.status?.podIP);
  for (const c of candidates) {
    if (typeof c !== "string") continue;
    try {
      return formatIPv4(parseIPv4(c));
    } catch {
      // not IPv4; keep looking
    }
  }
  return undefined;
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

  private readonly cidrTrie = new PrefixTrie<CidrState>();
  private readonly publicCidrs = new Map<string, number>();
  private readonly rulesByBlockCidr = new Map<string, Set<RuleState>>();

  private readonly namedPortPods = new Map<string, Set<PodState>>();
  private readonly namedEgressRules = new Map<string, Set<RuleState>>();

  private readonly endpoints = new Map<string, EndpointState>();
  private readonly desired = new Map<string, DesiredState>();
  private readonly publicDesired = new Map<string, DesiredPolicyEntry>();

  private readonly objectErrors = new Map<string, readonly string[]>();
  private errorList: EngineError[] | undefined;

  private currentVersion = 0;
  private tx: Tx | undefined;
  private last: EngineChange = { version: 0, policyKeys: new Set(), addresses: new Set(), endpoints: new Set(), other: false };

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
    this.run(`Namespace ${name}`, () => this.setNamespace(name, stringLabels(ns.metadata?.labels)));
  }

  /** Forgets a namespace's labels (its pods keep only the name label until they go too). */
  deleteNamespace(name: string): void {
    this.run(`Namespace ${name}`, () => this.setNamespace(name, undefined));
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
      for (const ref of oldRefs) if (!this.ruleStillUsed(compiled, ref)) this.ruleIds.release(ref);
    });
  }

  deletePolicy(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.run(`NetworkPolicy ${key}`, () => {
      this.setErrors(`NetworkPolicy ${key}`, []);
      const old = this.policies.get(key);
      if (old === undefined) return;
      this.removePolicy(old);
      for (const r of old.rules) this.ruleIds.release(r.ref);
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
      for (const [object, messages] of this.objectErrors) for (const message of messages) list.push({ object, message });
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
      this.setErrors(object ?? "(unnamed object)", [`internal error: ${err instanceof Error ? err.message : String(err)}`]);
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
      if (this.identityOfIp(ip) !== before.identity || this.localFlags(ip) !== before.flags) addresses.add(ip);
    const changed = policyKeys.size > 0 || addresses.size > 0 || tx.other;
    if (changed) this.currentVersion++;
    this.last = { version: this.currentVersion, policyKeys, addresses, endpoints: tx.endpoints, other: tx.other };
  }

  private txn(): Tx {
    if (this.tx === undefined) throw new Error("engine state changed outside a transaction");
    return this.tx;
  }

  /** Records the address's outputs before a change to them. */
  private touchAddress(ip: string): void {
    const tx = this.txn();
    if (!tx.addresses.has(ip)) tx.addresses.set(ip, { identity: this.identityOfIp(ip), flags: this.localFlags(ip) });
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

  private incRef(ks: string, key: PolicyKey, ruleId: number): void {
    let d = this.desired.get(ks);
    if (d === undefined) this.desired.set(ks, (d = { key, rules: new Map() }));
    d.rules.set(ruleId, (d.rules.get(ruleId) ?? 0) + 1);
    this.publish(ks, d);
  }

  private decRef(ks: string, ruleId: number): void {
    const d = this.desired.get(ks);
    if (d === undefined) return;
    const n = (d.rules.get(ruleId) ?? 0) - 1;
    if (n > 0) d.rules.set(ruleId, n);
    else d.rules.delete(ruleId);
    if (d.rules.size === 0) this.desired.delete(ks);
    this.publish(ks, d.rules.size === 0 ? undefined : d);
  }

  /**
   * Makes the public entry reflect `d`. Of several rules allowing the same key, the first in
   * (namespace, policy, direction, index) order is reported: independent of history, so every
   * agent names the same rule for the same flow.
   */
  private publish(ks: string, d: DesiredState | undefined): void {
    const current = this.publicDesired.get(ks);
    let ruleId: number | undefined;
    let rank: string | undefined;
    if (d !== undefined)
      for (const id of d.rules.keys()) {
        const r = d.rules.size === 1 ? undefined : this.ruleRank(id);
        if (ruleId === undefined || (r !== undefined && rank !== undefined && r < rank)) {
          ruleId = id;
          rank = r;
        }
      }
    if (current?.entry.ruleId === ruleId) return;
    const tx = this.txn();
    if (!tx.keys.has(ks)) tx.keys.set(ks, current);
    if (d === undefined || ruleId === undefined) this.publicDesired.delete(ks);
    else this.publicDesired.set(ks, { key: d.key, entry: { ruleId, flags: 0 } });
  }

  private ruleRank(id: number): string {
    const r = this.ruleIds.lookup(id);
    return r === undefined ? "" : `${r.namespace}\u0000${r.policy}\u0000${r.direction}\u0000${String(r.index).padStart(6, "0")}`;
  }

  /** Replaces what (E, R, atom) contributes with `keys`. */
  private setAtom(e: EndpointState, r: RuleState, atom: string, keys: readonly PolicyKey[]): void {
    this.txn().endpoints.add(e.pod.ip);
    let perRule = e.contrib.get(r);
    const old = perRule?.get(atom) ?? EMPTY;
    if (old.length === 0 && keys.length === 0) return;
    const next = new Map<string, PolicyKey>();
    for (const k of keys) next.set(policyKeyString(k), k);
    if (old.length === next.size && old.every((s) => next.has(s))) return;
    const oldSet = new Set(old);
    for (const s of old) if (!next.has(s)) this.decRef(s, r.id);
    for (const [s, k] of next) if (!oldSet.has(s)) this.incRef(s, k, r.id);
    if (next.size === 0) {
      perRule?.delete(atom);
      if (perRule !== undefined && perRule.size === 0) e.contrib.delete(r);
    } else {
      if (perRule === undefined) e.contrib.set(r, (perRule = new Map()));
      perRule.set(atom, [...next.keys()]);
    }
  }

  /** Port tuples of R at endpoint E for identity/CIDR/any peers (named ingress ports resolved on E). */
  private tuples(e: EndpointState, r: RuleState): PortTuple[] {
    const out = new Map<string, PortTuple>();
    for (const spec of r.compiled.ports) {
      if (spec.kind === "named" && r.compiled.direction === "egress") continue;
      for (const t of portTuples(spec, e.pod.namedPorts)) out.set(`${t.protocol}|${t.port}|${t.portBits}`, t);
    }
    return [...out.values()];
  }

  private peerKeys(e: EndpointState, r: RuleState, peerIdentity: number, tuples: readonly PortTuple[]): PolicyKey[] {
    return tuples.map((t) => ({ endpointIp: e.pod.ip, direction: r.compiled.direction, peerIdentity, ...t }));
  }

  private destMatches(r: RuleState, d: PodState): boolean {
    return r.compiled.anyPeer || r.identities.has(d.identity) || r.compiled.blocks.some((b) => blockAllowsIp(b, d.ip));
  }

  /** Address-keyed egress keys of R at E towards destination pod D (its named ports). */
  private destKeys(e: EndpointState, r: RuleState, d: PodState): PolicyKey[] {
    if (!this.destMatches(r, d)) return [];
    const out: PolicyKey[] = [];
    for (const spec of r.namedEgress) {
      const port = d.namedPorts.get(namedPortKey(spec.protocol, spec.name));
      if (port !== undefined)
        out.push({ endpointIp: e.pod.ip, direction: "egress", peerIdentity: 0, peerIp: d.ip, protocol: spec.protocol, port, portBits: 16 });
    }
    return out;
  }

  /** Every atom of R at E, from scratch. */
  private computeRule(e: EndpointState, r: RuleState): Map<string, PolicyKey[]> {
    const atoms = new Map<string, PolicyKey[]>();
    const tuples = this.tuples(e, r);
    if (tuples.length > 0) {
      if (r.compiled.anyPeer) atoms.set("any", this.peerKeys(e, r, 0, tuples));
      for (const x of r.identities) atoms.set(`i:${x.canonical}`, this.peerKeys(e, r, x.id, tuples));
      for (const c of r.cidrs) atoms.set(`c:${c.text}`, this.peerKeys(e, r, c.id, tuples));
    }
    for (const d of this.destCandidates(r)) {
      const keys = this.destKeys(e, r, d);
      if (keys.length > 0) atoms.set(`d:${d.key}`, keys);
    }
    return atoms;
  }

  /** Pods that might be destinations of R's named egress ports: those declaring one of the names. */
  private destCandidates(r: RuleState): Set<PodState> {
    const out = new Set<PodState>();
    for (const spec of r.namedEgress)
      for (const d of this.namedPortPods.get(namedPortKey(spec.protocol, spec.name)) ?? []) out.add(d);
    return out;
  }

  /** Brings (E, R) up to date, touching only atoms whose keys differ. */
  private refreshRule(e: EndpointState, r: RuleState): void {
    const atoms = this.computeRule(e, r);
    const old = e.contrib.get(r);
    if (old !== undefined) for (const a of [...old.keys()]) if (!atoms.has(a)) this.setAtom(e, r, a, []);
    for (const [a, keys] of atoms) this.setAtom(e, r, a, keys);
  }

  private removeRule(e: EndpointState, r: RuleState): void {
    const old = e.contrib.get(r);
    if (old !== undefined) for (const a of [...old.keys()]) this.setAtom(e, r, a, []);
  }

  /** Local endpoints R applies to: the local pods of the identities its policy selects. */
  private *endpointsOf(r: RuleState): Generator<EndpointState> {
    for (const x of r.policy.subjects)
      for (const p of x.localPods) {
        const e = this.endpoints.get(p.key);
        if (e !== undefined) yield e;
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
    const labels = Object.freeze(stringLabels(pod.metadata?.labels));
    const namedPorts = containerNamedPorts(pod);
    const local = this.nodeName === undefined || pod.spec?.nodeName === this.nodeName;
    const fingerprint = JSON.stringify([ip, local, [...namedPorts].sort()]);
    return { key: `${namespace}/${name}`, namespace, name, ip, local, labels, namedPorts, fingerprint };
  }

  /** Moves a pod from its old state to `info` (undefined = gone). */
  private setPod(key: string, info: PodInfo | undefined): void {
    const old = this.pods.get(key);
    if (info === undefined && old === undefined) return;
    let identity: IdentityState | undefined;
    if (info !== undefined) {
      const nsLabels = this.namespaceLabels(info.namespace);
      const text = podIdentityText(info.namespace, nsLabels, info.labels);
      if (old !== undefined && old.fingerprint === info.fingerprint && old.identity.canonical === text) return;
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
    if (info !== undefined && identity !== undefined) this.attachPod({ ...info, identity }, keep ? endpoint : undefined);
    if (old !== undefined && old.identity !== identity && old.identity.pods.size === 0) this.dropIdentity(old.identity);
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
      if (endpoint !== undefined && !keepEndpoint) for (const r of [...endpoint.contrib.keys()]) this.removeRule(endpoint, r);
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
        const e: EndpointState = { pod: p, contrib: new Map() };
        this.endpoints.set(p.key, e);
        for (const pol of p.identity.subjectOf) for (const r of pol.rules) this.refreshRule(e, r);
      }
    }
    this.refreshDestination(p, true);
  }

  /** Re-derives the address-keyed entries towards pod D in every rule naming one of its ports. */
  private refreshDestination(d: PodState, present: boolean): void {
    const rules = new Set<RuleState>();
    for (const k of d.namedPorts.keys()) for (const r of this.namedEgressRules.get(k) ?? []) rules.add(r);
    for (const r of rules)
      for (const e of this.endpointsOf(r)) this.setAtom(e, r, `d:${d.key}`, present ? this.destKeys(e, r, d) : []);
  }

  // ---------------------------------------------------------------- identities

  private ensureIdentity(text: string, namespace: string, namespaceLabels: Labels, labels: Labels): IdentityState | undefined {
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
      if (peerMatches(ref.peer, x)) this.joinRule(ref.rule, x);
    return x;
  }

  private dropIdentity(x: IdentityState): void {
    for (const r of [...x.peerOf]) this.leaveRule(r, x);
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
    for (const m of moved) if (this.publicIdentities.get(m.from) !== undefined) this.publicIdentities.delete(m.from);
    moved.forEach((m, i) => {
      const x = xs[i] as IdentityState;
      x.id = m.to;
      this.publicIdentities.set(m.to, Object.freeze({ namespace: x.namespace, labels: x.labels, namespaceLabels: x.namespaceLabels }));
    });
    this.txn().other = true;
    for (const x of xs)
      for (const r of x.peerOf) for (const e of this.endpointsOf(r)) this.setAtom(e, r, `i:${x.canonical}`, this.identityAtom(e, r, x));
  }

  private identityAtom(e: EndpointState, r: RuleState, x: IdentityState): PolicyKey[] {
    const tuples = this.tuples(e, r);
    return tuples.length === 0 ? [] : this.peerKeys(e, r, x.id, tuples);
  }

  /** X now matches one of R's selector peers. */
  private joinRule(r: RuleState, x: IdentityState): void {
    if (r.identities.has(x)) return;
    r.identities.add(x);
    x.peerOf.add(r);
    for (const e of this.endpointsOf(r)) {
      this.setAtom(e, r, `i:${x.canonical}`, this.identityAtom(e, r, x));
      if (r.namedEgress.length > 0) for (const d of x.pods) this.setAtom(e, r, `d:${d.key}`, this.destKeys(e, r, d));
    }
  }

  private leaveRule(r: RuleState, x: IdentityState): void {
    if (!r.identities.delete(x)) return;
    x.peerOf.delete(r);
    for (const e of this.endpointsOf(r)) {
      this.setAtom(e, r, `i:${x.canonical}`, []);
      if (r.namedEgress.length > 0) for (const d of x.pods) this.setAtom(e, r, `d:${d.key}`, this.destKeys(e, r, d));
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
      if (e !== undefined) for (const r of pol.rules) this.refreshRule(e, r);
    }
  }

  private removeSubject(pol: PolicyState, x: IdentityState): void {
    for (const p of x.localPods) this.touchAddress(p.ip);
    for (const p of x.localPods) {
      const e = this.endpoints.get(p.key);
      if (e !== undefined) for (const r of pol.rules) this.removeRule(e, r);
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
    const c: CidrState = { prefix: p, text, id, refs: 1, rules: new Set() };
    this.cidrTrie.set(p, c);
    this.publicCidrs.set(text, id);
    this.txn().other = true;
    // Rules whose block cidr contains the new prefix may now allow it.
    for (const { prefix: outer } of this.cidrTrie.containing(p))
      for (const r of this.rulesByBlockCidr.get(cidrIdentityText(outer)) ?? [])
        if (r.compiled.blocks.some((b) => blockAllowsPrefix(b, p))) this.attachCidr(r, c);
  }

  private releasePrefix(p: Prefix): void {
    const c = this.cidrTrie.get(p);
    if (c === undefined) return;
    if (--c.refs > 0) return;
    for (const r of [...c.rules]) {
      r.cidrs.delete(c);
      for (const e of this.endpointsOf(r)) this.setAtom(e, r, `c:${c.text}`, []);
    }
    c.rules.clear();
    this.cidrTrie.delete(p);
    this.publicCidrs.delete(c.text);
    this.txn().other = true;
    this.renumberCidrs(this.cidrIds.remove(c.text));
  }

  private attachCidr(r: RuleState, c: CidrState): void {
    if (r.cidrs.has(c)) return;
    r.cidrs.add(c);
    c.rules.add(r);
    for (const e of this.endpointsOf(r)) {
      const tuples = this.tuples(e, r);
      this.setAtom(e, r, `c:${c.text}`, tuples.length === 0 ? [] : this.peerKeys(e, r, c.id, tuples));
    }
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
      for (const r of c.rules)
        for (const e of this.endpointsOf(r)) {
          const tuples = this.tuples(e, r);
          this.setAtom(e, r, `c:${c.text}`, tuples.length === 0 ? [] : this.peerKeys(e, r, c.id, tuples));
        }
  }

  // ---------------------------------------------------------------- policies

  private ruleStillUsed(compiled: CompiledPolicy, ref: RuleRef): boolean {
    return compiled.rules.some((r) => r.direction === ref.direction && r.index === ref.index);
  }

  private addPolicy(compiled: CompiledPolicy): void {
    const pol: PolicyState = { compiled, rules: [], subjects: new Set(), prefixes: [] };
    this.policies.set(compiled.key, pol);
    let index = this.subjectIndex.get(compiled.namespace);
    if (index === undefined) this.subjectIndex.set(compiled.namespace, (index = new SelectorIndex()));
    index.add(pol, selectorAnchors(compiled.selector));
    this.txn().other = true;

    // Known prefixes first, so that the new rules see them all below.
    for (const rule of compiled.rules)
      for (const b of rule.blocks)
        for (const p of [b.cidr, ...b.except]) {
          pol.prefixes.push(p);
          this.acquirePrefix(p);
        }

    for (const rule of compiled.rules) {
      const ref: RuleRef = { namespace: compiled.namespace, policy: compiled.name, direction: rule.direction, index: rule.index };
      const r: RuleState = {
        id: this.ruleIds.acquire(ref),
        ref,
        policy: pol,
        compiled: rule,
        identities: new Set(),
        cidrs: new Set(),
        namedEgress:
          rule.direction === "egress"
            ? rule.ports.filter((s): s is Extract<PortSpec, { kind: "named" }> => s.kind === "named")
            : [],
        peerRefs: [],
      };
      pol.rules.push(r);
      for (const peer of rule.peers) {
        const pr: PeerRef = { rule: r, peer };
        r.peerRefs.push(pr);
        this.peerIndex.add(pr, peerAnchors(peer));
        for (const x of this.identitiesMatching(peer)) {
          r.identities.add(x);
          x.peerOf.add(r);
        }
      }
      for (const b of rule.blocks) {
        addTo(this.rulesByBlockCidr, cidrIdentityText(b.cidr), r);
        for (const { prefix, value } of this.cidrTrie.within(b.cidr))
          if (blockAllowsPrefix(b, prefix)) {
            r.cidrs.add(value);
            value.rules.add(r);
          }
      }
      for (const s of r.namedEgress) addTo(this.namedEgressRules, namedPortKey(s.protocol, s.name), r);
    }

    for (const x of this.identitiesByNs.get(compiled.namespace) ?? [])
      if (matches(compiled.selector, x.labels)) this.addSubject(pol, x);
  }

  private removePolicy(pol: PolicyState): void {
    for (const x of [...pol.subjects]) this.removeSubject(pol, x);
    this.subjectIndex.get(pol.compiled.namespace)?.delete(pol);
    for (const r of pol.rules) {
      for (const pr of r.peerRefs) this.peerIndex.delete(pr);
      for (const x of r.identities) x.peerOf.delete(r);
      for (const b of r.compiled.blocks) deleteFrom(this.rulesByBlockCidr, cidrIdentityText(b.cidr), r);
      for (const c of r.cidrs) c.rules.delete(r);
      for (const s of r.namedEgress) deleteFrom(this.namedEgressRules, namedPortKey(s.protocol, s.name), r);
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
        let any = false;
        for (const x of xs) if (x.namespaceLabels !== this.namespaces.get(ns)) any = true;
        if (!any) continue;
      }
      for (const x of xs) if (peerMatches(peer, x)) yield x;
    }
  }

  // ---------------------------------------------------------------- introspection for tests

  /** Internal counters: sizes of the engine's indexes (for tests and metrics). */
  stats(): { pods: number; identities: number; policies: number; endpoints: number; keys: number; cidrs: number } {
    return {
      pods: this.pods.size,
      identities: this.identityByText.size,
      policies: this.policies.size,
      endpoints: this.endpoints.size,
      keys: this.publicDesired.size,
      cidrs: this.publicCidrs.size,
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

