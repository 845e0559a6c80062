/**
 * Expected-connectivity matrices, built the way upstream's Reachability helpers build them
 * (kubernetes/kubernetes test/e2e/network/netpol/reachability.go and truthtable.go): start from a
 * default for every ordered pair, then overwrite pairs in call order. Later calls win, so the order of
 * calls in a case matters exactly as it does upstream.
 */
import { ALL_PODS, splitPodKey } from "./model.js";

/** from "ns/pod" → to "ns/pod" → connection expected. */
export type Matrix = Record<string, Record<string, boolean>>;

/** Matches pods by namespace and/or pod name; an omitted field matches everything (upstream's Peer). */
export interface Peer {
  namespace?: string;
  pod?: string;
}

function peerMatches(peer: Peer, key: string): boolean {
  const { namespace, pod } = splitPodKey(key);
  return (
    (peer.namespace === undefined || peer.namespace === namespace) &&
    (peer.pod === undefined || peer.pod === pod)
  );
}

export class Reachability {
  readonly #pods: readonly string[];
  readonly #values = new Map<string, Map<string, boolean>>();

  constructor(defaultExpectation = true, pods: readonly string[] = ALL_PODS) {
    this.#pods = pods;
    for (const from of pods) this.#values.set(from, new Map(pods.map((to) => [to, defaultExpectation])));
  }

  #row(from: string): Map<string, boolean> {
    const row = this.#values.get(from);
    if (row === undefined) throw new RangeError(`unknown pod ${from}`);
    return row;
  }

  /** One pair (upstream `Expect`). */
  expect(from: string, to: string, connected: boolean): this {
    const row = this.#row(from);
    if (!row.has(to)) throw new RangeError(`unknown pod ${to}`);
    row.set(to, connected);
    return this;
  }

  /** Every pair whose destination is `to` (upstream `ExpectAllIngress`, i.e. TruthTable.SetAllTo). */
  expectAllIngress(to: string, connected: boolean): this {
    for (const from of this.#pods) this.expect(from, to, connected);
    return this;
  }

  /** Every pair whose source is `from` (upstream `ExpectAllEgress`, i.e. TruthTable.SetAllFrom). */
  expectAllEgress(from: string, connected: boolean): this {
    for (const to of this.#pods) this.expect(from, to, connected);
    return this;
  }

  /** Every pair whose source matches `from` and destination matches `to` (upstream `ExpectPeer`). */
  expectPeer(from: Peer, to: Peer, connected: boolean): this {
    for (const f of this.#pods) {
      if (!peerMatches(from, f)) continue;
      for (const t of this.#pods) if (peerMatches(to, t)) this.expect(f, t, connected);
    }
    return this;
  }

  /** Every pod to itself (upstream `AllowLoopback`). */
  allowLoopback(): this {
    for (const pod of this.#pods) this.expect(pod, pod, true);
    return this;
  }

  /** A fresh plain-object copy, safe to hand out. */
  matrix(): Matrix {
    const out: Matrix = {};
    for (const [from, row] of this.#values) out[from] = Object.fromEntries(row);
    return out;
  }
}

/** A matrix with every pair set to `value`. */
export function uniformMatrix(value: boolean): Matrix {
  return new Reachability(value).matrix();
}

function mark(v: boolean | undefined): string {
  if (v === undefined) return "?";
  return v ? "." : "X";
}

/**
 * Upstream's own picture of a matrix: rows are sources, columns destinations, "." connected, "X" not.
 * Handy in assertion messages.
 */
export function formatMatrix(m: Matrix, pods: readonly string[] = ALL_PODS): string {
  const lines = [["-", ...pods].join("\t")];
  for (const from of pods) {
    const row = m[from];
    lines.push([from, ...pods.map((to) => mark(row?.[to]))].join("\t"));
  }
  return lines.join("\n");
}
