/** A consumer of a BPF ring buffer map. */
import { SysError } from "./errors.js";
import {
  copyFromPointer,
  lastErrno,
  libbpf,
  registerCallback,
  unregisterCallback,
  type Pointer,
} from "./ffi.js";
import type { RawMap } from "./map.js";
import { Owned } from "./resource.js";

/** Reads records from a RINGBUF map. Owns the libbpf ring buffer and its callback: close it. */
export class RingBuffer extends Owned {
  readonly #rb: Pointer;
  readonly #callback: bigint;
  readonly #label: string;

  /**
   * @param map the ring buffer map; it must stay open while this reader is used.
   * @param onRecord called with a copy of each record, on the thread that consumes.
   * Throws SysError.
   */
  constructor(map: RawMap, onRecord: (record: Buffer) => void) {
    super(`ring buffer ${map.label}`);
    this.#label = map.label;
    const callback = registerCallback((_ctx: Pointer, data: Pointer, size: number | bigint) => {
      onRecord(copyFromPointer(data, Number(size)));
      return 0;
    }, "ringbuf");
    const rb = libbpf().ring_buffer__new(map.fd, callback, null, null) as Pointer | null;
    if (rb === null) {
      unregisterCallback(callback);
      throw new SysError("open ring buffer", lastErrno(), map.label);
    }
    this.#rb = rb;
    this.#callback = callback;
  }

  /** Delivers every record available now without waiting. Returns how many. Throws SysError. */
  consume(): number {
    this.assertOpen(this.#label);
    const n = libbpf().ring_buffer__consume(this.#rb) as number;
    if (n < 0) throw new SysError("consume ring buffer", -n, this.#label);
    return n;
  }

  protected release(): void {
    libbpf().ring_buffer__free(this.#rb);
    unregisterCallback(this.#callback);
  }
}
