/** The few system calls outside libbpf that Skein needs: file locks, mounts, netns, interfaces. */
import { SysError } from "./errors.js";
import { lastErrno, libc } from "./ffi.js";

const LOCK_EX = 2;
const LOCK_UN = 8;

/** Blocks until this process holds an exclusive flock on `fd`. Throws SysError. */
export function lockExclusive(fd: number, object: string): void {
  for (;;) {
    if ((libc().flock(fd, LOCK_EX) as number) === 0) return;
    const errno = lastErrno();
    if (errno !== 4 /* EINTR */) throw new SysError("flock", errno, object);
  }
}

/** Releases a flock taken with lockExclusive (closing the fd releases it too). */
export function unlock(fd: number, object: string): void {
  if ((libc().flock(fd, LOCK_UN) as number) !== 0) throw new SysError("unlock", lastErrno(), object);
}

/** The filesystem magic number of the filesystem holding `path` (statfs f_type). Throws SysError. */
export function filesystemType(path: string): number {
  const buf = Buffer.alloc(120);
  if ((libc().statfs(path, buf) as number) !== 0) throw new SysError("statfs", lastErrno(), path);
  return Number(buf.readBigInt64LE(0));
}

/** mount(2). Throws SysError. */
export function mount(source: string, target: string, fstype: string, data?: string): void {
  if ((libc().mount(source, target, fstype, 0, data ?? null) as number) !== 0)
    throw new SysError(`mount ${fstype}`, lastErrno(), target);
}

/** Index of a network interface in this thread's network namespace, or undefined. */
export function interfaceIndex(name: string): number | undefined {
  const index = libc().if_nametoindex(name) as number;
  return index === 0 ? undefined : index;
}

const RUSAGE_CHILDREN = -1;

/**
 * CPU time (user + system, ms, microsecond resolution) of every child process this process has
 * waited for so far. The difference across one synchronous child run is that child's CPU time, a
 * figure a busy machine distorts far less than wall time. Throws SysError.
 */
export function childrenCpuMs(): number {
  const usage = Buffer.alloc(144); // struct rusage: ru_utime and ru_stime (timeval) lead
  if ((libc().getrusage(RUSAGE_CHILDREN, usage) as number) !== 0)
    throw new SysError("getrusage", lastErrno(), "children");
  const ms = (off: number) =>
    Number(usage.readBigInt64LE(off)) * 1000 + Number(usage.readBigInt64LE(off + 8)) / 1000;
  return ms(0) + ms(16);
}
