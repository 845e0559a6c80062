/**
 * The datapath's own VXLAN (--encap bpf), through BPF_PROG_TEST_RUN on the real object with two
 * private datapaths standing for two nodes: skn_from_pod on node A writes the outer headers itself,
 * and the frame it produces, fed to skn_from_uplink on node B, comes out as the inner packet for
 * B's pod. Everything on the uplink that is not VXLAN for a pod here passes untouched.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity } from "../../maps/identities.js";
import { PROGRAMS } from "../../maps/pins.js";
import { formatIPv4 } from "../../maps/net.js";
import { ConfigFlag, vxlanMacFor } from "../../maps/config.js";
import type { PrivateDatapath } from "../../maps/datapath/private.js";
import {
  EtherType,
  IpProto,
  ethernet,
  inetChecksum,
  ipv4Frame,
  ipv4Packet,
  probeFrame,
  udpDatagram,
} from "../../maps/packet.js";
import { requireRoot } from "../helpers/privileged.js";
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, loadTestDatapath, run } from "../helpers/datapath.js";

const NODE_A = "198.18.0.11";
const NODE_B = "198.18.0.12";
const UPLINK_A = 7;
const UPLINK_B = 9;
const POD_A = { ip: "10.244.0.10", mac: "02:aa:00:00:00:0a", hostMac: "02:bb:00:00:00:0a", ifindex: 1 };
const POD_B = { ip: "10.244.1.20", mac: "02:aa:00:00:01:14", hostMac: "02:bb:00:00:01:14", ifindex: 21 };
const UPLINK_MAC_B = "02:cc:00:00:00:0c";
const ID_A = 300;
const ID_B = 301;
const hex = (mac: string) => mac.replaceAll(":", "");

/** A VXLAN frame as it arrives on B's uplink: outer headers from `outerSrc`, VNI, inner frame. */
function vxlanFrame(spec: {
  outerSrc: string;
  outerDst: string;
  vni: number;
  inner: Buffer;
  port?: number;
}): Buffer {
  const vxlan = Buffer.alloc(8 + spec.inner.length);
  vxlan.writeUInt32BE(0x08000000, 0);
  vxlan.writeUInt32BE((spec.vni << 8) >>> 0, 4);
  spec.inner.copy(vxlan, 8);
  const udp = udpDatagram({
    src: spec.outerSrc,
    dst: spec.outerDst,
    sport: 51000,
    dport: spec.port ?? 4789,
    payload: vxlan,
  });
  return ipv4Frame({
    src: spec.outerSrc,
    dst: spec.outerDst,
    protocol: IpProto.UDP,
    payload: udp,
    dstMac: UPLINK_MAC_B,
  });
}

describe("datapath: encapsulation in BPF (skn_from_pod → uplink → skn_from_uplink)", function () {
  let a = undefined as unknown as PrivateDatapath;
  let b = undefined as unknown as PrivateDatapath;

  before(function () {
    requireRoot(this);
    a = loadTestDatapath();
    b = loadTestDatapath();
    for (const [dp, node, uplink, own, other, otherNode, ownId, otherId] of [
      [a, NODE_A, UPLINK_A, POD_A, POD_B, NODE_B, ID_A, ID_B],
      [b, NODE_B, UPLINK_B, POD_B, POD_A, NODE_A, ID_B, ID_A],
    ] as const) {
      dp.endpoints.set(own.ip, { ifindex: own.ifindex, flags: 0, mac: own.mac, hostMac: own.hostMac });
      dp.ipcache.set(
        { ip: own.ip, length: 32 },
        { identity: ownId, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      dp.ipcache.set(
        { ip: other.ip, length: 32 },
        { identity: otherId, tunnelIp: otherNode, cidrIdentity: 0, flags: 0 },
      );
      // The other node itself, as the agent's ipcache names every node of the cluster.
      dp.ipcache.set(
        { ip: otherNode, length: 32 },
        { identity: Identity.remoteNode, tunnelIp: otherNode, cidrIdentity: 0, flags: 0 },
      );
      dp.config.write({
        vxlanIfindex: 1,
        nodeIp: node,
        vxlanMac: vxlanMacFor(node),
        flags: 0,
        vxlanPort: 4789,
        uplinkIfindex: uplink,
      });
    }
  });

  after(function () {
    (a as PrivateDatapath | undefined)?.close();
    (b as PrivateDatapath | undefined)?.close();
  });

  beforeEach(function () {
    for (const dp of [a, b] as (PrivateDatapath | undefined)[])
      if (dp !== undefined) for (const k of [...dp.conntrack.raw.keys()]) dp.conntrack.raw.delete(k);
  });

  function encapsulate(frame: Buffer): Buffer {
    const r = run(a, PROGRAMS.fromPod, frame, { ifindex: 1 });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_overlay");
    assert.equal(r.decision.ifindex, UPLINK_A, "redirected to the uplink");
    return r.out;
  }

  it("writes outer IPv4/UDP/VXLAN headers: node to node, port 4789, VNI = identity, valid checksum", function () {
    const frame = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 40000, dport: 80 });
    const out = encapsulate(frame);
    assert.equal(out.length, frame.length + 50);
    assert.equal(out.readUInt16BE(12), EtherType.IPv4);
    const ip = out.subarray(14, 34);
    assert.equal(ip[0], 0x45);
    assert.equal(ip.readUInt16BE(2), frame.length - 14 + 50, "outer total length");
    assert.equal(ip.readUInt16BE(6), 0x4000, "DF, no fragment");
    assert.equal(ip[9], IpProto.UDP);
    assert.equal(formatIPv4(ip.readUInt32BE(12)), NODE_A);
    assert.equal(formatIPv4(ip.readUInt32BE(16)), NODE_B);
    assert.equal(inetChecksum(ip), 0, "outer header checksum verifies");
    const udp = out.subarray(34, 42);
    assert.ok(udp.readUInt16BE(0) >= 0xc000, "source port from the flow hash, 49152 and up");
    assert.equal(udp.readUInt16BE(2), 4789);
    assert.equal(udp.readUInt16BE(4), frame.length - 14 + 50 - 20, "UDP length");
    assert.equal(udp.readUInt16BE(6), 0, "no UDP checksum (IPv4)");
    assert.equal(out.readUInt32BE(42), 0x08000000, "VXLAN I flag");
    assert.equal(out.readUInt32BE(46) >>> 8, ID_A, "VNI carries the source identity");
    assert.equal(out.subarray(50, 56).toString("hex"), hex(vxlanMacFor(NODE_B)), "inner destination MAC");
    assert.equal(out.subarray(56, 62).toString("hex"), hex(vxlanMacFor(NODE_A)), "inner source MAC");
    assert.deepEqual(out.subarray(62), frame.subarray(12), "the pod's packet, unchanged, inside");
  });

  it("the same flow always gets the same UDP source port", function () {
    const frame = probeFrame({ protocol: "UDP", src: POD_A.ip, dst: POD_B.ip, sport: 5000, dport: 53 });
    assert.equal(encapsulate(frame).readUInt16BE(34), encapsulate(frame).readUInt16BE(34));
  });

  it("with the tunnel-onlink flag (remote node as next hop, no route lookup), redirects the same frame to the uplink", function () {
    const frame = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 40009, dport: 80 });
    const plain = encapsulate(frame);
    const config = a.config.read();
    a.config.write({ ...config, flags: config.flags | ConfigFlag.tunnelOnLink });
    try {
      assert.deepEqual(encapsulate(frame), plain);
    } finally {
      a.config.write(config);
    }
  });

  it("decapsulates on the receiving uplink and hands the inner packet to the pod (bpf_redirect_peer)", function () {
    const frame = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 40001, dport: 80 });
    const wire = Buffer.from(encapsulate(frame));
    Buffer.from(hex(UPLINK_MAC_B), "hex").copy(wire, 0); // what the neighbour lookup writes
    const before = b.metrics.get("fwd_local", "ingress").packets;
    const r = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_local");
    assert.equal(r.decision.ifindex, POD_B.ifindex);
    assert.equal(r.out.length, frame.length);
    assert.equal(r.out.subarray(0, 6).toString("hex"), hex(POD_B.mac));
    assert.equal(r.out.subarray(6, 12).toString("hex"), hex(POD_B.hostMac));
    assert.deepEqual(r.out.subarray(12), frame.subarray(12));
    assert.equal(b.metrics.get("fwd_local", "ingress").packets, before + 1n);
    assert.equal(b.conntrack.count(), 1, "the flow is tracked on the receiver");
  });

  it("the VXLAN port: 0 in skn_config means 4789; a configured port is the one written and the only one taken", function () {
    const saved = [a.config.read(), b.config.read()] as const;
    const setPort = (port: number) => {
      a.config.write({ ...saved[0], vxlanPort: port });
      b.config.write({ ...saved[1], vxlanPort: port });
    };
    const received = (wire: Buffer) => run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 }).retval;
    const inner = (sport: number) =>
      probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport, dport: 80 });
    try {
      setPort(0);
      const sent = encapsulate(inner(40020));
      assert.equal(sent.readUInt16BE(36), 4789, "UDP destination port");
      assert.equal(
        received(vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner: inner(40021) })),
        TC_ACT_REDIRECT,
      );
      setPort(8472);
      assert.equal(encapsulate(inner(40022)).readUInt16BE(36), 8472);
      assert.equal(
        received(
          vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner: inner(40023), port: 8472 }),
        ),
        TC_ACT_REDIRECT,
      );
      assert.equal(
        received(vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner: inner(40024) })),
        TC_ACT_OK,
        "4789 is left to the stack when another port is configured",
      );
    } finally {
      a.config.write(saved[0]);
      b.config.write(saved[1]);
    }
  });

  it("enforces ingress policy for the pod before decapsulating", function () {
    b.ipcache.set(
      { ip: POD_B.ip, length: 32 },
      { identity: ID_B, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceIngress },
    );
    try {
      const inner = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 40002, dport: 80 });
      const wire = vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner });
      const denied = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
      assert.equal(denied.retval, TC_ACT_SHOT);
      assert.equal(denied.decision.reason, "drop_policy");
      assert.equal(denied.decision.direction, "ingress");
      b.policy.set(
        { endpointIp: POD_B.ip, direction: "ingress", peerIdentity: ID_A, protocol: IpProto.TCP, port: 80 },
        { ruleId: 5, flags: 0 },
      );
      const allowed = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
      assert.equal(allowed.retval, TC_ACT_REDIRECT);
      assert.equal(allowed.decision.ruleId, 5);
    } finally {
      b.ipcache.set(
        { ip: POD_B.ip, length: 32 },
        { identity: ID_B, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      for (const k of [...b.policy.raw.keys()]) b.policy.raw.delete(k);
    }
  });

  it("drops a pod address arriving from a node it does not live behind (spoofing)", function () {
    const inner = probeFrame({ protocol: "UDP", src: POD_A.ip, dst: POD_B.ip, sport: 5001, dport: 53 });
    const wire = vxlanFrame({ outerSrc: "198.18.0.99", outerDst: NODE_B, vni: ID_A, inner });
    const before = b.metrics.get("drop_spoofed", "ingress").packets;
    const r = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(r.decision.reason, "drop_spoofed");
    assert.equal(b.metrics.get("drop_spoofed", "ingress").packets, before + 1n);
  });

  it("drops overlay packets from an address that is not a node of the cluster, whatever the inner source", function () {
    for (const innerSrc of [POD_A.ip, "10.99.0.1"]) {
      const inner = probeFrame({ protocol: "TCP", src: innerSrc, dst: POD_B.ip, sport: 40010, dport: 80 });
      const wire = vxlanFrame({ outerSrc: "198.18.0.250", outerDst: NODE_B, vni: ID_A, inner });
      const r = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
      assert.equal(r.retval, TC_ACT_SHOT, `inner source ${innerSrc}`);
      assert.equal(r.decision.reason, "drop_spoofed");
    }
    // From a node, an inner source the ipcache does not know (outside the cluster) is let through.
    const inner = probeFrame({ protocol: "TCP", src: "10.99.0.1", dst: POD_B.ip, sport: 40011, dport: 80 });
    const wire = vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner });
    assert.equal(run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 }).retval, TC_ACT_REDIRECT);
  });

  describe("leaves to the stack, untouched and uncounted", function () {
    const inner = probeFrame({ protocol: "UDP", src: POD_A.ip, dst: POD_B.ip, sport: 5002, dport: 53 });
    const cases: [string, () => Buffer][] = [
      [
        "VXLAN for the node itself (inner destination not a pod here)",
        () =>
          vxlanFrame({
            outerSrc: NODE_A,
            outerDst: NODE_B,
            vni: Identity.remoteNode,
            inner: probeFrame({ protocol: "UDP", src: POD_A.ip, dst: NODE_B, sport: 5003, dport: 53 }),
          }),
      ],
      [
        "VXLAN to another address",
        () => vxlanFrame({ outerSrc: NODE_A, outerDst: "198.18.0.13", vni: ID_A, inner }),
      ],
      [
        "UDP to another port",
        () => vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner, port: 4790 }),
      ],
      [
        "plain TCP to the node",
        () => probeFrame({ protocol: "TCP", src: NODE_A, dst: NODE_B, sport: 22, dport: 40000 }),
      ],
      ["ARP", () => ethernet("ff:ff:ff:ff:ff:ff", UPLINK_MAC_B, EtherType.ARP, Buffer.alloc(28))],
      [
        "a VXLAN frame cut short in its inner header",
        () => vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner }).subarray(0, 14 + 50 + 10),
      ],
      [
        "an outer fragment",
        () =>
          ethernet(
            UPLINK_MAC_B,
            undefined,
            EtherType.IPv4,
            ipv4Packet({
              src: NODE_A,
              dst: NODE_B,
              protocol: IpProto.UDP,
              fragmentOffset: 0x2000,
              payload: Buffer.alloc(64),
            }),
          ),
      ],
    ];
    for (const [name, make] of cases)
      it(name, function () {
        const frame = make();
        const zero = Buffer.alloc(4);
        b.decision.raw.update(zero, Buffer.alloc(32));
        const r = run(b, PROGRAMS.fromUplink, frame, { ifindex: 1 });
        assert.equal(r.retval, TC_ACT_OK);
        assert.deepEqual(r.out, frame);
        assert.deepEqual(b.decision.raw.lookup(zero), Buffer.alloc(32), "no verdict recorded");
      });
  });

  it("with encapsulation in BPF off (uplink 0), skn_from_uplink leaves VXLAN for pods to the device", function () {
    b.config.write({ ...b.config.read(), uplinkIfindex: 0 });
    try {
      const inner = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 40003, dport: 80 });
      const wire = vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni: ID_A, inner });
      const r = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
      assert.equal(r.retval, TC_ACT_OK);
      assert.deepEqual(r.out, wire);
    } finally {
      b.config.write({ ...b.config.read(), uplinkIfindex: UPLINK_B });
    }
  });

  it("never crashes on arbitrary bytes after a valid outer header, and never touches what it passes", function () {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.integer({ min: 0, max: 0xffffff }),
        (tail, vni) => {
          const wire = vxlanFrame({ outerSrc: NODE_A, outerDst: NODE_B, vni, inner: Buffer.from(tail) });
          const r = run(b, PROGRAMS.fromUplink, wire, { ifindex: 1 });
          assert.ok([TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT].includes(r.retval));
          if (r.retval === TC_ACT_OK) assert.deepEqual(r.out, wire);
        },
      ),
      { numRuns: 300 },
    );
  });
});
