/**
 * Security identities without a coordination service.
 *
 * Every agent derives the same number for the same thing from its canonical text alone: a hash
 * picks a home slot in the identity range, and collisions are settled by a rule that depends only
 * on the *set* of texts present, never on the order they were seen:
 *
 *   the assignment is what inserting every present text, in code-unit order, into an empty
 *   linear-probing table would give.
 *
 * So among texts whose probes meet, the smaller text keeps its home slot and the larger ones move
 * on to the next free slot. Two agents that see the same pods (and the same policies, for CIDR
 * identities) compute the same numbers; the numbers travel between nodes in the VXLAN VNI.
 *
 * Trade-off, accepted on purpose: when a new text appears whose probe sequence meets an existing
 * larger text, that larger text is renumbered (and when a text disappears, larger texts behind it
 * move back). Renumbering changes policy keys and ipcache entries of the pods concerned for the
 * time the agents take to converge; with 2^23 slots and a good hash it needs a hash collision
 * within a cluster's few thousand label sets, which is rare (birthday bound ~ n²/2^24), but it is
 * not impossible. A coordinated allocator (a CRD or a key-value store) would avoid it at the cost
 * of a dependency the agent does not otherwise need. docs/policy.md says the same.
 */
import { createHash } from "node:crypto";
import { Identity } from "../maps/identities.js";
import { formatPrefix, type Prefix } from "../maps/net.js";
import { compareText, type Labels } from "./selector.js";

/** Maps a canonical text to a non-negative integer; the home slot is this modulo the range size. */
export type IdentityHash = (canonical: string) => number;

/** Default hash: the first 48 bits of SHA-256, stable across agents, versions and platforms. */
export const sha256Hash: IdentityHash = (canonical) =>
  createHash("sha256").update(canonical, "utf8").digest().readUIntBE(0, 6);

/** An identity that changed number because another text appeared or disappeared. */
export interface Renumbered {
  readonly canonical: string;
  readonly from: number;
  readonly to: number;
}

/**
 * Numbers in [first, last] for canonical texts, order-independent (see the file comment).
 * Insert and remove touch one cluster of occupied slots only. Throws RangeError on a full range.
 */
export class OrderedProbingAllocator {
  private readonly slots = new Map<number, string>();
  private readonly offsets = new Map<string, number>();
  private readonly span: number;

  constructor(
    readonly first: number,
    readonly last: number,
    private readonly hash: IdentityHash = sha256Hash,
  ) {
    if (!Number.isInteger(first) || !Number.isInteger(last) || last < first)
      throw new RangeError(`bad range ${first}..${last}`);
    this.span = last - first + 1;
  }

  /** Number of texts holding a number. */
  get size(): number {
    return this.offsets.size;
  }

  /** Is every number of the range taken? */
  get full(): boolean {
    return this.offsets.size >= this.span;
  }

  /** The number of `canonical`, if present. */
  idOf(canonical: string): number | undefined {
    const o = this.offsets.get(canonical);
    return o === undefined ? undefined : this.first + o;
  }

  /** The text holding `id`, if any. */
  textOf(id: number): string | undefined {
    return this.slots.get(id - this.first);
  }

  private home(canonical: string): number {
    const h = this.hash(canonical);
    if (!Number.isFinite(h)) throw new RangeError(`identity hash returned ${h}`);
    const n = Math.floor(Math.abs(h)) % this.span;
    return n;
  }

  private next(o: number): number {
    return o + 1 === this.span ? 0 : o + 1;
  }

  private prev(o: number): number {
    return o === 0 ? this.span - 1 : o - 1;
  }

  /** Slots from `start` onwards while occupied (the run from `start`). */
  private runFrom(start: number): number[] {
    const out: number[] = [];
    for (let o = start; this.slots.has(o) && out.length < this.span; o = this.next(o)) out.push(o);
    return out;
  }

  /** Start of the run of occupied slots containing occupied slot `o`. */
  private runStart(o: number): number {
    let start = o;
    for (let n = 0; n < this.span && this.slots.has(this.prev(start)); n++) start = this.prev(start);
    return start;
  }

  /** Clears `run` and places `texts` back in code-unit order; reports who moved. */
  private replace(run: readonly number[], texts: string[]): Renumbered[] {
    const before = new Map<string, number>();
    for (const o of run) {
      const t = this.slots.get(o) as string;
      before.set(t, o);
      this.slots.delete(o);
      this.offsets.delete(t);
    }
    texts.sort(compareText);
    const moved: Renumbered[] = [];
    for (const t of texts) {
      let o = this.home(t);
      while (this.slots.has(o)) o = this.next(o);
      this.slots.set(o, t);
      this.offsets.set(t, o);
      const was = before.get(t);
      if (was !== undefined && was !== o)
        moved.push({ canonical: t, from: this.first + was, to: this.first + o });
    }
    return moved;
  }

  /**
   * Gives `canonical` its number (idempotent). `moved` lists the other texts whose number changed
   * because of it. Throws RangeError when the range is full.
   */
  insert(canonical: string): { id: number; moved: Renumbered[] } {
    const existing = this.idOf(canonical);
    if (existing !== undefined) return { id: existing, moved: [] };
    if (this.full) throw new RangeError(`identity range ${this.first}..${this.last} is full`);
    const h = this.home(canonical);
    if (!this.slots.has(h)) {
      this.slots.set(h, canonical);
      this.offsets.set(canonical, h);
      return { id: this.first + h, moved: [] };
    }
    // Elements of a run all live in it, at or after their home: re-placing the run containing the
    // home slot (plus the newcomer) reproduces sorted insertion. See the file comment.
    const run = this.runFrom(this.runStart(h));
    const texts = run.map((o) => this.slots.get(o) as string);
    texts.push(canonical);
    const moved = this.replace(run, texts);
    return { id: this.idOf(canonical) as number, moved };
  }

  /** Frees `canonical`'s number (idempotent); returns the texts that moved because of it. */
  remove(canonical: string): Renumbered[] {
    const o = this.offsets.get(canonical);
    if (o === undefined) return [];
    const run = this.runFrom(this.runStart(o));
    const texts = run.map((s) => this.slots.get(s) as string).filter((t) => t !== canonical);
    return this.replace(run, texts);
  }

  /** Every (text, number) pair, for tests and diagnostics. */
  entries(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [t, o] of this.offsets) out.set(t, this.first + o);
    return out;
  }
}

/** The label key the API server sets on every namespace to its name. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

function sortedPairs(labels: Labels): [string, string][] {
  return Object.entries(labels).sort((a, b) => compareText(a[0], b[0]));
}

/**
 * Canonical text of a pod identity: namespace, namespace labels and pod labels, keys in code-unit
 * order. JSON makes it unambiguous whatever the labels contain.
 */
export function podIdentityText(namespace: string, namespaceLabels: Labels, labels: Labels): string {
  return JSON.stringify([namespace, sortedPairs(namespaceLabels), sortedPairs(labels)]);
}

/** Canonical text of a CIDR identity: the normalised prefix. */
export function cidrIdentityText(p: Prefix): string {
  return formatPrefix(p);
}

/** Allocator over the pod identity range (256..0x7fffff). */
export function podIdentityAllocator(hash?: IdentityHash): OrderedProbingAllocator {
  return new OrderedProbingAllocator(Identity.firstPod, Identity.lastPod, hash);
}

/** Allocator over the CIDR identity range (0x800000..0xffffff). */
export function cidrIdentityAllocator(hash?: IdentityHash): OrderedProbingAllocator {
  return new OrderedProbingAllocator(Identity.firstCidr, Identity.lastCidr, hash);
}
