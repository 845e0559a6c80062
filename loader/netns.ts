/**
 * Network namespaces by fd, and running code inside one on the calling thread with setns(2).
 * Node runs JavaScript on one thread, so a synchronous function given to `inNetns` sees the
 * namespace for its whole run (libuv's worker threads do not move: keep async work out of it).
 * Sockets stay bound to the namespace they were opened in: open one inside, then use it outside.
 */
import { closeSync, openSync } from "node:fs";
import { SysError } from "./errors.js";
import { lastErrno, libc } from "./ffi.js";
import { Owned } from "./resource.js";

const CLONE_NEWNET = 0x40000000;

/** An open network namespace (an fd of nsfs). Owns the fd: close it. */
export class Netns extends Owned {
  readonly #fd: number;
  /** Where it was opened from, for messages. */
  readonly path: string;

  private constructor(fd: number, path: string) {
    super(`netns ${path} (fd ${fd})`);
    this.#fd = fd;
    this.path = path;
  }

  /**
   * Opens the namespace at `path` (/var/run/netns/X, /proc/PID/ns/net). Throws SysError (ENOENT when
   * absent). That the file is a network namespace is checked by the first setns or IFLA_NET_NS_FD.
   */
  static open(path: string): Netns {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new SysError("open netns", typeof e.errno === "number" ? -e.errno : 5, path, { cause: err });
    }
    return new Netns(fd, path);
  }

  /** The calling thread's namespace. Throws SysError. */
  static current(): Netns {
    return Netns.open("/proc/thread-self/ns/net");
  }

  get fd(): number {
    this.assertOpen("netns fd");
    return this.#fd;
  }

  protected release(): void {
    closeSync(this.#fd);
  }
}

function setns(fd: number, object: string): void {
  if ((libc().setns(fd, CLONE_NEWNET) as number) !== 0) throw new SysError("setns", lastErrno(), object);
}

/**
 * Runs `fn` with the calling thread in `ns`, then returns it to the namespace it was in, also when
 * `fn` throws. Throws SysError when entering fails; when returning fails (the thread would stay in
 * the wrong namespace) it throws an Error the caller must treat as fatal.
 */
export function inNetns<T>(ns: Netns, fn: () => T): T {
  using home = Netns.current();
  setns(ns.fd, ns.path);
  try {
    return fn();
  } finally {
    try {
      setns(home.fd, "the caller's netns");
    } catch (err) {
      // eslint-disable-next-line no-unsafe-finally -- staying in the pod's namespace is worse than losing fn's error
      throw new Error(`cannot return to the original network namespace after entering ${ns.path}`, {
        cause: err,
      });
    }
  }
}
