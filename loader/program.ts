/** BPF programs: pinned or loaded, inspected, test-run. */
import { check } from "./errors.js";
import { Fd } from "./fd.js";
import { allocU32, copyFromPointer, freeMemory, libbpf, sizeOf, testRunOpts } from "./ffi.js";
import { Owned } from "./resource.js";

export interface ProgramInfo {
  type: number;
  id: number;
  /** The kernel's hash of the instructions, hex: equal tags mean equal programs. */
  tag: string;
  name: string;
}

/** Context fields BPF_PROG_TEST_RUN lets a TC program start with (struct __sk_buff). */
export interface SkbContext {
  ifindex?: number;
  ingressIfindex?: number;
  mark?: number;
  priority?: number;
}

export interface TestRunInput {
  /** The frame, starting with its Ethernet header. */
  data: Uint8Array;
  ctx?: SkbContext;
  /** Runs the program this many times (timing); 1 by default. */
  repeat?: number;
  /** Room for the output frame; the input length plus 256 by default. */
  dataOutSize?: number;
}

export interface TestRunResult {
  /** The program's return value: for TC, the action (TC_ACT_*). */
  retval: number;
  /** The frame as the program left it. */
  dataOut: Buffer;
  /** Average run time per repetition. */
  durationNs: number;
}

const SKB_CTX_SIZE = 192;

function skbContext(ctx: SkbContext): Buffer {
  const buf = Buffer.alloc(SKB_CTX_SIZE);
  buf.writeUInt32LE(ctx.mark ?? 0, 8);
  buf.writeUInt32LE(ctx.priority ?? 0, 32);
  buf.writeUInt32LE(ctx.ingressIfindex ?? 0, 36);
  buf.writeUInt32LE(ctx.ifindex ?? 0, 40);
  return buf;
}

/** Reads the kernel's description of a program fd. Throws SysError. */
export function programInfoFromFd(fd: number, object: string): ProgramInfo {
  const buf = Buffer.alloc(232);
  const len = [buf.length];
  check(libbpf().bpf_obj_get_info_by_fd(fd, buf, len) as number, "get program info", object);
  const nameEnd = buf.indexOf(0, 64);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    tag: buf.subarray(8, 16).toString("hex"),
    name: buf.subarray(64, nameEnd < 0 || nameEnd > 80 ? 80 : nameEnd).toString("latin1"),
  };
}

/** Ids of the maps a program uses (bpf_prog_info.map_ids). Throws SysError. */
export function programMapIds(fd: number, object: string): number[] {
  const probe = Buffer.alloc(232);
  check(libbpf().bpf_obj_get_info_by_fd(fd, probe, [probe.length]) as number, "get program info", object);
  const count = probe.readUInt32LE(52);
  if (count === 0) return [];
  const ids = allocU32(count);
  try {
    const info = Buffer.alloc(232);
    info.writeUInt32LE(count, 52);
    info.writeBigUInt64LE(ids.address, 56);
    check(libbpf().bpf_obj_get_info_by_fd(fd, info, [info.length]) as number, "get program map ids", object);
    const got = Math.min(count, info.readUInt32LE(52));
    const bytes = copyFromPointer(ids.ptr, got * 4);
    return Array.from({ length: got }, (_, i) => bytes.readUInt32LE(i * 4));
  } finally {
    freeMemory(ids.ptr);
  }
}

/** A program fd. Owns the fd: close it. */
export class Program extends Owned {
  readonly #fd: Fd;
  readonly name: string;

  private constructor(fd: Fd, name: string) {
    super(`program ${name}`);
    this.#fd = fd;
    this.name = name;
  }

  /** Takes ownership of an open program fd. */
  static fromFd(fd: Fd, name: string): Program {
    return new Program(fd, name);
  }

  /** Opens a pinned program. Throws SysError (ENOENT when nothing is pinned there). */
  static openPinned(path: string): Program {
    const fd = check(libbpf().bpf_obj_get(path) as number, "open pinned program", path);
    const owned = new Fd(fd, `program ${path}`);
    try {
      return new Program(owned, programInfoFromFd(fd, path).name);
    } catch (err) {
      owned.close();
      throw err;
    }
  }

  /** Opens a loaded program by its kernel id. Throws SysError. */
  static fromId(id: number): Program {
    const fd = check(libbpf().bpf_prog_get_fd_by_id(id) as number, "open program", `id ${id}`);
    const owned = new Fd(fd, `program id ${id}`);
    try {
      return new Program(owned, programInfoFromFd(fd, `id ${id}`).name);
    } catch (err) {
      owned.close();
      throw err;
    }
  }

  get fd(): number {
    return this.#fd.fd;
  }

  info(): ProgramInfo {
    return programInfoFromFd(this.fd, this.name);
  }

  /** Ids of the maps this program uses. */
  mapIds(): number[] {
    return programMapIds(this.fd, this.name);
  }

  /** Pins the program at `path`. Throws SysError (EEXIST if something is pinned there). */
  pin(path: string): void {
    check(libbpf().bpf_obj_pin(this.fd, path) as number, "pin program", path);
  }

  /**
   * Runs the program once (or `repeat` times) on a crafted frame with BPF_PROG_TEST_RUN. Redirects
   * are not performed and tunnel keys are discarded: only the return value and the frame come back.
   * Throws SysError (EINVAL for a context the kernel refuses).
   */
  testRun(input: TestRunInput): TestRunResult {
    const dataOut = Buffer.alloc(input.dataOutSize ?? input.data.length + 256);
    const ctx = input.ctx === undefined ? null : skbContext(input.ctx);
    const opts = {
      sz: sizeOf(testRunOpts),
      data_in: input.data,
      data_out: dataOut,
      data_size_in: input.data.length,
      data_size_out: dataOut.length,
      ctx_in: ctx,
      ctx_out: null,
      ctx_size_in: ctx === null ? 0 : ctx.length,
      ctx_size_out: 0,
      retval: 0,
      repeat: input.repeat ?? 1,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    check(libbpf().bpf_prog_test_run_opts(this.fd, opts) as number, "test run", this.name);
    return {
      retval: opts.retval,
      dataOut: dataOut.subarray(0, Math.min(opts.data_size_out, dataOut.length)),
      durationNs: opts.duration,
    };
  }

  protected release(): void {
    this.#fd.close();
  }
}
