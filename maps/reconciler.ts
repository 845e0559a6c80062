/**
 * Diff-then-apply for one BPF map. The reconciler keeps a shadow of what it believes the kernel
 * holds; `resync()` re-reads the kernel (at start, when adopting pinned maps, and periodically),
 * `apply(desired)` writes only the difference: upserts first, deletes after, so an entry is never
 * missing while it is being replaced. Never flush-and-refill.
 */
import type { MapCodec } from "./codec.js";

/** What a reconciler needs of a map: typed maps implement it, and so does the fake in tests. */
export interface MapPort<K, V> {
  entries(): Iterable<[K, V]>;
  /**
   * Up to `max` entries after `after` (from the first when undefined), values as the kernel's
   * bytes; for audits that read a big map in slices. Maps without it are audited through
   * `entries()`. Throws SysError.
   */
  readChunk?(after: K | undefined, max: number): { entries: [K, Uint8Array][]; done: boolean };
  set(key: K, value: V): void;
  /**
   * Optional: stores the first `count` entries packed in `keys` and `values` (each the codec's
   * bytes, back to back) in order, in one call (a batch syscall), stopping at the first that
   * fails; returns how many were stored and that failure. Never throws for an entry.
   */
  setPacked?(keys: Uint8Array, values: Uint8Array, count: number): { written: number; error?: unknown };
  delete(key: K): boolean;
  readonly maxEntries: number;
}

export interface ApplyResult {
  upserted: number;
  deleted: number;
  /** Entries that could not be written (map full, or another error), with the first error. */
  failed: number;
  firstError?: unknown;
  /** Entries in the map after applying. */
  size: number;
  /** Desired entries beyond the map's capacity. */
  overflow: number;
}

/** Entries per batch write. */
const BATCH_ENTRIES = 8192;

export class MapReconciler<K, V> {
  readonly #port: MapPort<K, V>;
  readonly #codec: MapCodec<K, V>;
  readonly #keyString: (k: K) => string;
  /**
   * keyString → encoded value (hex) as last written or read. `seen`: the audit epoch that found
   * it in the kernel, or minus the epoch current when it was written (an audit trusts those).
   */
  #shadow = new Map<string, ShadowEntry<K>>();
  #epoch = 0;

  constructor(port: MapPort<K, V>, codec: MapCodec<K, V>, keyString: (k: K) => string) {
    this.#port = port;
    this.#codec = codec;
    this.#keyString = keyString;
  }

  get name(): string {
    return this.#codec.name;
  }

  /** Re-reads the kernel map into the shadow. Returns the number of entries. */
  resync(): number {
    const shadow = new Map<string, ShadowEntry<K>>();
    for (const [k, v] of this.#port.entries())
      shadow.set(this.#keyString(k), { key: k, value: this.#encode(v), seen: -this.#epoch });
    this.#shadow = shadow;
    return shadow.size;
  }

  get size(): number {
    return this.#shadow.size;
  }

  #encode(v: V): string {
    return this.#codec.value.encode(v).toString("hex");
  }

  /** Writes the difference between `desired` and the shadow. Never throws for a single entry. */
  apply(desired: ReadonlyMap<string, { key: K; entry: V }>): ApplyResult {
    const result: ApplyResult = { upserted: 0, deleted: 0, failed: 0, size: 0, overflow: 0 };
    const capacity = this.#port.maxEntries;
    const upserts: [string, K, V, string][] = [];
    for (const [ks, { key, entry }] of desired) {
      const enc = this.#encode(entry);
      if (this.#shadow.get(ks)?.value !== enc) upserts.push([ks, key, entry, enc]);
    }
    const deletes: [string, K][] = [];
    for (const [ks, { key }] of this.#shadow) if (!desired.has(ks)) deletes.push([ks, key]);

    // When the map is near full, deleting first is the only way to make room; otherwise upsert
    // first so nothing disappears before its replacement exists.
    const newKeys = upserts.filter(([ks]) => !this.#shadow.has(ks)).length;
    const deleteFirst = this.#shadow.size + newKeys > capacity;
    const runDeletes = () => {
      for (const [ks, key] of deletes) this.#remove(result, ks, key);
    };
    if (deleteFirst) runDeletes();
    this.#writeMany(result, upserts);
    if (!deleteFirst) runDeletes();
    result.size = this.#shadow.size;
    result.overflow = Math.max(0, desired.size - capacity);
    return result;
  }
  /**
   * Upserts in order, through the port's batch write when it has one (a whole first fill is a
   * few syscalls instead of one per entry). An entry the batch stopped at is written alone, so
   * that a failure is counted per entry as without batches and the rest still get written.
   */
  #writeMany(result: ApplyResult, upserts: readonly [string, K, V, string][]): void {
    const port = this.#port;
    if (port.setPacked === undefined || upserts.length < 2) {
      for (const [ks, key, value, enc] of upserts) this.#write(result, ks, key, value, enc);
      return;
    }
    const keySize = this.#codec.key.layout.size;
    const valueSize = this.#codec.value.layout.size;
    const batch = Math.min(BATCH_ENTRIES, upserts.length);
    const keys = Buffer.alloc(batch * keySize);
    const values = Buffer.alloc(batch * valueSize);
    let i = 0;
    while (i < upserts.length) {
      const count = Math.min(batch, upserts.length - i);
      let written: number | undefined;
      try {
        for (let j = 0; j < count; j++) {
          const [, key, , enc] = upserts[i + j] as [string, K, V, string];
          keys.set(this.#codec.key.encode(key), j * keySize);
          // The value's bytes are already in the shadow's hex: written straight into the batch.
          values.write(enc, j * valueSize, valueSize, "hex");
        }
        written = port.setPacked(keys, values, count).written;
      } catch {
        // A key the codec refuses (or a port that cannot take the batch): each is tried alone.
      }
      if (written === undefined) {
        for (const [ks, key, value, enc] of upserts.slice(i, i + count))
          this.#write(result, ks, key, value, enc);
        i += count;
        continue;
      }
      for (let j = 0; j < written; j++) {
        const [ks, key, , enc] = upserts[i + j] as [string, K, V, string];
        this.#shadow.set(ks, { key, value: enc, seen: -this.#epoch });
        result.upserted++;
      }
      i += written;
      const stopped = upserts[i];
      if (written < count && stopped !== undefined) {
        const [ks, key, value, enc] = stopped;
        this.#write(result, ks, key, value, enc);
        i++;
      }
    }
  }

  /** One upsert into the map and the shadow, counted in `result` (a failure too, not thrown). */
  #write(result: ApplyResult, ks: string, key: K, value: V, enc: string): void {
    try {
      this.#port.set(key, value);
      this.#shadow.set(ks, { key, value: enc, seen: -this.#epoch });
      result.upserted++;
    } catch (err) {
      result.failed++;
      result.firstError ??= err;
    }
  }

  /** One delete from the map and the shadow, counted in `result` (a failure too, not thrown). */
  #remove(result: ApplyResult, ks: string, key: K): void {
    try {
      this.#port.delete(key);
      this.#shadow.delete(ks);
      result.deleted++;
    } catch (err) {
      result.failed++;
      result.firstError ??= err;
    }
  }

  /**
   * Writes the difference between `desired` and the shadow for `keys` only: a key in `desired` is
   * upserted when its value differs, a key absent from it is deleted if the shadow holds it. The
   * cost is proportional to `keys`, not to the map; for events that know what they changed.
   * `size` and `overflow` are as after a whole apply when `desired` holds every desired entry.
   */
  applyChanged(desired: ReadonlyMap<string, { key: K; entry: V }>, keys: Iterable<string>): ApplyResult {
    const result: ApplyResult = { upserted: 0, deleted: 0, failed: 0, size: 0, overflow: 0 };
    const deletes: [string, K][] = [];
    for (const ks of keys) {
      const want = desired.get(ks);
      const have = this.#shadow.get(ks);
      if (want === undefined) {
        if (have !== undefined) deletes.push([ks, have.key]);
        continue;
      }
      const enc = this.#encode(want.entry);
      if (have?.value === enc) continue;
      this.#write(result, ks, want.key, want.entry, enc);
    }
    for (const [ks, key] of deletes) this.#remove(result, ks, key);
    result.size = this.#shadow.size;
    result.overflow = Math.max(0, desired.size - this.#port.maxEntries);
    return result;
  }

  /**
   * Compares the kernel map with the shadow in slices of `chunk` entries, awaiting `pause()`
   * between slices so that events run meanwhile (each slice is synchronous: a write cannot land
   * in the middle of one). Writes nothing: it makes the shadow say what the kernel holds for
   * every entry that drifted (altered, added or removed behind the agent's back) and returns
   * their keys; `applyChanged(desired, keys)` then repairs exactly those. Entries written while
   * the audit runs are trusted. Never rebuilds the shadow or the desired state.
   */
  async audit(opts: AuditOptions): Promise<AuditResult> {
    const epoch = ++this.#epoch;
    const maxChunk = Math.max(1, opts.chunk ?? 512);
    const budgetMs = opts.sliceBudgetMs ?? 4;
    // Slices shrink when one took longer than the budget (a loaded node), and grow back after.
    let chunk = maxChunk;
    const port = this.#port;
    const result: AuditResult = {
      checked: 0,
      altered: 0,
      extra: 0,
      missing: 0,
      keys: [],
      complete: true,
      slices: 0,
      maxSliceMs: 0,
    };
    const fallback = port.readChunk === undefined ? port.entries()[Symbol.iterator]() : undefined;
    // The previous slice's keys, newest last: the walk resumes after the newest still in the map.
    let last: [string, K][] = [];
    let repeats = 0;
    for (;;) {
      const started = performance.now();
      let entries: [K, string][];
      let done: boolean;
      if (fallback !== undefined) {
        entries = [];
        done = false;
        while (entries.length < chunk) {
          const n = fallback.next();
          if (n.done === true) {
            done = true;
            break;
          }
          entries.push([n.value[0], this.#encode(n.value[1])]);
        }
      } else {
        let after: K | undefined;
        for (let i = last.length - 1; i >= 0 && after === undefined; i--) {
          const [ks, k] = last[i] as [string, K];
          if (this.#shadow.has(ks)) after = k;
        }
        // Every key of the last slice deleted since: the walk starts over (repeats count it).
        const c = (port.readChunk as NonNullable<MapPort<K, V>["readChunk"]>)(after, chunk);
        entries = c.entries.map(([k, v]) => [
          k,
          Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex"),
        ]);
        done = c.done;
      }
      last = [];
      for (const [k, hex] of entries) {
        const ks = this.#keyString(k);
        last.push([ks, k]);
        const have = this.#shadow.get(ks);
        if (have === undefined) {
          this.#shadow.set(ks, { key: k, value: hex, seen: epoch });
          result.extra++;
          result.keys.push(ks);
          continue;
        }
        if (have.seen === epoch) {
          repeats++;
          continue;
        }
        have.seen = epoch;
        result.checked++;
        if (have.value !== hex) {
          have.value = hex;
          result.altered++;
          result.keys.push(ks);
        }
      }
      result.slices++;
      const tookMs = performance.now() - started;
      result.maxSliceMs = Math.max(result.maxSliceMs, tookMs);
      if (tookMs > budgetMs) chunk = Math.max(16, chunk >> 1);
      else if (tookMs < budgetMs / 4) chunk = Math.min(maxChunk, chunk * 2);
      if (done) break;
      // The walk keeps starting over (its resume keys deleted under it): give up for this round.
      if (repeats > this.#shadow.size + maxChunk || !(await opts.pause())) {
        result.complete = false;
        return result;
      }
    }
    // What was written and neither found by the walk nor written since is gone from the kernel.
    let n = 0;
    let started = performance.now();
    for (const [ks, e] of this.#shadow) {
      if (e.seen !== epoch && e.seen !== -epoch) {
        this.#shadow.delete(ks);
        result.missing++;
        result.keys.push(ks);
      }
      if (++n % (maxChunk * 8) === 0) {
        result.maxSliceMs = Math.max(result.maxSliceMs, performance.now() - started);
        if (!(await opts.pause())) {
          result.complete = false;
          return result;
        }
        started = performance.now();
      }
    }
    return result;
  }
}

interface ShadowEntry<K> {
  key: K;
  value: string;
  seen: number;
}

export interface AuditOptions {
  /** Entries read per slice at most (default 512). */
  chunk?: number;
  /** A slice that took longer (wall time, ms; default 4) halves the next one, down to 16 entries. */
  sliceBudgetMs?: number;
  /** Awaited between slices; resolving false stops the audit (reported incomplete). */
  pause: () => Promise<boolean>;
}

/** What an audit found; `keys` are the drifted entries' keyStrings, for applyChanged. */
export interface AuditResult {
  /** Kernel entries compared with what was written. */
  checked: number;
  /** Entries whose value in the kernel differs from what was written. */
  altered: number;
  /** Entries in the kernel that nothing here wrote. */
  extra: number;
  /** Entries written that the kernel no longer holds. */
  missing: number;
  keys: string[];
  /** False when stopped, or when the walk kept starting over; what it found is reported still. */
  complete: boolean;
  slices: number;
  /** The longest slice: how long an event could wait behind the audit. */
  maxSliceMs: number;
}

/** An in-memory MapPort, for reconciler tests and the fake datapath. */
export class FakeMapPort<K, V> implements MapPort<K, V> {
  readonly entriesByKey = new Map<string, [K, V]>();
  readonly maxEntries: number;
  readonly #keyString: (k: K) => string;
  writes = 0;

  constructor(keyString: (k: K) => string, maxEntries = 1 << 20) {
    this.#keyString = keyString;
    this.maxEntries = maxEntries;
  }

  entries(): Iterable<[K, V]> {
    return this.entriesByKey.values();
  }

  set(key: K, value: V): void {
    const ks = this.#keyString(key);
    if (!this.entriesByKey.has(ks) && this.entriesByKey.size >= this.maxEntries) {
      throw Object.assign(new Error("map full"), { code: "E2BIG" });
    }
    this.writes++;
    this.entriesByKey.set(ks, [key, value]);
  }

  delete(key: K): boolean {
    this.writes++;
    return this.entriesByKey.delete(this.#keyString(key));
  }
}
