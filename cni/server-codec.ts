/**
 * The frames of the skein-cni shim ↔ resident CNI server protocol (v1), pure: no sockets, no
 * process state. Integers are u32 little-endian; a string is a u32 length and that many bytes.
 *
 *   request  "SKNC" u32 version u32 payload-length payload
 *            payload = u32 env count, env strings ("KEY=VALUE"), u32 argc, arg strings, stdin string
 *   response "SKNR" u32 version u32 exit-code stdout-string stderr-string
 *
 * The request reader is incremental and fails as early as the bytes allow (a wrong magic, version
 * or an oversized length is refused from the 12-byte header, before any payload is buffered), and
 * never allocates more than the bytes that arrived: a count is checked against the bytes left.
 */

/** Bytes a request starts with. */
export const REQUEST_MAGIC = Buffer.from("SKNC", "latin1");
/** Bytes a response starts with. */
export const RESPONSE_MAGIC = Buffer.from("SKNR", "latin1");
/** The one protocol version spoken. */
export const PROTOCOL_VERSION = 1;
/** Largest request payload accepted (4 MiB). */
export const MAX_PAYLOAD_BYTES = 4 << 20;
/** magic + version + payload length. */
export const REQUEST_HEADER_BYTES = 12;

/** One CNI invocation as the shim forwards it. */
export interface CniRequest {
  /** The shim's environment, in order ("KEY=VALUE"; an entry without '=' has an empty value). */
  env: string[];
  /** argv[1..] (the shim passes none today). */
  args: string[];
  /** Everything the runtime wrote to the shim's stdin. */
  stdin: Buffer;
}

/** The answer: what the shim writes to fds 1 and 2, and its exit code. */
export interface CniResponse {
  exitCode: number;
  stdout: Buffer | string;
  stderr: Buffer | string;
}

/** A frame that cannot be decoded; `message` says why, for the CNI error the server answers with. */
export class FrameError extends Error {
  override readonly name = "FrameError";
}

/**
 * The environment as a record: the first definition of a name wins (as getenv does); entries
 * without '=' are skipped (no variable has an empty name).
 */
export function envRecord(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const entry of env) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    if (!(key in out)) out[key] = entry.slice(eq + 1);
  }
  return out;
}

function stringBytes(s: string | Buffer): Buffer {
  return typeof s === "string" ? Buffer.from(s, "utf8") : s;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

function strings(list: readonly (string | Buffer)[]): Buffer[] {
  const out: Buffer[] = [u32(list.length)];
  for (const s of list) {
    const bytes = stringBytes(s);
    out.push(u32(bytes.length), bytes);
  }
  return out;
}

/** Encodes a request frame. Throws RangeError when the payload exceeds MAX_PAYLOAD_BYTES. */
export function encodeRequest(request: CniRequest): Buffer {
  const payload = Buffer.concat([
    ...strings(request.env),
    ...strings(request.args),
    u32(request.stdin.length),
    request.stdin,
  ]);
  if (payload.length > MAX_PAYLOAD_BYTES)
    throw new RangeError(`request payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  return Buffer.concat([REQUEST_MAGIC, u32(PROTOCOL_VERSION), u32(payload.length), payload]);
}

/** Encodes a response frame. Throws RangeError on an exit code outside u32. */
export function encodeResponse(response: CniResponse): Buffer {
  if (!Number.isInteger(response.exitCode) || response.exitCode < 0 || response.exitCode > 0xffffffff)
    throw new RangeError(`exit code ${response.exitCode} is not a u32`);
  const out = stringBytes(response.stdout);
  const err = stringBytes(response.stderr);
  return Buffer.concat([
    RESPONSE_MAGIC,
    u32(PROTOCOL_VERSION),
    u32(response.exitCode),
    u32(out.length),
    out,
    u32(err.length),
    err,
  ]);
}

/** Reads u32s and strings from a buffer, refusing to run past its end. */
class Cursor {
  #off = 0;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
  ) {}

  get left(): number {
    return this.buf.length - this.#off;
  }

  u32(field: string): number {
    if (this.left < 4) throw new FrameError(`${this.what} truncated in ${field}`);
    const v = this.buf.readUInt32LE(this.#off);
    this.#off += 4;
    return v;
  }

  bytes(field: string): Buffer {
    const n = this.u32(`${field} length`);
    if (n > this.left)
      throw new FrameError(`${this.what}: ${field} of ${n} bytes runs past the end (${this.left} left)`);
    const b = this.buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return b;
  }

  list(field: string): string[] {
    const count = this.u32(`${field} count`);
    // Every string needs at least its 4-byte length: a larger count cannot be honest.
    if (count > this.left / 4)
      throw new FrameError(`${this.what}: ${field} count ${count} exceeds what ${this.left} bytes can hold`);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.bytes(`${field}[${i}]`).toString("utf8"));
    return out;
  }
}

/** Decodes a request payload (what follows the 12-byte header). Throws FrameError. */
export function decodeRequestPayload(payload: Buffer): CniRequest {
  const c = new Cursor(payload, "request");
  const env = c.list("env");
  const args = c.list("args");
  const stdin = Buffer.from(c.bytes("stdin"));
  if (c.left !== 0) throw new FrameError(`request: ${c.left} bytes after stdin`);
  return { env, args, stdin };
}

/**
 * Checks a request header (the first 12 bytes, or a prefix of them). Returns the payload length
 * once the whole header is there, undefined while it is not. Throws FrameError.
 */
export function checkRequestHeader(head: Buffer): number | undefined {
  const magicBytes = Math.min(head.length, REQUEST_MAGIC.length);
  if (!head.subarray(0, magicBytes).equals(REQUEST_MAGIC.subarray(0, magicBytes)))
    throw new FrameError(
      `not a skein-cni request (expected magic "SKNC", got ${JSON.stringify(head.subarray(0, magicBytes).toString("latin1"))})`,
    );
  if (head.length < 8) return undefined;
  const version = head.readUInt32LE(4);
  if (version !== PROTOCOL_VERSION)
    throw new FrameError(`unsupported protocol version ${version} (this server speaks ${PROTOCOL_VERSION})`);
  if (head.length < REQUEST_HEADER_BYTES) return undefined;
  const length = head.readUInt32LE(8);
  if (length > MAX_PAYLOAD_BYTES)
    throw new FrameError(`request payload of ${length} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES}`);
  return length;
}

/** What a RequestReader has after the bytes so far. */
export type ReadState =
  { kind: "partial" } | { kind: "complete"; request: CniRequest } | { kind: "error"; message: string };

/**
 * Accumulates one connection's bytes into one request. After "complete" or "error" it stays in
 * that state; bytes after a complete request are an error (the client sends one request, then waits).
 */
export class RequestReader {
  #chunks: Buffer[] = [];
  #have = 0;
  #length: number | undefined;
  #state: ReadState = { kind: "partial" };

  get state(): ReadState {
    return this.#state;
  }

  /** Bytes buffered so far. */
  get buffered(): number {
    return this.#have;
  }

  push(chunk: Buffer): ReadState {
    if (this.#state.kind === "error") return this.#state;
    if (this.#state.kind === "complete") {
      if (chunk.length > 0) this.#state = { kind: "error", message: "bytes after the request" };
      return this.#state;
    }
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    try {
      if (this.#length === undefined) {
        const head = this.#joined(Math.min(this.#have, REQUEST_HEADER_BYTES));
        this.#length = checkRequestHeader(head);
      }
      if (this.#length === undefined) return this.#state;
      const total = REQUEST_HEADER_BYTES + this.#length;
      if (this.#have < total) return this.#state;
      if (this.#have > total) throw new FrameError("bytes after the request");
      const all = this.#joined(this.#have);
      this.#chunks = [];
      this.#state = { kind: "complete", request: decodeRequestPayload(all.subarray(REQUEST_HEADER_BYTES)) };
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.#chunks = [];
      this.#state = { kind: "error", message: err.message };
    }
    return this.#state;
  }

  #joined(n: number): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return (this.#chunks[0] ?? Buffer.alloc(0)).subarray(0, n);
  }
}

/** Decodes a whole response frame (the server closes after it). Throws FrameError. */
export function decodeResponse(frame: Buffer): { exitCode: number; stdout: Buffer; stderr: Buffer } {
  if (frame.length < 12 || !frame.subarray(0, 4).equals(RESPONSE_MAGIC))
    throw new FrameError("not a skein-cni response");
  const version = frame.readUInt32LE(4);
  if (version !== PROTOCOL_VERSION) throw new FrameError(`unsupported response version ${version}`);
  const c = new Cursor(frame.subarray(8), "response");
  const exitCode = c.u32("exit code");
  const stdout = Buffer.from(c.bytes("stdout"));
  const stderr = Buffer.from(c.bytes("stderr"));
  if (c.left !== 0) throw new FrameError(`response: ${c.left} bytes after stderr`);
  return { exitCode, stdout, stderr };
}
