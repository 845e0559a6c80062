/**
 * rtnetlink in-process: one NETLINK_ROUTE socket, requests acknowledged one at a time, dumps read
 * to the end. What `ip link/addr/route/neigh` do for Skein, without a child process per step (a
 * fork and exec of iproute2 costs milliseconds; a netlink round trip costs microseconds). The
 * socket acts in the network namespace it was opened in, whatever the thread's namespace later;
 * `Rtnetlink.openIn` opens one inside another namespace.
 */
import { SysError } from "./errors.js";
import { lastErrno, libc, sendOnWorker } from "./ffi.js";
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLM_F_DUMP_INTR,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RT_TABLE_MAIN,
  addAddressRequest,
  addRouteRequest,
  decodeAddress,
  decodeError,
  decodeLink,
  decodeNeighbour,
  decodeRoute,
  deleteLinkRequest,
  dumpRequest,
  getLinkRequest,
  moveLinkRequest,
  newVethRequest,
  parseMessages,
  replaceNeighbourRequest,
  setLinkRequest,
  type NlAddress,
  type NlLink,
  type NlMessage,
  type NlNeighbour,
  type NlRoute,
  type RouteSpec,
  type VethEnd,
} from "./netlink-codec.js";
import { inNetns, type Netns } from "./netns.js";
import { Owned } from "./resource.js";

export type { NlAddress, NlLink, NlNeighbour, NlRoute, RouteSpec, VethEnd } from "./netlink-codec.js";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;
const EINTR = 4;
const EIO = 5;
const ENODEV = 19;

/** A netlink request the kernel refused: the errno, plus the kernel's own words when it gave any. */
export class NetlinkError extends SysError {
  override readonly name: string = "NetlinkError";
  /** The extended-ack message (`Invalid prefix for given prefix length`), if any. */
  readonly kernelMessage: string | undefined;

  constructor(operation: string, errno: number, object: string | undefined, kernelMessage?: string) {
    super(operation, errno, object);
    this.kernelMessage = kernelMessage;
    if (kernelMessage !== undefined) this.message += `: ${kernelMessage}`;
  }
}

/** An rtnetlink socket. Owns its fd: close it. Methods throw NetlinkError (a SysError) with the errno. */
export class Rtnetlink extends Owned {
  readonly #fd: number;
  readonly #where: string;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  #buf = Buffer.alloc(32768);

  private constructor(fd: number, where: string) {
    super(`rtnetlink socket ${where} (fd ${fd})`);
    this.#fd = fd;
    this.#where = where;
  }

  /**
   * Opens a socket in the calling thread's network namespace; `where` names that namespace in
   * messages. Throws SysError.
   */
  static open(where = "here"): Rtnetlink {
    const fd = libc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
    if (fd < 0) throw new SysError("open rtnetlink socket", lastErrno(), where);
    const nl = new Rtnetlink(fd, where);
    const one = Buffer.alloc(4);
    one.writeInt32LE(1, 0);
    // Errors carry the kernel's reason and not a copy of the request. Old kernels lack both: fine.
    libc().setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    libc().setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    return nl;
  }

  /** Opens a socket inside `ns` (the thread enters and leaves it). Throws SysError. */
  static openIn(ns: Netns): Rtnetlink {
    return inNetns(ns, () => Rtnetlink.open(`in ${ns.path}`));
  }

  /** Where the socket acts, for messages ("here", "in /var/run/netns/X"). */
  get where(): string {
    return this.#where;
  }

  // -- links

  /** Creates a veth pair; the peer may be created in another namespace (`peer.netnsFd`). */
  createVeth(host: VethEnd, peer: VethEnd): void {
    this.#ack(newVethRequest(host, peer), "create veth", host.name);
  }

  /** The link named `name`, or undefined when there is none. */
  link(name: string): NlLink | undefined {
    let replies: NlMessage[];
    try {
      replies = this.#exchange(getLinkRequest(name), "get link", name, false);
    } catch (err) {
      if (err instanceof SysError && err.errno === ENODEV) return undefined;
      throw err;
    }
    const m = replies.find((r) => r.type === RTM_NEWLINK);
    return m === undefined ? undefined : decodeLink(m.payload);
  }

  links(): NlLink[] {
    return this.#dump("links", RTM_NEWLINK, "list links").map(decodeLink);
  }

  /** Sets a link up or down, and/or its MTU. */
  setLink(index: number, name: string, change: { up?: boolean; mtu?: number }): void {
    const what = [
      ...(change.up === undefined ? [] : [change.up ? "up" : "down"]),
      ...(change.mtu === undefined ? [] : [`mtu ${change.mtu}`]),
    ];
    this.#ack(setLinkRequest(index, change), `set link ${what.join(" ")}`, name);
  }

  /** Moves a link into the namespace `netnsFd` refers to; it keeps its name and ifindex if free there. */
  moveLink(index: number, name: string, netnsFd: number): void {
    this.#ack(moveLinkRequest(index, netnsFd), "move link to another netns", name);
  }

  /** Deletes a link (a veth takes its peer, routes and neighbours). False when there was none. */
  deleteLink(name: string): boolean {
    try {
      this.#ack(deleteLinkRequest(name), "delete link", name);
      return true;
    } catch (err) {
      if (err instanceof SysError && err.errno === ENODEV) return false;
      throw err;
    }
  }

  /**
   * deleteLink with the kernel's work on a worker thread: removing a veth waits for RCU (tens of
   * milliseconds), time the caller can use. Use no other method of this socket until it settles.
   */
  async deleteLinkOnWorker(name: string): Promise<boolean> {
    try {
      await this.#exchangeOnWorker(deleteLinkRequest(name), "delete link", name);
      return true;
    } catch (err) {
      if (err instanceof SysError && err.errno === ENODEV) return false;
      throw err;
    }
  }

  // -- addresses, routes, neighbours

  addAddress(index: number, name: string, ip: string, prefixlen: number): void {
    this.#ack(addAddressRequest(index, ip, prefixlen), `add address ${ip}/${prefixlen}`, name);
  }

  /** IPv4 addresses, of one link when `index` is given. */
  addresses(index?: number): NlAddress[] {
    return this.#dump("addresses", RTM_NEWADDR, "list addresses")
      .map(decodeAddress)
      .filter((a): a is NlAddress => a !== undefined && (index === undefined || a.ifindex === index));
  }

  addRoute(route: RouteSpec, name: string): void {
    const what = route.dstLen === 0 ? "default" : `${route.dst}/${route.dstLen}`;
    const via = route.gateway === undefined ? "" : ` via ${route.gateway}`;
    this.#ack(addRouteRequest(route), `add route ${what}${via}`, name);
  }

  /** IPv4 routes of the main table. */
  routes(): NlRoute[] {
    return this.#dump("routes", RTM_NEWROUTE, "list routes")
      .map(decodeRoute)
      .filter((r): r is NlRoute => r !== undefined && r.table === RT_TABLE_MAIN);
  }

  /** Creates or replaces a permanent neighbour entry. */
  replaceNeighbour(index: number, name: string, ip: string, mac: string): void {
    this.#ack(replaceNeighbourRequest(index, ip, mac), `set neighbour ${ip} lladdr ${mac}`, name);
  }

  /** IPv4 neighbour entries, of one link when `index` is given. */
  neighbours(index?: number): NlNeighbour[] {
    return this.#dump("neighbours", RTM_NEWNEIGH, "list neighbours")
      .map(decodeNeighbour)
      .filter((n): n is NlNeighbour => n !== undefined && (index === undefined || n.ifindex === index));
  }

  // -- the exchange

  #ack(request: Buffer, operation: string, object: string): void {
    this.#exchange(request, operation, object, true);
  }

  #dump(what: Parameters<typeof dumpRequest>[0], type: number, operation: string): Buffer[] {
    // A dump the kernel marks interrupted (the table changed under it) is read again.
    for (let attempt = 0; ; attempt++) {
      const replies = this.#exchange(dumpRequest(what), operation, this.#where, false);
      if (replies.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0) && attempt < 5) continue;
      return replies.filter((m) => m.type === type).map((m) => m.payload);
    }
  }

  /**
   * Sends one request and reads its replies: until the ack (`acked`, or any NLMSG_ERROR), until
   * NLMSG_DONE for a dump, or the first reply for a plain get. Throws NetlinkError.
   */
  #exchange(request: Buffer, operation: string, object: string, acked: boolean): NlMessage[] {
    const seq = this.#stamp(request, operation);
    for (;;) {
      const n = Number(libc().send(this.#fd, request, request.length, 0));
      if (n >= 0) break;
      const errno = lastErrno();
      if (errno !== EINTR) throw new NetlinkError(`${operation}: send`, errno, object);
    }
    return this.#collect(request, seq, operation, object, acked);
  }

  /** The same for an acknowledged request, with the kernel's work done on a worker thread. */
  async #exchangeOnWorker(request: Buffer, operation: string, object: string): Promise<void> {
    const seq = this.#stamp(request, operation);
    if ((await sendOnWorker(this.#fd, request)) < 0)
      throw new NetlinkError(`${operation}: send (on a worker thread: errno unknown)`, EIO, object);
    this.#collect(request, seq, operation, object, true);
  }

  #stamp(request: Buffer, operation: string): number {
    this.assertOpen(operation);
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    request.writeUInt32LE(seq, 8);
    return seq;
  }

  #collect(request: Buffer, seq: number, operation: string, object: string, acked: boolean): NlMessage[] {
    const dump = (request.readUInt16LE(6) & 0x300) === 0x300;
    const out: NlMessage[] = [];
    for (;;) {
      for (const m of parseMessages(this.#receive(operation, object))) {
        if (m.seq !== seq) continue; // a late reply to an earlier request
        if (m.type === NLMSG_NOOP) continue;
        if (m.type === NLMSG_ERROR) {
          const e = decodeError(m);
          if (e.errno !== 0) throw new NetlinkError(operation, e.errno, object, e.message);
          return out;
        }
        if (m.type === NLMSG_DONE) {
          if (m.payload.length >= 4 && m.payload.readInt32LE(0) < 0)
            throw new NetlinkError(operation, -m.payload.readInt32LE(0), object);
          return out;
        }
        out.push(m);
        if (!dump && !acked) return out;
      }
    }
  }

  #receive(operation: string, object: string): Buffer {
    for (;;) {
      // Peek at the size first: a datagram larger than the buffer would be cut short.
      const size = Number(libc().recv(this.#fd, this.#buf, 0, MSG_PEEK | MSG_TRUNC));
      if (size < 0) {
        const errno = lastErrno();
        if (errno === EINTR) continue;
        throw new NetlinkError(`${operation}: receive`, errno, object);
      }
      if (size > this.#buf.length) this.#buf = Buffer.alloc(size);
      const n = Number(libc().recv(this.#fd, this.#buf, this.#buf.length, 0));
      if (n < 0) {
        const errno = lastErrno();
        if (errno === EINTR) continue;
        throw new NetlinkError(`${operation}: receive`, errno, object);
      }
      // A copy: a dump's replies span several datagrams, all read into this one buffer.
      return Buffer.from(this.#buf.subarray(0, n));
    }
  }

  protected release(): void {
    libc().close(this.#fd);
  }
}
