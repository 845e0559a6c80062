/**
 * rtnetlink messages as bytes: the requests Skein sends (links, veth pairs, addresses, routes,
 * neighbours, dumps) and the replies it reads. Pure and deterministic, so unit tests compare
 * golden bytes without privileges; loader/netlink.ts sends them. Layouts and constants are the
 * kernel's uapi (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h,
 * linux/neighbour.h, linux/veth.h). Netlink uses the host's byte order: little-endian on every
 * platform Skein ships for (x86_64, arm64); addresses inside attributes are in network order.
 */

export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** In an NLMSG_ERROR reply: extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;
/** In an NLMSG_ERROR reply: the request was not echoed (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
const NLMSGERR_ATTR_MSG = 1;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_GETNEIGH = 30;

export const AF_UNSPEC = 0;
export const AF_INET = 2;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
export const IFF_UP = 0x1;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_TABLE = 15;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

const NDA_DST = 1;
const NDA_LLADDR = 2;
export const NUD_PERMANENT = 0x80;

/** One attribute: raw bytes, or nested attributes (sent with NLA_F_NESTED). */
export interface Attr {
  type: number;
  value: Uint8Array | readonly Attr[];
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Attributes as bytes, each padded to 4 bytes. */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const nested = !(a.value instanceof Uint8Array);
    const body = a.value instanceof Uint8Array ? Buffer.from(a.value) : encodeAttrs(a.value);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + body.length, 0);
    head.writeUInt16LE(a.type | (nested ? NLA_F_NESTED : 0), 2);
    parts.push(head, body, Buffer.alloc(align4(body.length) - body.length));
  }
  return Buffer.concat(parts);
}

export function u32Attr(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return { type, value: b };
}

/** A NUL-terminated string attribute. */
export function stringAttr(type: number, s: string): Attr {
  return { type, value: Buffer.from(`${s}\0`, "latin1") };
}

/** 4 bytes, network order. Throws RangeError for anything but a dotted quad. */
export function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new RangeError(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts.map(Number));
}

/** 6 bytes of a MAC written aa:bb:cc:dd:ee:ff. Throws RangeError otherwise. */
export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new RangeError(`not a MAC address: ${mac}`);
  return Buffer.from(mac.split(":").map((x) => Number.parseInt(x, 16)));
}

export function formatIpv4(b: Uint8Array): string {
  return [...b.subarray(0, 4)].join(".");
}

export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** A whole message: nlmsghdr (length, type, flags, seq, port 0), fixed header, attributes. */
export function nlmsg(
  type: number,
  flags: number,
  seq: number,
  header: Buffer,
  attrs: readonly Attr[] = [],
): Buffer {
  const body = Buffer.concat([
    header,
    Buffer.alloc(align4(header.length) - header.length),
    encodeAttrs(attrs),
  ]);
  const head = Buffer.alloc(NLMSG_HDRLEN);
  head.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq >>> 0, 8);
  head.writeUInt32LE(0, 12);
  return Buffer.concat([head, body]);
}

/** struct ifinfomsg (16 bytes). */
export function ifinfomsg(
  o: { family?: number; index?: number; flags?: number; change?: number } = {},
): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(
  o: { family?: number; prefixlen?: number; scope?: number; index?: number } = {},
): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeUInt8(o.prefixlen ?? 0, 1);
  b.writeUInt8(o.scope ?? 0, 3);
  b.writeUInt32LE(o.index ?? 0, 4);
  return b;
}

/** struct rtmsg (12 bytes). */
export function rtmsg(
  o: {
    family?: number;
    dstLen?: number;
    table?: number;
    protocol?: number;
    scope?: number;
    type?: number;
  } = {},
): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeUInt8(o.dstLen ?? 0, 1);
  b.writeUInt8(o.table ?? 0, 4);
  b.writeUInt8(o.protocol ?? 0, 5);
  b.writeUInt8(o.scope ?? 0, 6);
  b.writeUInt8(o.type ?? 0, 7);
  return b;
}

/** struct ndmsg (12 bytes). */
export function ndmsg(o: { family?: number; ifindex?: number; state?: number } = {}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.ifindex ?? 0, 4);
  b.writeUInt16LE(o.state ?? 0, 8);
  return b;
}

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const ACKED = NLM_F_REQUEST | NLM_F_ACK;

/** One end of a veth pair to create. */
export interface VethEnd {
  name: string;
  mac?: string;
  mtu?: number;
  /** An fd of the network namespace to create this end in (the caller's when absent). */
  netnsFd?: number;
}

function endAttrs(end: VethEnd): Attr[] {
  const attrs: Attr[] = [stringAttr(IFLA_IFNAME, end.name)];
  if (end.mac !== undefined) attrs.push({ type: IFLA_ADDRESS, value: macBytes(end.mac) });
  if (end.mtu !== undefined) attrs.push(u32Attr(IFLA_MTU, end.mtu));
  if (end.netnsFd !== undefined) attrs.push(u32Attr(IFLA_NET_NS_FD, end.netnsFd));
  return attrs;
}

/** RTM_NEWLINK creating a veth pair (`ip link add NAME type veth peer name PEER ...`); fails if NAME exists. */
export function newVethRequest(host: VethEnd, peer: VethEnd, seq = 0): Buffer {
  const peerInfo = Buffer.concat([ifinfomsg(), encodeAttrs(endAttrs(peer))]);
  return nlmsg(RTM_NEWLINK, CREATE, seq, ifinfomsg(), [
    ...endAttrs(host),
    {
      type: IFLA_LINKINFO,
      value: [
        stringAttr(IFLA_INFO_KIND, "veth"),
        { type: IFLA_INFO_DATA, value: [{ type: VETH_INFO_PEER, value: peerInfo }] },
      ],
    },
  ]);
}

/** RTM_NEWLINK on an existing link: administrative state and/or MTU. */
export function setLinkRequest(index: number, change: { up?: boolean; mtu?: number }, seq = 0): Buffer {
  const header =
    change.up === undefined
      ? ifinfomsg({ index })
      : ifinfomsg({ index, flags: change.up ? IFF_UP : 0, change: IFF_UP });
  return nlmsg(
    RTM_NEWLINK,
    ACKED,
    seq,
    header,
    change.mtu === undefined ? [] : [u32Attr(IFLA_MTU, change.mtu)],
  );
}

/** RTM_NEWLINK on an existing link: move it into another network namespace (`ip link set X netns`). */
export function moveLinkRequest(index: number, netnsFd: number, seq = 0): Buffer {
  return nlmsg(RTM_NEWLINK, ACKED, seq, ifinfomsg({ index }), [u32Attr(IFLA_NET_NS_FD, netnsFd)]);
}

/** RTM_GETLINK for one link by name. */
export function getLinkRequest(name: string, seq = 0): Buffer {
  return nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, ifinfomsg(), [stringAttr(IFLA_IFNAME, name)]);
}

/** RTM_DELLINK by name (a veth takes its peer with it). */
export function deleteLinkRequest(name: string, seq = 0): Buffer {
  return nlmsg(RTM_DELLINK, ACKED, seq, ifinfomsg(), [stringAttr(IFLA_IFNAME, name)]);
}

/** RTM_NEWADDR: `ip addr add IP/PREFIX dev INDEX`; fails if present. */
export function addAddressRequest(index: number, ip: string, prefixlen: number, seq = 0): Buffer {
  const bytes = ipv4Bytes(ip);
  return nlmsg(
    RTM_NEWADDR,
    CREATE,
    seq,
    ifaddrmsg({ family: AF_INET, prefixlen, scope: RT_SCOPE_UNIVERSE, index }),
    [
      { type: IFA_LOCAL, value: bytes },
      { type: IFA_ADDRESS, value: bytes },
    ],
  );
}

/** An IPv4 route in the main table. */
export interface RouteSpec {
  /** Destination network address ("0.0.0.0" with dstLen 0 for the default route). */
  dst: string;
  dstLen: number;
  oif: number;
  gateway?: string;
  scope: number;
}

/** RTM_NEWROUTE in the main table, protocol boot, unicast (`ip route add`); fails if present. */
export function addRouteRequest(r: RouteSpec, seq = 0): Buffer {
  const attrs: Attr[] = [];
  if (r.dstLen > 0) attrs.push({ type: RTA_DST, value: ipv4Bytes(r.dst) });
  if (r.gateway !== undefined) attrs.push({ type: RTA_GATEWAY, value: ipv4Bytes(r.gateway) });
  attrs.push(u32Attr(RTA_OIF, r.oif));
  return nlmsg(
    RTM_NEWROUTE,
    CREATE,
    seq,
    rtmsg({
      family: AF_INET,
      dstLen: r.dstLen,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_BOOT,
      scope: r.scope,
      type: RTN_UNICAST,
    }),
    attrs,
  );
}

/** RTM_NEWNEIGH, created or replaced, permanent (`ip neigh replace IP lladdr MAC dev INDEX nud permanent`). */
export function replaceNeighbourRequest(ifindex: number, ip: string, mac: string, seq = 0): Buffer {
  return nlmsg(
    RTM_NEWNEIGH,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    seq,
    ndmsg({ family: AF_INET, ifindex, state: NUD_PERMANENT }),
    [
      { type: NDA_DST, value: ipv4Bytes(ip) },
      { type: NDA_LLADDR, value: macBytes(mac) },
    ],
  );
}

/** A dump of every link, IPv4 address, IPv4 route or IPv4 neighbour in the socket's namespace. */
export function dumpRequest(what: "links" | "addresses" | "routes" | "neighbours", seq = 0): Buffer {
  const flags = NLM_F_REQUEST | NLM_F_DUMP;
  switch (what) {
    case "links":
      return nlmsg(RTM_GETLINK, flags, seq, ifinfomsg());
    case "addresses":
      return nlmsg(RTM_GETADDR, flags, seq, ifaddrmsg({ family: AF_INET }));
    case "routes":
      return nlmsg(RTM_GETROUTE, flags, seq, rtmsg({ family: AF_INET }));
    case "neighbours":
      return nlmsg(RTM_GETNEIGH, flags, seq, ndmsg({ family: AF_INET }));
  }
}

/** One received message. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** Everything after nlmsghdr. */
  payload: Buffer;
}

/** Splits a datagram into messages. Throws RangeError on a malformed length. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length)
      throw new RangeError(`netlink: bad message length ${len}`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes starting at `offset` of `buf`, by type (nested flag stripped; the first of a type wins). */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (!attrs.has(type)) attrs.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return attrs;
}

function cString(b: Buffer | undefined): string | undefined {
  if (b === undefined) return undefined;
  const end = b.indexOf(0);
  return b.toString("latin1", 0, end < 0 ? b.length : end);
}

/** An NLMSG_ERROR reply: errno 0 is the ack of a successful request. */
export interface NlError {
  /** Positive errno; 0 for an ack. */
  errno: number;
  /** The kernel's extended-ack message, when it gave one. */
  message?: string;
}

export function decodeError(m: NlMessage): NlError {
  const raw = m.payload.readInt32LE(0);
  const errno = raw === 0 ? 0 : -raw; // not -0 for an ack
  const out: NlError = { errno };
  if ((m.flags & NLM_F_ACK_TLVS) !== 0) {
    // The echoed request: only its header when capped.
    const echoed = (m.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : m.payload.readUInt32LE(4);
    const text = cString(parseAttrs(m.payload, 4 + align4(echoed)).get(NLMSGERR_ATTR_MSG));
    if (text !== undefined && text !== "") out.message = text;
  }
  return out;
}

/** A link as RTM_NEWLINK describes it. */
export interface NlLink {
  ifindex: number;
  name: string;
  /** "" for links without a hardware address. */
  mac: string;
  mtu: number;
  flags: number;
  up: boolean;
}

export function decodeLink(payload: Buffer): NlLink {
  const attrs = parseAttrs(payload, 16);
  const address = attrs.get(IFLA_ADDRESS);
  const flags = payload.readUInt32LE(8);
  return {
    ifindex: payload.readInt32LE(4),
    name: cString(attrs.get(IFLA_IFNAME)) ?? "",
    mac: address?.length === 6 ? formatMac(address) : "",
    mtu: attrs.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    flags,
    up: (flags & IFF_UP) !== 0,
  };
}

/** An IPv4 address as RTM_NEWADDR describes it. */
export interface NlAddress {
  ifindex: number;
  address: string;
  prefixlen: number;
}

export function decodeAddress(payload: Buffer): NlAddress | undefined {
  if (payload.readUInt8(0) !== AF_INET) return undefined;
  const attrs = parseAttrs(payload, 8);
  const ip = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  if (ip === undefined) return undefined;
  return { ifindex: payload.readUInt32LE(4), address: formatIpv4(ip), prefixlen: payload.readUInt8(1) };
}

/** An IPv4 route as RTM_NEWROUTE describes it. */
export interface NlRoute {
  /** Network address; "0.0.0.0" for the default route. */
  dst: string;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  gateway?: string;
  oif?: number;
}

export function decodeRoute(payload: Buffer): NlRoute | undefined {
  if (payload.readUInt8(0) !== AF_INET) return undefined;
  const attrs = parseAttrs(payload, 12);
  const dst = attrs.get(RTA_DST);
  const route: NlRoute = {
    dst: dst === undefined ? "0.0.0.0" : formatIpv4(dst),
    dstLen: payload.readUInt8(1),
    table: attrs.get(RTA_TABLE)?.readUInt32LE(0) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: payload.readUInt8(6),
    type: payload.readUInt8(7),
  };
  const gateway = attrs.get(RTA_GATEWAY);
  if (gateway !== undefined) route.gateway = formatIpv4(gateway);
  const oif = attrs.get(RTA_OIF);
  if (oif !== undefined) route.oif = oif.readUInt32LE(0);
  return route;
}

/** An IPv4 neighbour entry as RTM_NEWNEIGH describes it. */
export interface NlNeighbour {
  ifindex: number;
  ip: string;
  mac?: string;
  /** NUD_* bits. */
  state: number;
}

export function decodeNeighbour(payload: Buffer): NlNeighbour | undefined {
  if (payload.readUInt8(0) !== AF_INET) return undefined;
  const attrs = parseAttrs(payload, 12);
  const dst = attrs.get(NDA_DST);
  if (dst === undefined) return undefined;
  const n: NlNeighbour = {
    ifindex: payload.readInt32LE(4),
    ip: formatIpv4(dst),
    state: payload.readUInt16LE(8),
  };
  const mac = attrs.get(NDA_LLADDR);
  if (mac?.length === 6) n.mac = formatMac(mac);
  return n;
}
