/**
 * A minimal protocol-buffers writer (proto3 wire format): enough to hand-encode the OpenAPI v2
 * document kubectl downloads as `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
 * Only length-delimited (wire type 2) and varint (wire type 0) fields are needed.
 */

function varint(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`);
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** Accumulates the fields of one message; nest with {@link ProtoWriter.message}. */
export class ProtoWriter {
  readonly #parts: Buffer[] = [];

  #tag(field: number, wireType: 0 | 2): void {
    this.#parts.push(varint(field * 8 + wireType));
  }

  /** A length-delimited field holding raw bytes. */
  bytes(field: number, data: Buffer): this {
    this.#tag(field, 2);
    this.#parts.push(varint(data.length), data);
    return this;
  }

  /** A string field (UTF-8); proto3 omits empty strings, and so does this unless `always`. */
  string(field: number, value: string | undefined, always = false): this {
    if (value === undefined || (value === "" && !always)) return this;
    return this.bytes(field, Buffer.from(value, "utf8"));
  }

  /** One entry per string of a `repeated string` field. */
  strings(field: number, values: readonly string[] | undefined): this {
    for (const v of values ?? []) this.string(field, v, true);
    return this;
  }

  /** A varint field (bool, int32, int64 ≥ 0); proto3 omits zero. */
  uint(field: number, value: number | boolean | undefined): this {
    const n = value === true ? 1 : value === false || value === undefined ? 0 : value;
    if (n === 0) return this;
    this.#tag(field, 0);
    this.#parts.push(varint(n));
    return this;
  }

  /** An embedded message, written by `build` into a fresh writer (present even when empty). */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  /** The encoded message. */
  finish(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/** One decoded field: `value` is a Buffer for wire type 2, a number for wire type 0. */
export interface ProtoField {
  field: number;
  wireType: number;
  value: Buffer | number;
}

/** Decodes the top-level fields of a message (for tests and diagnostics). Throws on bad input. */
export function decodeFields(buf: Buffer): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (pos >= buf.length) throw new RangeError("truncated varint");
      const b = buf[pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
  };
  while (pos < buf.length) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      out.push({ field, wireType, value: readVarint() });
    } else if (wireType === 2) {
      const len = readVarint();
      if (pos + len > buf.length) throw new RangeError("truncated length-delimited field");
      out.push({ field, wireType, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else {
      throw new RangeError(`unsupported wire type ${wireType}`);
    }
  }
  return out;
}
