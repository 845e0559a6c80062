/**
 * rtnetlink message encoding against golden bytes worked out from the uapi layouts (nlmsghdr,
 * ifinfomsg, ifaddrmsg, rtmsg, ndmsg, nlattr), reply decoding from hand-made replies, and an
 * attribute round-trip property. Unprivileged.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  NLMSG_ERROR,
  RTM_NEWLINK,
  addAddressRequest,
  addRouteRequest,
  decodeError,
  decodeLink,
  decodeNeighbour,
  decodeRoute,
  deleteLinkRequest,
  dumpRequest,
  encodeAttrs,
  getLinkRequest,
  ifinfomsg,
  ipv4Bytes,
  macBytes,
  newVethRequest,
  nlmsg,
  parseAttrs,
  parseMessages,
  replaceNeighbourRequest,
  setLinkRequest,
  stringAttr,
  u32Attr,
} from "../../loader/netlink-codec.js";

const hex = (b: Buffer): string => b.toString("hex");
const bytes = (...parts: string[]): string => parts.join("").replaceAll(" ", "");

describe("loader: rtnetlink message codec (golden bytes)", function () {
  it("RTM_GETLINK by name", function () {
    assert.equal(
      hex(getLinkRequest("lo", 1)),
      bytes(
        "28000000 1200 0100 01000000 00000000", // len 40, RTM_GETLINK, REQUEST, seq 1, port 0
        "00 00 0000 00000000 00000000 00000000", // ifinfomsg
        "0700 0300 6c6f00 00", // IFLA_IFNAME "lo\0", padded
      ),
    );
  });

  it("RTM_NEWADDR: a /32 with IFA_LOCAL and IFA_ADDRESS, create-exclusive and acked", function () {
    assert.equal(
      hex(addAddressRequest(2, "10.1.2.3", 32, 7)),
      bytes(
        "28000000 1400 0506 07000000 00000000", // REQUEST|ACK|EXCL|CREATE
        "02 20 00 00 02000000", // AF_INET, /32, flags 0, scope universe, ifindex 2
        "0800 0200 0a010203", // IFA_LOCAL
        "0800 0100 0a010203", // IFA_ADDRESS
      ),
    );
  });

  it("RTM_NEWROUTE: default via a gateway, main table, protocol boot, unicast", function () {
    assert.equal(
      hex(addRouteRequest({ dst: "0.0.0.0", dstLen: 0, gateway: "169.254.1.1", oif: 3, scope: 0 }, 9)),
      bytes(
        "2c000000 1800 0506 09000000 00000000",
        "02 00 00 00 fe 03 00 01 00000000", // AF_INET, dst_len 0, table 254, RTPROT_BOOT, universe, RTN_UNICAST
        "0800 0500 a9fe0101", // RTA_GATEWAY
        "0800 0400 03000000", // RTA_OIF
      ),
    );
  });

  it("RTM_NEWROUTE: a link-scoped host route carries RTA_DST", function () {
    assert.equal(
      hex(addRouteRequest({ dst: "10.1.2.3", dstLen: 32, oif: 4, scope: 253 }, 1)),
      bytes(
        "2c000000 1800 0506 01000000 00000000",
        "02 20 00 00 fe 03 fd 01 00000000",
        "0800 0100 0a010203", // RTA_DST
        "0800 0400 04000000",
      ),
    );
  });

  it("RTM_NEWNEIGH: permanent, create-or-replace", function () {
    assert.equal(
      hex(replaceNeighbourRequest(3, "169.254.1.1", "02:00:00:00:00:01", 2)),
      bytes(
        "30000000 1c00 0505 02000000 00000000", // REQUEST|ACK|REPLACE|CREATE
        "02 00 0000 03000000 8000 00 00", // AF_INET, ifindex 3, NUD_PERMANENT
        "0800 0100 a9fe0101", // NDA_DST
        "0a00 0200 020000000001 0000", // NDA_LLADDR, padded
      ),
    );
  });

  it("RTM_NEWLINK: a veth pair with the peer's name, MAC, MTU and namespace fd nested in IFLA_LINKINFO", function () {
    const msg = newVethRequest(
      { name: "skn0", mac: "02:00:00:00:00:01", mtu: 1400 },
      { name: "eth0", mac: "02:00:00:00:00:02", mtu: 1400, netnsFd: 5 },
      3,
    );
    assert.equal(
      hex(msg),
      bytes(
        "90000000 1000 0506 03000000 00000000", // len 144, RTM_NEWLINK
        "00 00 0000 00000000 00000000 00000000",
        "0900 0300 736b6e30 00 000000", // IFLA_IFNAME "skn0"
        "0a00 0100 020000000001 0000", // IFLA_ADDRESS
        "0800 0400 78050000", // IFLA_MTU 1400
        "5000 1280", // IFLA_LINKINFO | NLA_F_NESTED, 80 bytes
        "0900 0100 76657468 00 000000", // IFLA_INFO_KIND "veth"
        "4000 0280", // IFLA_INFO_DATA | NLA_F_NESTED, 64 bytes
        "3c00 0100", // VETH_INFO_PEER: ifinfomsg + the peer's attributes
        "00 00 0000 00000000 00000000 00000000",
        "0900 0300 65746830 00 000000", // IFLA_IFNAME "eth0"
        "0a00 0100 020000000002 0000",
        "0800 0400 78050000",
        "0800 1c00 05000000", // IFLA_NET_NS_FD 5
      ),
    );
  });

  it("RTM_NEWLINK on an index sets IFF_UP in flags and change; RTM_DELLINK by name", function () {
    assert.equal(
      hex(setLinkRequest(7, { up: true }, 4)),
      bytes("20000000 1000 0500 04000000 00000000", "00 00 0000 07000000 01000000 01000000"),
    );
    assert.equal(
      hex(deleteLinkRequest("skn0", 5)),
      bytes(
        "2c000000 1100 0500 05000000 00000000",
        "00 00 0000 00000000 00000000 00000000",
        "0900 0300 736b6e30 00 000000",
      ),
    );
  });

  it("dumps: NLM_F_DUMP with an AF_INET header where the kernel filters on it", function () {
    assert.equal(
      hex(dumpRequest("routes", 6)),
      bytes("1c000000 1a00 0103 06000000 00000000", "02000000 00000000 00000000"),
    );
    assert.equal(hex(dumpRequest("links", 6)).slice(8, 16), "12000103");
  });

  it("refuses what is not an IPv4 address or a MAC", function () {
    assert.throws(() => ipv4Bytes("10.0.0.256"), RangeError);
    assert.throws(() => ipv4Bytes("10.0.0"), RangeError);
    assert.throws(() => macBytes("02:00:00:00:00"), RangeError);
  });
});

describe("loader: rtnetlink reply decoding", function () {
  it("an error with the kernel's extended-ack message (request capped)", function () {
    const payload = Buffer.concat([
      Buffer.from("efffffff", "hex"), // -17: EEXIST
      getLinkRequest("x").subarray(0, 16), // the request's header only (NETLINK_CAP_ACK)
      encodeAttrs([stringAttr(1, "ipv4: Address already assigned")]),
    ]);
    const msg = nlmsg(NLMSG_ERROR, 0x300, 3, payload);
    const [m] = parseMessages(msg);
    assert.ok(m !== undefined);
    assert.deepEqual(decodeError(m), { errno: 17, message: "ipv4: Address already assigned" });
  });

  it("an ack is an error of 0", function () {
    const [m] = parseMessages(
      nlmsg(NLMSG_ERROR, 0x100, 1, Buffer.concat([Buffer.alloc(4), Buffer.alloc(16)])),
    );
    assert.ok(m !== undefined);
    assert.deepEqual(decodeError(m), { errno: 0 });
  });

  it("a link, a route and a neighbour", function () {
    const link = nlmsg(RTM_NEWLINK, 0, 1, ifinfomsg({ index: 5, flags: 0x1043 }), [
      stringAttr(3, "eth0"),
      { type: 1, value: macBytes("02:aa:bb:cc:dd:ee") },
      u32Attr(4, 1450),
    ]);
    const [lm] = parseMessages(link);
    assert.ok(lm !== undefined);
    assert.deepEqual(decodeLink(lm.payload), {
      ifindex: 5,
      name: "eth0",
      mac: "02:aa:bb:cc:dd:ee",
      mtu: 1450,
      flags: 0x1043,
      up: true,
    });

    const route = addRouteRequest({ dst: "10.1.0.0", dstLen: 16, gateway: "10.0.0.1", oif: 2, scope: 0 });
    const [rm] = parseMessages(route);
    assert.ok(rm !== undefined);
    assert.deepEqual(decodeRoute(rm.payload), {
      dst: "10.1.0.0",
      dstLen: 16,
      table: 254,
      protocol: 3,
      scope: 0,
      type: 1,
      gateway: "10.0.0.1",
      oif: 2,
    });

    const [nm] = parseMessages(replaceNeighbourRequest(4, "10.0.0.9", "02:00:00:00:00:09"));
    assert.ok(nm !== undefined);
    assert.deepEqual(decodeNeighbour(nm.payload), {
      ifindex: 4,
      ip: "10.0.0.9",
      state: 0x80,
      mac: "02:00:00:00:00:09",
    });
  });

  it("several messages in one datagram, each 4-byte aligned", function () {
    const both = Buffer.concat([getLinkRequest("a", 1), getLinkRequest("bbbbbb", 2)]);
    assert.deepEqual(
      parseMessages(both).map((m) => m.seq),
      [1, 2],
    );
    assert.throws(() => parseMessages(Buffer.from("ff000000120001000100000000000000", "hex")), RangeError);
  });

  it("attributes round-trip: encodeAttrs then parseAttrs gives back every value", function () {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({ type: fc.integer({ min: 1, max: 0x3fff }), value: fc.uint8Array({ maxLength: 40 }) }),
          { selector: (a) => a.type, maxLength: 12 },
        ),
        (attrs) => {
          const encoded = encodeAttrs(attrs);
          assert.equal(encoded.length % 4, 0);
          const parsed = parseAttrs(encoded);
          assert.equal(parsed.size, attrs.length);
          for (const a of attrs) assert.deepEqual(new Uint8Array(parsed.get(a.type) ?? []), a.value);
        },
      ),
    );
  });
});
