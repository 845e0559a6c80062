/**
 * Rule ids: the small number a policy-map entry carries so that a verdict event can name the
 * NetworkPolicy rule that allowed a flow. Stable per (namespace/name, direction, index) for as long
 * as the rule exists; a freed id is reused (smallest first) only once nothing holds it. 0 = none.
 */
import type { Direction } from "../maps/policy.js";

/** Where a rule lives. */
export interface RuleRef {
  readonly namespace: string;
  readonly policy: string;
  readonly direction: Direction;
  readonly index: number;
}

function refKey(r: RuleRef): string {
  return `${r.namespace}/${r.policy}|${r.direction}|${r.index}`;
}

/** Hands out and takes back rule ids. Owned by one engine. */
export class RuleIds {
  private readonly byKey = new Map<string, number>();
  private readonly byId = new Map<number, RuleRef>();
  /** Freed ids below `next`, kept sorted descending so the smallest is popped first. */
  private free: number[] = [];
  private next = 1;

  /** The id of `ref`, allocating one when it has none. */
  acquire(ref: RuleRef): number {
    const k = refKey(ref);
    const have = this.byKey.get(k);
    if (have !== undefined) return have;
    const id = this.free.length > 0 ? (this.free.pop() as number) : this.next++;
    this.byKey.set(k, id);
    this.byId.set(id, {
      namespace: ref.namespace,
      policy: ref.policy,
      direction: ref.direction,
      index: ref.index,
    });
    return id;
  }

  /** Frees the id of `ref`, if it has one. */
  release(ref: RuleRef): void {
    const k = refKey(ref);
    const id = this.byKey.get(k);
    if (id === undefined) return;
    this.byKey.delete(k);
    this.byId.delete(id);
    // Keep `free` sorted descending (binary search, one splice) so pop() yields the smallest.
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.free[mid] as number) > id) lo = mid + 1;
      else hi = mid;
    }
    this.free.splice(lo, 0, id);
  }

  /** The id `ref` holds, without allocating. */
  idOf(ref: RuleRef): number | undefined {
    return this.byKey.get(refKey(ref));
  }

  /** The rule holding `id`; undefined for 0 and for free ids. */
  lookup(id: number): RuleRef | undefined {
    return this.byId.get(id);
  }

  /** Number of ids held. */
  get size(): number {
    return this.byId.size;
  }
}
