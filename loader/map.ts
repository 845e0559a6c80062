/**
 * BPF maps as raw bytes: lookup, update, delete, iterate, batch, pin. Typed codecs live in maps/;
 * this layer only knows sizes.
 */
import { SysError, check } from "./errors.js";
import { Fd } from "./fd.js";
import { batchOpts, libbpf, mapCreateOpts, sizeOf } from "./ffi.js";
import { Owned } from "./resource.js";

/** Kernel map types Skein uses (enum bpf_map_type). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
export type UpdateFlag = "any" | "noexist" | "exist";
const updateFlags: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

const PERCPU_TYPES = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, 10 /* LRU_PERCPU_HASH */]);
const BATCH_TYPES = new Set<number>([
  MapType.HASH,
  MapType.ARRAY,
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_HASH,
]);

/** Whether this kernel does batch lookups on LPM tries (Linux 6.x does); unknown until tried. */
let lpmBatch: boolean | undefined;
/**
 * Map types whose BPF_MAP_UPDATE_BATCH the kernel refused (ENOTSUPP, or EINVAL before the command
 * existed): found by trying once per type, then written element by element.
 */
const noBatchUpdate = new Set<number>();

/** What a packed update stored: every entry, or those before the first failure and that failure. */
export interface PackedUpdateResult {
  written: number;
  error?: SysError;
}

let possibleCpus: number | undefined;
/** Number of possible CPUs: the stride of per-CPU map values. */
export function numPossibleCpus(): number {
  possibleCpus ??= check(libbpf().libbpf_num_possible_cpus() as number, "count possible cpus");
  return possibleCpus;
}

/** Reads the kernel's description of a map fd. Throws SysError. */
export function mapInfoFromFd(fd: number, object: string): MapInfo {
  const buf = Buffer.alloc(88);
  const len = [buf.length];
  check(libbpf().bpf_obj_get_info_by_fd(fd, buf, len) as number, "get map info", object);
  const nameEnd = buf.indexOf(0, 24);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    keySize: buf.readUInt32LE(8),
    valueSize: buf.readUInt32LE(12),
    maxEntries: buf.readUInt32LE(16),
    flags: buf.readUInt32LE(20),
    name: buf.subarray(24, nameEnd < 0 || nameEnd > 40 ? 40 : nameEnd).toString("latin1"),
  };
}

/** A map fd with its sizes. Owns the fd: close it. */
export class RawMap extends Owned {
  readonly #fd: Fd;
  readonly info: MapInfo;
  /** Bytes one value occupies in user space (per-CPU maps: all CPUs, 8-byte aligned each). */
  readonly valueBytes: number;
  /** Pin path or name, for messages. */
  readonly label: string;

  private constructor(fd: Fd, label: string) {
    super(`map ${label}`);
    this.#fd = fd;
    this.label = label;
    try {
      this.info = mapInfoFromFd(fd.fd, label);
    } catch (err) {
      fd.close();
      throw err;
    }
    this.valueBytes = PERCPU_TYPES.has(this.info.type)
      ? Math.ceil(this.info.valueSize / 8) * 8 * numPossibleCpus()
      : this.info.valueSize;
  }

  /** Takes ownership of an open map fd. */
  static fromFd(fd: Fd, label: string): RawMap {
    return new RawMap(fd, label);
  }

  /** Opens a pinned map. Throws SysError (ENOENT when nothing is pinned there). */
  static openPinned(path: string): RawMap {
    const fd = libbpf().bpf_obj_get(path) as number;
    check(fd, "open pinned map", path);
    return new RawMap(new Fd(fd, `map ${path}`), path);
  }

  /** Opens a map by its kernel id. Throws SysError (ENOENT when it is gone). */
  static fromId(id: number): RawMap {
    const fd = check(libbpf().bpf_map_get_fd_by_id(id) as number, "open map", `id ${id}`);
    return new RawMap(new Fd(fd, `map id ${id}`), `id ${id}`);
  }

  /** Creates a new, unpinned map (tests, scratch maps). Throws SysError. */
  static create(
    type: number,
    name: string,
    keySize: number,
    valueSize: number,
    maxEntries: number,
    mapFlags = 0,
  ): RawMap {
    const opts = {
      sz: sizeOf(mapCreateOpts),
      btf_fd: 0,
      btf_key_type_id: 0,
      btf_value_type_id: 0,
      btf_vmlinux_value_type_id: 0,
      inner_map_fd: 0,
      map_flags: mapFlags,
      map_extra: 0,
      numa_node: 0,
      map_ifindex: 0,
    };
    const fd = libbpf().bpf_map_create(type, name, keySize, valueSize, maxEntries, opts) as number;
    check(fd, "create map", name);
    return new RawMap(new Fd(fd, `map ${name}`), name);
  }

  get fd(): number {
    return this.#fd.fd;
  }

  #checkKey(key: Uint8Array): void {
    if (key.length !== this.info.keySize)
      throw new RangeError(`${this.label}: key is ${key.length} bytes, map wants ${this.info.keySize}`);
  }

  #checkValue(value: Uint8Array): void {
    if (value.length !== this.valueBytes)
      throw new RangeError(`${this.label}: value is ${value.length} bytes, map wants ${this.valueBytes}`);
  }

  /** The value stored under `key`, or undefined when there is none. Throws SysError otherwise. */
  lookup(key: Uint8Array): Buffer | undefined {
    this.#checkKey(key);
    const value = Buffer.alloc(this.valueBytes);
    const ret = libbpf().bpf_map_lookup_elem(this.fd, key, value) as number;
    if (ret === -2 /* ENOENT */) return undefined;
    check(ret, "lookup", this.label);
    return value;
  }

  /** Stores `value` under `key`. Throws SysError (EEXIST for noexist, ENOENT for exist, E2BIG when full). */
  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = "any"): void {
    this.#checkKey(key);
    this.#checkValue(value);
    check(
      libbpf().bpf_map_update_elem(this.fd, key, value, updateFlags[flag]) as number,
      "update",
      this.label,
    );
  }

  /** Removes `key`; returns false when it was not there. Throws SysError otherwise. */
  delete(key: Uint8Array): boolean {
    this.#checkKey(key);
    const ret = libbpf().bpf_map_delete_elem(this.fd, key) as number;
    if (ret === -2) return false;
    check(ret, "delete", this.label);
    return true;
  }

  /** Every key, in the kernel's iteration order. Entries changing meanwhile may be missed or repeated. */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      const ret = libbpf().bpf_map_get_next_key(this.fd, prev, next) as number;
      if (ret === -2) return;
      check(ret, "iterate", this.label);
      yield next;
      prev = next;
    }
  }

  /** Every entry. Uses batch lookups where the map type supports them. */
  *entries(): Generator<[Buffer, Buffer]> {
    if (BATCH_TYPES.has(this.info.type)) {
      yield* this.#entriesBatched();
      return;
    }
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) yield [key, value];
    }
  }

  *#entriesBatched(): Generator<[Buffer, Buffer]> {
    const chunk = 256;
    const keySize = this.info.keySize;
    const keys = Buffer.alloc(keySize * chunk);
    const values = Buffer.alloc(this.valueBytes * chunk);
    // The batch token is a u32 bucket for hashes and a key for arrays; 8 bytes covers both here.
    const tokenSize = Math.max(8, keySize);
    let inBatch: Buffer | null = null;
    const opts = { sz: sizeOf(batchOpts), elem_flags: 0, flags: 0 };
    for (;;) {
      const outBatch = Buffer.alloc(tokenSize);
      const count = [chunk];
      const ret = libbpf().bpf_map_lookup_batch(
        this.fd,
        inBatch,
        outBatch,
        keys,
        values,
        count,
        opts,
      ) as number;
      if (ret < 0 && ret !== -2) check(ret, "lookup batch", this.label);
      const n = count[0] ?? 0;
      for (let i = 0; i < n; i++) {
        yield [
          Buffer.from(keys.subarray(i * keySize, (i + 1) * keySize)),
          Buffer.from(values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes)),
        ];
      }
      if (ret === -2) return; // ENOENT: that was the last batch
      inBatch = outBatch;
    }
  }

  /**
   * Up to `max` entries that follow `after` in the kernel's order (from the first when null), as
   * `count` keys and values packed in two buffers; `done` when the map has no more. For walking a
   * map in slices between which it may change: an LPM trie's batch lookup (one syscall per slice,
   * where the kernel supports it) and the get-next-key walk both restart from the first key when
   * `after` has been deleted meanwhile, so the caller passes a key it knows is still there.
   * Throws SysError.
   */
  readChunk(
    after: Uint8Array | null,
    max: number,
  ): { keys: Buffer; values: Buffer; count: number; done: boolean } {
    if (after !== null) this.#checkKey(after);
    const keySize = this.info.keySize;
    const keys = Buffer.alloc(keySize * max);
    const values = Buffer.alloc(this.valueBytes * max);
    // The generic batch lookup (an LPM trie's) takes and returns a key as its position.
    if (this.info.type === MapType.LPM_TRIE && lpmBatch !== false) {
      const count = [max];
      const ret = libbpf().bpf_map_lookup_batch(this.fd, after, Buffer.alloc(keySize), keys, values, count, {
        sz: sizeOf(batchOpts),
        elem_flags: 0,
        flags: 0,
      }) as number;
      // ENOTSUPP (524), EOPNOTSUPP, EINVAL: a kernel without batch operations on LPM tries.
      if (lpmBatch === undefined && (ret === -524 || ret === -95 || ret === -22)) lpmBatch = false;
      else {
        if (ret < 0 && ret !== -2) check(ret, "lookup batch", this.label);
        lpmBatch = true;
        const n = count[0] ?? 0;
        return { keys, values, count: n, done: ret === -2 };
      }
    }
    let prev: Uint8Array | null = after;
    let n = 0;
    while (n < max) {
      const next = keys.subarray(n * keySize, (n + 1) * keySize);
      const ret = libbpf().bpf_map_get_next_key(this.fd, prev, next) as number;
      if (ret === -2) return { keys, values, count: n, done: true };
      check(ret, "iterate", this.label);
      prev = next;
      const value = values.subarray(n * this.valueBytes, (n + 1) * this.valueBytes);
      const got = libbpf().bpf_map_lookup_elem(this.fd, next, value) as number;
      // Deleted between the two calls: its slot is reused by the next key.
      if (got === -2) continue;
      check(got, "lookup", this.label);
      n++;
    }
    return { keys, values, count: n, done: false };
  }

  /** Number of entries (walks the map; in batches where the map type allows). */
  count(): number {
    let n = 0;
    for (const _ of BATCH_TYPES.has(this.info.type) ? this.entries() : this.keys()) n++;
    return n;
  }

  /**
   * Stores many entries. Uses one batch call where supported, element by element otherwise.
   * Throws SysError naming how many were written before the failure.
   */
  updateMany(entries: readonly (readonly [Uint8Array, Uint8Array])[], flag: UpdateFlag = "any"): void {
    if (entries.length === 0) return;
    if (BATCH_TYPES.has(this.info.type) && !PERCPU_TYPES.has(this.info.type)) {
      const keys = Buffer.alloc(entries.length * this.info.keySize);
      const values = Buffer.alloc(entries.length * this.valueBytes);
      entries.forEach(([k, v], i) => {
        this.#checkKey(k);
        this.#checkValue(v);
        keys.set(k, i * this.info.keySize);
        values.set(v, i * this.valueBytes);
      });
      const count = [entries.length];
      const opts = { sz: sizeOf(batchOpts), elem_flags: updateFlags[flag], flags: 0 };
      const ret = libbpf().bpf_map_update_batch(this.fd, keys, values, count, opts) as number;
      if (ret < 0)
        throw new SysError(`update batch (${count[0]} of ${entries.length} written)`, -ret, this.label);
      return;
    }
    entries.forEach(([k, v], i) => {
      try {
        this.update(k, v, flag);
      } catch (err) {
        if (err instanceof SysError)
          throw new SysError(`update (${i} of ${entries.length} written)`, err.errno, this.label, {
            cause: err,
          });
        throw err;
      }
    });
  }

  /**
   * Stores the first `count` entries packed back to back in `keys` (keySize bytes each) and
   * `values` (valueBytes each): with one BPF_MAP_UPDATE_BATCH call where the kernel has it for
   * this map type (hashes, arrays, and LPM tries on recent kernels), element by element
   * otherwise. Entries are stored in order; the first that fails stops the call. Never throws
   * for an entry: returns how many were stored and, if not all, the failure (SysError).
   * Throws RangeError when the buffers are shorter than `count` entries.
   */
  updatePacked(
    keys: Uint8Array,
    values: Uint8Array,
    count: number,
    flag: UpdateFlag = "any",
  ): PackedUpdateResult {
    const keySize = this.info.keySize;
    const valueBytes = this.valueBytes;
    if (keys.length < count * keySize || values.length < count * valueBytes)
      throw new RangeError(`${this.label}: packed buffers hold fewer than ${count} entries`);
    if (count === 0) return { written: 0 };
    if (!noBatchUpdate.has(this.info.type)) {
      const n = [count];
      const opts = { sz: sizeOf(batchOpts), elem_flags: updateFlags[flag], flags: 0 };
      const ret = libbpf().bpf_map_update_batch(this.fd, keys, values, n, opts) as number;
      if (ret >= 0) return { written: count };
      const written = n[0] ?? 0;
      const unsupported =
        ret === -524 /* ENOTSUPP */ || ret === -95 /* EOPNOTSUPP */ || ret === -22; /* EINVAL */
      if (!(unsupported && written === 0))
        return {
          written,
          error: new SysError(`update batch (${written} of ${count} written)`, -ret, this.label),
        };
      noBatchUpdate.add(this.info.type);
    }
    const lib = libbpf();
    const f = updateFlags[flag];
    for (let i = 0; i < count; i++) {
      const ret = lib.bpf_map_update_elem(
        this.fd,
        keys.subarray(i * keySize, (i + 1) * keySize),
        values.subarray(i * valueBytes, (i + 1) * valueBytes),
        f,
      ) as number;
      if (ret < 0)
        return { written: i, error: new SysError(`update (${i} of ${count} written)`, -ret, this.label) };
    }
    return { written: count };
  }

  /** Pins the map at `path`. Throws SysError (EEXIST if something is pinned there). */
  pin(path: string): void {
    check(libbpf().bpf_obj_pin(this.fd, path) as number, "pin map", path);
  }

  protected release(): void {
    this.#fd.close();
  }
}
