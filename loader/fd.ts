/** A file descriptor with exactly one owner. */
import { SysError } from "./errors.js";
import { lastErrno, libc } from "./ffi.js";
import { Owned } from "./resource.js";

const F_DUPFD_CLOEXEC = 1030;

export class Fd extends Owned {
  readonly #fd: number;

  /** Takes ownership of `fd`; `description` names it in errors and leak reports. */
  constructor(fd: number, description: string) {
    super(`${description} (fd ${fd})`);
    this.#fd = fd;
  }

  /** The raw descriptor. Throws once closed, so a stale number is never used. */
  get fd(): number {
    this.assertOpen("fd");
    return this.#fd;
  }

  /**
   * A new descriptor for the same kernel object, owned by the caller (close it).
   * Throws SysError on failure.
   */
  static dup(fd: number, description: string): Fd {
    const copy = libc().fcntl(fd, F_DUPFD_CLOEXEC, 3) as number;
    if (copy < 0) throw new SysError("dup", lastErrno(), description);
    return new Fd(copy, description);
  }

  protected release(): void {
    libc().close(this.#fd);
  }
}
