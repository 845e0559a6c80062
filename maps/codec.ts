/**
 * Building blocks for map codecs: field tables (what the layout test compares with BTF), fixed-size
 * struct encoding at explicit offsets with padding zeroed, and typed maps that refuse a kernel map
 * whose sizes differ from the codec.
 */
import { RawMap, type PackedUpdateResult, type UpdateFlag } from "../loader/index.js";

/** One member of a C struct as the codec writes it. */
export interface Field {
  name: string;
  offset: number;
  size: number;
}

/** A C struct: its name in the object's BTF, its size, its members. */
export interface Layout {
  cName: string;
  size: number;
  fields: readonly Field[];
}

/** Encodes and decodes one C struct. */
export interface Codec<T> {
  layout: Layout;
  encode(value: T): Buffer;
  decode(bytes: Uint8Array): T;
}

/** Key and value codecs for a map, with the map's name. */
export interface MapCodec<K, V> {
  name: string;
  key: Codec<K>;
  value: Codec<V>;
}

export function layout(cName: string, size: number, fields: readonly Field[]): Layout {
  for (const f of fields) {
    if (f.offset + f.size > size) throw new Error(`${cName}.${f.name} ends past the struct's ${size} bytes`);
  }
  return { cName, size, fields };
}

/** Reads `bytes` as a Buffer without copying. */
export function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function checkLength(what: string, bytes: Uint8Array, size: number): Buffer {
  if (bytes.length !== size) throw new RangeError(`${what}: expected ${size} bytes, got ${bytes.length}`);
  return view(bytes);
}

/** The `__u32` key of array maps (config, decision: one entry, key 0). */
export const u32KeyCodec: Codec<number> = {
  layout: layout("__u32", 4, [{ name: "key", offset: 0, size: 4 }]),
  encode(k) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(k, 0);
    return b;
  },
  decode(bytes) {
    return checkLength("u32 key", bytes, 4).readUInt32LE(0);
  },
};

export function u32(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new RangeError(`${name} is not a u32: ${value}`);
  return value;
}

/**
 * A kernel map seen through codecs. Opening checks the kernel's key and value sizes against the
 * codecs and refuses a mismatch. Owns the map fd: close it.
 */
export class TypedMap<K, V> implements Disposable {
  readonly raw: RawMap;
  readonly codec: MapCodec<K, V>;

  /** Takes ownership of `raw`. Throws (and closes it) when sizes differ. */
  constructor(raw: RawMap, codec: MapCodec<K, V>, options: { perCpu?: boolean } = {}) {
    const want = { key: codec.key.layout.size, value: codec.value.layout.size };
    if (raw.info.keySize !== want.key || raw.info.valueSize !== want.value) {
      raw.close();
      throw new Error(
        `map ${codec.name} (${raw.label}): kernel has key ${raw.info.keySize} / value ${raw.info.valueSize} bytes, ` +
          `this build expects ${want.key} / ${want.value}: the pinned map comes from another Skein version ` +
          `(unload the datapath or let the agent migrate it)`,
      );
    }
    if (options.perCpu !== true && raw.valueBytes !== want.value) {
      raw.close();
      throw new Error(`map ${codec.name}: is per-CPU, open it with a per-CPU wrapper`);
    }
    this.raw = raw;
    this.codec = codec;
  }

  get(key: K): V | undefined {
    const v = this.raw.lookup(this.codec.key.encode(key));
    return v === undefined ? undefined : this.codec.value.decode(v);
  }

  set(key: K, value: V, flag: UpdateFlag = "any"): void {
    this.raw.update(this.codec.key.encode(key), this.codec.value.encode(value), flag);
  }

  /**
   * Stores the first `count` entries packed in `keys` and `values` (the codecs' bytes, back to
   * back) in order, in one batch call where the kernel can (RawMap.updatePacked). Never throws for
   * an entry: returns how many were stored and the first failure. Throws RangeError when the
   * buffers are short, TypeError on a per-CPU map.
   */
  setPacked(
    keys: Uint8Array,
    values: Uint8Array,
    count: number,
    flag: UpdateFlag = "any",
  ): PackedUpdateResult {
    if (this.raw.valueBytes !== this.codec.value.layout.size)
      throw new TypeError(`map ${this.codec.name}: packed writes on a per-CPU map`);
    return this.raw.updatePacked(keys, values, count, flag);
  }

  delete(key: K): boolean {
    return this.raw.delete(this.codec.key.encode(key));
  }

  *entries(): Generator<[K, V]> {
    for (const [k, v] of this.raw.entries()) yield [this.codec.key.decode(k), this.codec.value.decode(v)];
  }

  count(): number {
    return this.raw.count();
  }

  /**
   * Up to `max` entries after `after` in the kernel's order (RawMap.readChunk): keys decoded,
   * values as the kernel holds them (views into one buffer). Throws SysError.
   */
  readChunk(after: K | undefined, max: number): { entries: [K, Buffer][]; done: boolean } {
    const c = this.raw.readChunk(after === undefined ? null : this.codec.key.encode(after), max);
    const ks = this.raw.info.keySize;
    const vs = this.raw.valueBytes;
    const entries: [K, Buffer][] = [];
    for (let i = 0; i < c.count; i++)
      entries.push([
        this.codec.key.decode(c.keys.subarray(i * ks, (i + 1) * ks)),
        c.values.subarray(i * vs, (i + 1) * vs),
      ]);
    return { entries, done: c.done };
  }

  get maxEntries(): number {
    return this.raw.info.maxEntries;
  }

  close(): void {
    this.raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
