/**
 * Raw IPv4 sockets: send and receive whole packets of one IP protocol. The lab uses them to speak
 * SCTP on a kernel without SCTP support (crafted INIT / INIT-ACK). Receives run on libc through
 * koffi's worker threads, so waiting never blocks the event loop.
 */
import { SysError } from "./errors.js";
import { lastErrno, libc, type AsyncSocketCall } from "./ffi.js";
import { Fd } from "./fd.js";
import { Owned } from "./resource.js";

const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

function sockaddrIn(ip: string): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  const parts = ip.split(".").map(Number);
  b.set(parts, 4);
  return b;
}

/** A raw socket for one IP protocol. Owns its fd: close it. */
export class RawSocket extends Owned {
  readonly #fd: Fd;
  readonly protocol: number;

  /** Opens a raw socket for `protocol` (e.g. 132 for SCTP). Throws SysError (EPERM without CAP_NET_RAW). */
  constructor(protocol: number) {
    const fd = libc().socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, protocol) as number;
    if (fd < 0) throw new SysError("open raw socket", lastErrno(), `protocol ${protocol}`);
    super(`raw socket protocol ${protocol}`);
    this.#fd = new Fd(fd, `raw socket protocol ${protocol}`);
    this.protocol = protocol;
    // Receives wake up every 100 ms, so a reader can notice it was closed.
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(0n, 0);
    tv.writeBigInt64LE(100_000n, 8);
    if ((libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) as number) !== 0) {
      const errno = lastErrno();
      this.close();
      throw new SysError("set receive timeout", errno, "raw socket");
    }
  }

  /** Sends `payload` (everything after the IP header; the kernel adds it) to `ip`. Throws SysError. */
  send(ip: string, payload: Uint8Array): void {
    const n = Number(libc().sendto(this.#fd.fd, payload, payload.length, 0, sockaddrIn(ip), 16));
    if (n < 0) throw new SysError("send raw packet", lastErrno(), ip);
  }

  /** The next packet (IP header included), or undefined when none arrives within `timeoutMs`. */
  async receive(timeoutMs: number): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    const recv = libc().recv as unknown as AsyncSocketCall;
    while (!this.closed && Date.now() < deadline) {
      const buf = Buffer.alloc(65536);
      const n = await new Promise<number>((resolve, reject) => {
        recv.async(this.#fd.fd, buf, buf.length, 0, (err, res) => {
          if (err !== null && err !== undefined)
            reject(err instanceof Error ? err : new Error(`recv failed: ${JSON.stringify(err)}`));
          else resolve(Number(res));
        });
      });
      if (n >= 0) return buf.subarray(0, n);
      // errno lives on the worker thread that ran recv: a negative result is the 100 ms timeout
      // (or the socket closing under us), and the loop decides whether to wait again.
    }
    return undefined;
  }

  protected release(): void {
    this.#fd.close();
  }
}
