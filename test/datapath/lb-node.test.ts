/**
 * Service load balancing for the paths that do not start in a pod, through BPF_PROG_TEST_RUN on the
 * real object (maps filled from the builder by LbMapsWriter): node → ClusterIP in skn_to_vxlan (local
 * backend redirected into its veth, remote one encapsulated, the reply reversed in skn_from_pod, a
 * frontend without endpoints answered through lo), world → NodePort in skn_from_uplink (Cluster:
 * translated for the stack, the reply reversed in skn_to_uplink; Local: local backends only, policy
 * against the client's identity) and the consistent choice two nodes make alike.
 */
import assert from "node:assert/strict";
import { vxlanMacFor } from "../../maps/config.js";
import { CtFlag } from "../../maps/conntrack.js";
import { PrivateDatapath } from "../../maps/datapath/private.js";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity } from "../../maps/identities.js";
import { LbMapsWriter } from "../../maps/lb-apply.js";
import { parseIPv4 } from "../../maps/net.js";
import { IpProto, TcpFlags, inetChecksum, ipv4Frame, tcpSegment, udpDatagram } from "../../maps/packet.js";
import { PROGRAMS } from "../../maps/pins.js";
import { LbIdAllocator, buildLb, type EndpointSliceView, type ServiceView } from "../../policy/lb-builder.js";
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, run } from "../helpers/datapath.js";
import { requireRoot } from "../helpers/privileged.js";

const N1 = "198.18.0.31";
const N2 = "198.18.0.32";
const B1 = { ip: "10.244.0.11", mac: "02:aa:00:00:00:0b", hostMac: "02:bb:00:00:00:0b", ifindex: 1 };
const B2 = "10.244.1.20"; // on n2
const B3 = "10.244.1.21"; // on n2
const VIP = "10.96.0.60";
const WORLD = "203.0.113.7";
const ID = { b1: 301, b2: 302, b3: 303 };

const ip4 = (b: Buffer, o: number) => [b[o], b[o + 1], b[o + 2], b[o + 3]].join(".");

function pseudo(src: string, dst: string, proto: number, len: number): number {
  const s = parseIPv4(src);
  const d = parseIPv4(dst);
  return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + proto + len;
}

/** The IPv4 packet after the Ethernet header, its checksums asserted. */
function parse(frame: Buffer) {
  const ihl = (frame[14]! & 0xf) * 4;
  const total = frame.readUInt16BE(16);
  assert.equal(inetChecksum(frame.subarray(14, 14 + ihl)), 0, "IPv4 header checksum");
  const src = ip4(frame, 26);
  const dst = ip4(frame, 30);
  const proto = frame[23]!;
  const l4 = frame.subarray(14 + ihl, 14 + total);
  if (proto === IpProto.TCP || (proto === IpProto.UDP && l4.readUInt16BE(6) !== 0))
    assert.equal(inetChecksum(l4, pseudo(src, dst, proto, l4.length)), 0, "L4 checksum");
  if (proto === IpProto.ICMP) assert.equal(inetChecksum(l4), 0, "ICMP checksum");
  return { src, dst, proto, sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), l4 };
}

function tcp(src: string, sport: number, dst: string, dport: number, flags: number): Buffer {
  return ipv4Frame({
    src,
    dst,
    protocol: IpProto.TCP,
    payload: tcpSegment({ src, dst, sport, dport, flags }),
  });
}

function udp(src: string, sport: number, dst: string, dport: number): Buffer {
  const payload = udpDatagram({ src, dst, sport, dport, payload: Buffer.from("q") });
  return ipv4Frame({ src, dst, protocol: IpProto.UDP, payload });
}

const HTTP = { name: "http", port: 80, protocol: "TCP" as const };
const slice = (name: string, addrs: readonly { ip: string; node: string }[]): EndpointSliceView => ({
  namespace: "default",
  serviceName: name,
  addressType: "IPv4",
  endpoints: addrs.map((a) => ({ addresses: [a.ip], ready: true, nodeName: a.node })),
  ports: [
    { name: "http", port: 8080, protocol: "TCP" },
    { name: "dns", port: 5353, protocol: "UDP" },
  ],
});

const SERVICES: ServiceView[] = [
  {
    namespace: "default",
    name: "web",
    type: "ClusterIP",
    clusterIPs: [VIP],
    ports: [HTTP, { name: "dns", port: 53, protocol: "UDP" }],
  },
  { namespace: "default", name: "none", type: "ClusterIP", clusterIPs: ["10.96.0.61"], ports: [HTTP] },
  {
    namespace: "default",
    name: "np",
    type: "NodePort",
    clusterIPs: ["10.96.0.62"],
    ports: [{ ...HTTP, nodePort: 30080 }],
  },
  {
    namespace: "default",
    name: "np-local",
    type: "NodePort",
    clusterIPs: ["10.96.0.63"],
    externalTrafficPolicy: "Local",
    ports: [{ ...HTTP, nodePort: 30081 }],
  },
  {
    namespace: "default",
    name: "np-none",
    type: "NodePort",
    clusterIPs: ["10.96.0.64"],
    ports: [{ ...HTTP, nodePort: 30085 }],
  },
];
const SLICES: EndpointSliceView[] = [
  slice("web", [
    { ip: B1.ip, node: "n1" },
    { ip: B2, node: "n2" },
  ]),
  slice("np", [
    { ip: B1.ip, node: "n1" },
    { ip: B2, node: "n2" },
    { ip: B3, node: "n2" },
  ]),
  slice("np-local", [{ ip: B1.ip, node: "n1" }]),
];

/** A private datapath for node `name` (address `nodeIp`) with the Services above programmed. */
function nodeDatapath(name: string, nodeIp: string, services = SERVICES, slices = SLICES): PrivateDatapath {
  const dp = PrivateDatapath.load({ settings: { recordDecisions: true } });
  try {
    const writer = new LbMapsWriter(dp.lb);
    writer.resync();
    const d = buildLb(
      { node: { nodeName: name, nodeAddresses: [nodeIp] }, services, endpointSlices: slices },
      new LbIdAllocator(),
    );
    assert.deepEqual(d.problems, []);
    for (const [m, x] of Object.entries(writer.apply(d)))
      assert.equal(x.failed, 0, `${m}: ${String(x.firstError)}`);
    if (name === "n1") {
      dp.endpoints.set(B1.ip, { ifindex: B1.ifindex, flags: 0, mac: B1.mac, hostMac: B1.hostMac });
      dp.ipcache.set(
        { ip: B1.ip, length: 32 },
        { identity: ID.b1, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
    }
    for (const [ip, identity] of [
      [B2, ID.b2],
      [B3, ID.b3],
    ] as const)
      dp.ipcache.set({ ip, length: 32 }, { identity, tunnelIp: N2, cidrIdentity: 0, flags: 0 });
    dp.ipcache.set(
      { ip: nodeIp, length: 32 },
      { identity: Identity.host, tunnelIp: null, cidrIdentity: 0, flags: 0 },
    );
    dp.config.write({
      vxlanIfindex: 1,
      nodeIp,
      vxlanMac: vxlanMacFor(nodeIp),
      flags: 0,
      vxlanPort: 4789,
      uplinkIfindex: 1,
    });
    return dp;
  } catch (err) {
    dp.close();
    throw err;
  }
}

describe("datapath: Service load balancing from the node and the world (BPF_PROG_TEST_RUN)", function () {
  let n1 = undefined as unknown as PrivateDatapath;
  let n2 = undefined as unknown as PrivateDatapath;

  before(function () {
    requireRoot(this);
    n1 = nodeDatapath("n1", N1);
    n2 = nodeDatapath("n2", N2);
  });

  after(function () {
    (n1 as PrivateDatapath | undefined)?.close();
    (n2 as PrivateDatapath | undefined)?.close();
  });

  beforeEach(function () {
    for (const dp of [n1, n2] as (PrivateDatapath | undefined)[])
      if (dp !== undefined)
        for (const m of [dp.conntrack.raw, dp.policy.raw, dp.lb.flow.raw])
          for (const k of [...m.keys()]) m.delete(k);
  });

  function ct(dp: PrivateDatapath, a: string, b: string) {
    for (const [k, v] of dp.conntrack.entries())
      if ([k.addrA, k.addrB].sort().join() === [a, b].sort().join()) return v;
    return undefined;
  }

  it("node → ClusterIP in skn_to_vxlan: local backend into its veth, remote one through the overlay; the flow keeps its backend", function () {
    const seen = new Set<string>();
    for (let sport = 41000; sport < 41040 && seen.size < 2; sport++) {
      const r = run(n1, PROGRAMS.toVxlan, tcp(N1, sport, VIP, 80, TcpFlags.SYN));
      const p = parse(r.out);
      assert.equal(p.dport, 8080);
      if (p.dst === B1.ip) {
        assert.equal(r.retval, TC_ACT_REDIRECT);
        assert.equal(r.decision.reason, "fwd_local");
        assert.equal(r.decision.ifindex, B1.ifindex);
        assert.deepEqual(
          [...r.out.subarray(0, 12)],
          [...Buffer.from(B1.mac.replaceAll(":", "") + B1.hostMac.replaceAll(":", ""), "hex")],
        );
      } else {
        assert.equal(p.dst, B2);
        assert.equal(r.retval, TC_ACT_OK);
        assert.equal(r.decision.reason, "fwd_overlay");
        assert.equal(r.decision.tunnelIp, N2);
        assert.equal(r.decision.tunnelId, Identity.remoteNode, "the backend's node sees 'remote node'");
      }
      const e = ct(n1, N1, p.dst);
      assert.ok(e !== undefined && (e.flags & CtFlag.lb) !== 0, "conntrack: lb");
      assert.equal(e.lbSvcId, n1.lb.svc.get({ addr: VIP, port: 80, proto: 6 })?.svcId);
      // The next packets of the flow go to the same backend.
      for (let i = 0; i < 3; i++)
        assert.equal(parse(run(n1, PROGRAMS.toVxlan, tcp(N1, sport, VIP, 80, TcpFlags.ACK)).out).dst, p.dst);
      seen.add(p.dst);
    }
    assert.equal(seen.size, 2, "both backends over 40 flows");
  });

  it("node → ClusterIP, local backend: its reply through skn_from_pod comes from the ClusterIP, to the stack", function () {
    let sport = 42000;
    while (parse(run(n1, PROGRAMS.toVxlan, udp(N1, sport, VIP, 53)).out).dst !== B1.ip) sport++;
    const reply = run(n1, PROGRAMS.fromPod, udp(B1.ip, 5353, N1, sport), { ifindex: B1.ifindex });
    assert.equal(reply.retval, TC_ACT_OK);
    const p = parse(reply.out);
    assert.deepEqual([p.src, p.sport, p.dst, p.dport], [VIP, 53, N1, sport]);
  });

  it("node → ClusterIP without endpoints: the ClusterIP's ICMP port unreachable, into lo's ingress", function () {
    const r = run(n1, PROGRAMS.toVxlan, tcp(N1, 43000, "10.96.0.61", 80, TcpFlags.SYN));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "lb_reject");
    assert.equal(r.decision.ifindex, 1);
    assert.deepEqual([...r.out.subarray(0, 6)], [0, 0, 0, 0, 0, 0], "lo's (all-zero) MAC");
    const p = parse(r.out);
    assert.deepEqual([p.src, p.dst, p.proto, p.l4[0], p.l4[1]], ["10.96.0.61", N1, IpProto.ICMP, 3, 3]);
  });

  it("world → NodePort (Cluster) in skn_from_uplink: translated for the stack, recorded; the reply leaves skn_to_uplink from the NodePort", function () {
    const r = run(n1, PROGRAMS.fromUplink, tcp(WORLD, 44000, N1, 30080, TcpFlags.SYN));
    assert.equal(r.retval, TC_ACT_OK);
    assert.equal(r.decision.reason, "fwd_stack");
    const p = parse(r.out);
    assert.ok([B1.ip, B2, B3].includes(p.dst), p.dst);
    assert.equal(p.dport, 8080);
    const e = ct(n1, WORLD, p.dst);
    assert.ok(e !== undefined);
    assert.equal(
      e.flags & (CtFlag.nodePort | CtFlag.viaStack | CtFlag.lb),
      CtFlag.nodePort | CtFlag.viaStack,
    );
    const reply = run(n1, PROGRAMS.toUplink, tcp(p.dst, 8080, WORLD, 44000, TcpFlags.SYN | TcpFlags.ACK));
    assert.equal(reply.retval, TC_ACT_OK);
    const rp = parse(reply.out);
    assert.deepEqual([rp.src, rp.sport, rp.dst, rp.dport], [N1, 30080, WORLD, 44000]);
    // Traffic of the node itself leaves skn_to_uplink untouched.
    const own = tcp(N1, 30080, WORLD, 44000, TcpFlags.ACK);
    assert.deepEqual(run(n1, PROGRAMS.toUplink, own).out.subarray(0, own.length), own);
  });

  it("world → NodePort (Cluster): two nodes choose the same backend for the same flow, and flows spread", function () {
    const chosen = new Map<string, number>();
    for (let sport = 45000; sport < 45060; sport++) {
      const a = parse(run(n1, PROGRAMS.fromUplink, tcp(WORLD, sport, N1, 30080, TcpFlags.SYN)).out).dst;
      const b = parse(run(n2, PROGRAMS.fromUplink, tcp(WORLD, sport, N2, 30080, TcpFlags.SYN)).out).dst;
      assert.equal(a, b, `sport ${sport}`);
      chosen.set(a, (chosen.get(a) ?? 0) + 1);
    }
    assert.equal(chosen.size, 3, `60 flows over 3 backends: ${JSON.stringify([...chosen])}`);
  });

  it("world → NodePort (Local): only a local backend, judged by its ingress policy against the client's identity; none here: dropped", function () {
    const r = run(n1, PROGRAMS.fromUplink, tcp(WORLD, 46000, N1, 30081, TcpFlags.SYN));
    assert.equal(r.retval, TC_ACT_OK);
    assert.equal(parse(r.out).dst, B1.ip);
    const e = ct(n1, WORLD, B1.ip);
    assert.equal(
      e?.identityA === Identity.world || e?.identityB === Identity.world,
      true,
      "the client is 'world'",
    );
    const none = run(n2, PROGRAMS.fromUplink, tcp(WORLD, 46000, N2, 30081, TcpFlags.SYN));
    assert.equal(none.retval, TC_ACT_SHOT);
    assert.equal(none.decision.reason, "drop_no_backend");
    // B1 enforces ingress with no rule for the world: denied.
    n1.ipcache.set(
      { ip: B1.ip, length: 32 },
      { identity: ID.b1, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceIngress },
    );
    try {
      const denied = run(n1, PROGRAMS.fromUplink, tcp(WORLD, 46001, N1, 30081, TcpFlags.SYN));
      assert.equal(denied.retval, TC_ACT_SHOT);
      assert.equal(denied.decision.reason, "drop_policy");
      assert.equal(denied.decision.peerIdentity, Identity.world);
    } finally {
      n1.ipcache.set(
        { ip: B1.ip, length: 32 },
        { identity: ID.b1, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
    }
  });

  it("world → NodePort without endpoints: the ICMP port unreachable goes back out of the uplink", function () {
    const r = run(n1, PROGRAMS.fromUplink, tcp(WORLD, 47000, N1, 30085, TcpFlags.SYN));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "lb_reject");
    const p = parse(r.out);
    assert.deepEqual([p.src, p.dst, p.proto], [N1, WORLD, IpProto.ICMP]);
  });

  it("what is not a NodePort/external frontend passes skn_from_uplink untouched and uncounted", function () {
    for (const frame of [tcp(WORLD, 48000, N1, 22, TcpFlags.SYN), tcp(WORLD, 48000, VIP, 80, TcpFlags.SYN)]) {
      const r = run(n1, PROGRAMS.fromUplink, frame);
      assert.equal(r.retval, TC_ACT_OK);
      assert.deepEqual(r.out.subarray(0, frame.length), frame);
    }
  });
});
