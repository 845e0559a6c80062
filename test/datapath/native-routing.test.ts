/**
 * Native routing's branches (skn_settings.routing_native) through BPF_PROG_TEST_RUN on the real
 * object, inside a private network namespace whose routes and neighbours the programs' FIB lookups
 * read: an "uplink" on 198.18.0.0/24 with the two nodes as neighbours (each its own MAC), a route to
 * node B's pod CIDR via B (what the agent installs), and a "pod veth" the packets enter from.
 * skn_from_pod routes a remote pod's packet unencapsulated (next hop's MACs, TTL − 1, out of the
 * uplink); skn_from_uplink delivers a native packet for a local pod only when its previous hop is
 * the node owning the source address; skn_to_uplink tracks the stack's pod flows. The same frames
 * through a vxlan-mode object still encapsulate.
 */
import assert from "node:assert/strict";
import { Netns, findLink, inNetns, ip, ipBatch } from "../../loader/index.js";
import { vxlanMacFor } from "../../maps/config.js";
import type { PrivateDatapath } from "../../maps/datapath/private.js";
import { PrivateDatapath as Private } from "../../maps/datapath/private.js";
import { Identity } from "../../maps/identities.js";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { inetChecksum, probeFrame } from "../../maps/packet.js";
import { PROGRAMS, type ProgramName } from "../../maps/pins.js";
import {
  TC_ACT_OK,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  loadTestDatapath,
  type RunResult,
} from "../helpers/datapath.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const NODE_A = "198.18.0.11";
const NODE_B = "198.18.0.12";
const MAC_A = "02:cc:00:00:00:0a";
const MAC_B = "02:cc:00:00:00:0b";
/** Each pod's host veth is the namespace's "pv" (from_pod checks the packet came in on it). */
const POD_A = { ip: "10.244.0.10", mac: "02:aa:00:00:00:0a", hostMac: "02:bb:00:00:00:0a" };
const POD_B = { ip: "10.244.1.20", mac: "02:aa:00:00:01:14", hostMac: "02:bb:00:00:01:14" };
const ID_A = 300;
const ID_B = 301;
const hex = (mac: string) => mac.replaceAll(":", "");

describe("datapath: native routing (skn_from_pod → FIB → uplink; skn_from_uplink → pod)", function () {
  const ns = uniqueName("sknnat");
  let netns: Netns | undefined;
  /** The uplink and the pod veth in the namespace. */
  let uplink = { ifindex: 0, mac: "" };
  let podVeth = 0;
  /** Node A's datapath (POD_A local) and node B's (POD_B local), both native; A's twin in vxlan mode. */
  let a = undefined as unknown as PrivateDatapath;
  let b = undefined as unknown as PrivateDatapath;
  let vx = undefined as unknown as PrivateDatapath;

  before(async function () {
    requireRoot(this);
    this.timeout(30000);
    await ip(["netns", "add", ns]);
    const opts = { netns: `/var/run/netns/${ns}` };
    await ipBatch(
      [
        "link set lo up",
        "link add upl type veth peer name uplpeer",
        "link add pv type veth peer name pvpeer",
        "addr add 198.18.0.1/24 dev upl",
        "link set upl up",
        "link set uplpeer up",
        "link set pv up",
        "link set pvpeer up",
        `neigh replace ${NODE_A} lladdr ${MAC_A} dev upl nud permanent`,
        `neigh replace ${NODE_B} lladdr ${MAC_B} dev upl nud permanent`,
        `route replace 10.244.1.0/24 via ${NODE_B} dev upl proto 94`,
        `route replace 10.244.0.0/24 via ${NODE_A} dev upl proto 94`,
      ],
      opts,
    );
    await ip(["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    const upl = await findLink("upl", opts);
    const pv = await findLink("pv", opts);
    assert.ok(upl !== undefined && pv !== undefined);
    uplink = { ifindex: upl.ifindex, mac: upl.address ?? "" };
    podVeth = pv.ifindex;
    netns = Netns.open(`/var/run/netns/${ns}`);

    a = Private.load({ settings: { recordDecisions: true, routingNative: true } });
    b = Private.load({ settings: { recordDecisions: true, routingNative: true } });
    vx = loadTestDatapath();
    for (const [dp, node, own, other, otherNode, ownId, otherId] of [
      [a, NODE_A, POD_A, POD_B, NODE_B, ID_A, ID_B],
      [vx, NODE_A, POD_A, POD_B, NODE_B, ID_A, ID_B],
      [b, NODE_B, POD_B, POD_A, NODE_A, ID_B, ID_A],
    ] as const) {
      dp.endpoints.set(own.ip, { ifindex: podVeth, flags: 0, mac: own.mac, hostMac: own.hostMac });
      dp.ipcache.set(
        { ip: own.ip, length: 32 },
        { identity: ownId, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      dp.ipcache.set(
        { ip: other.ip, length: 32 },
        { identity: otherId, tunnelIp: otherNode, cidrIdentity: 0, flags: 0 },
      );
      dp.ipcache.set(
        { ip: otherNode, length: 32 },
        { identity: Identity.remoteNode, tunnelIp: otherNode, cidrIdentity: 0, flags: 0 },
      );
      dp.ipcache.set(
        { ip: node, length: 32 },
        { identity: Identity.host, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      dp.config.write({
        // vxlan mode needs a VXLAN device to encapsulate; native routing never sends to it.
        vxlanIfindex: dp === vx ? 1 : 0,
        nodeIp: node,
        vxlanMac: vxlanMacFor(node),
        flags: 0,
        vxlanPort: 4789,
        uplinkIfindex: uplink.ifindex,
      });
    }
  });

  after(async function () {
    for (const dp of [a, b, vx] as (PrivateDatapath | undefined)[]) dp?.close();
    netns?.close();
    await ip(["netns", "del", ns]).catch(() => undefined);
  });

  beforeEach(function () {
    for (const dp of [a, b, vx] as (PrivateDatapath | undefined)[])
      if (dp !== undefined) for (const k of [...dp.conntrack.raw.keys()]) dp.conntrack.raw.delete(k);
  });

  /** Runs `program` of `dp` inside the namespace (FIB and neighbours are its). */
  function run(dp: PrivateDatapath, program: ProgramName, frame: Uint8Array, ifindex: number): RunResult {
    if (netns === undefined) throw new Error("no namespace");
    const ns = netns;
    return inNetns(ns, () => {
      const r = dp.programs[program].testRun({ data: frame, ctx: { ifindex } });
      return { retval: r.retval, out: r.dataOut, decision: dp.decision.last() };
    });
  }

  const fromPodA = (sport: number, protocol: "TCP" | "UDP" | "ICMP" = "TCP") =>
    probeFrame({ protocol, src: POD_A.ip, dst: POD_B.ip, sport, dport: 8080, srcMac: POD_A.mac });

  /** A frame as node `fromMac` puts it on the wire to node B's uplink. */
  const onWire = (fromMac: string, src: string, dst: string, sport: number) =>
    probeFrame({ protocol: "TCP", src, dst, sport, dport: 8080, srcMac: fromMac, dstMac: uplink.mac });

  it("routes a remote pod's packet by the FIB: unencapsulated, next hop's MAC, TTL − 1, out of the uplink", function () {
    for (const protocol of ["TCP", "UDP", "ICMP"] as const) {
      const frame = fromPodA(41000, protocol);
      const before = a.metrics.get("fwd_native", "egress").packets;
      const r = run(a, PROGRAMS.fromPod, frame, podVeth);
      assert.equal(r.retval, TC_ACT_REDIRECT, protocol);
      assert.equal(r.decision.reason, "fwd_native");
      assert.equal(r.decision.ifindex, uplink.ifindex, "out of the route's device");
      assert.equal(r.decision.tunnelIp, NODE_B, "the node behind the destination, recorded");
      assert.equal(r.out.length, frame.length, "no encapsulation");
      assert.equal(r.out.subarray(0, 6).toString("hex"), hex(MAC_B), "destination MAC: node B, the next hop");
      assert.equal(r.out.subarray(6, 12).toString("hex"), hex(uplink.mac), "source MAC: the uplink's");
      assert.equal(r.out[22], (frame[22] ?? 0) - 1, "TTL − 1");
      assert.equal(inetChecksum(r.out.subarray(14, 34)), 0, "IPv4 checksum still verifies");
      assert.deepEqual(r.out.subarray(34), frame.subarray(34), "payload untouched");
      assert.equal(a.metrics.get("fwd_native", "egress").packets, before + 1n);
    }
  });

  it("established packets take the same route (conntrack remembers the remote node)", function () {
    const frame = fromPodA(41001);
    assert.equal(run(a, PROGRAMS.fromPod, frame, podVeth).decision.reason, "fwd_native");
    const r = run(a, PROGRAMS.fromPod, frame, podVeth);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_native");
    assert.equal(a.conntrack.count(), 1);
  });

  it("without a neighbour entry, redirects through bpf_redirect_neigh to resolve it", async function () {
    const opts = { netns: `/var/run/netns/${ns}` };
    await ip(["neigh", "del", NODE_B, "dev", "upl"], opts);
    try {
      const frame = fromPodA(41002);
      const r = run(a, PROGRAMS.fromPod, frame, podVeth);
      assert.equal(r.retval, TC_ACT_REDIRECT);
      assert.equal(r.decision.reason, "fwd_native");
      assert.equal(r.decision.ifindex, uplink.ifindex);
      assert.equal(r.out[22], (frame[22] ?? 0) - 1, "TTL − 1");
    } finally {
      await ip(["neigh", "replace", NODE_B, "lladdr", MAC_B, "dev", "upl", "nud", "permanent"], opts);
    }
  });

  it("leaves to the stack what it cannot route itself: no route, TTL 1", async function () {
    const opts = { netns: `/var/run/netns/${ns}` };
    await ip(["route", "del", "10.244.1.0/24", "proto", "94"], opts);
    try {
      const r = run(a, PROGRAMS.fromPod, fromPodA(41003), podVeth);
      assert.equal(r.retval, TC_ACT_OK);
      assert.equal(r.decision.reason, "fwd_stack");
    } finally {
      await ip(["route", "replace", "10.244.1.0/24", "via", NODE_B, "dev", "upl", "proto", "94"], opts);
    }
    const ttl1 = Buffer.from(fromPodA(41004));
    ttl1[22] = 1;
    ttl1.writeUInt16BE(0, 24);
    ttl1.writeUInt16BE(inetChecksum(ttl1.subarray(14, 34)), 24);
    const r = run(a, PROGRAMS.fromPod, ttl1, podVeth);
    assert.equal(r.retval, TC_ACT_OK, "the stack answers with time exceeded");
    assert.equal(r.decision.reason, "fwd_stack");
  });

  it("in vxlan mode the same packet is encapsulated, as before", function () {
    const frame = fromPodA(41005);
    const r = run(vx, PROGRAMS.fromPod, frame, podVeth);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_overlay");
    assert.equal(r.out.length, frame.length + 50, "VXLAN headers");
    const last = vx.decision.last();
    assert.equal(run(vx, PROGRAMS.toUplink, frame, uplink.ifindex).retval, TC_ACT_OK);
    assert.deepEqual(vx.decision.last(), last, "skn_to_uplink does nothing in vxlan mode");
  });

  it("delivers a native packet from the node owning the source into the pod (redirect_peer), and tracks it", function () {
    const frame = onWire(MAC_A, POD_A.ip, POD_B.ip, 42000);
    const before = b.metrics.get("fwd_local", "ingress").packets;
    const r = run(b, PROGRAMS.fromUplink, frame, uplink.ifindex);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_local");
    assert.equal(r.decision.ifindex, podVeth);
    assert.equal(r.decision.peerIdentity, ID_A, "source identity from the ipcache, no VNI");
    assert.equal(r.out.subarray(0, 6).toString("hex"), hex(POD_B.mac));
    assert.equal(r.out.subarray(6, 12).toString("hex"), hex(POD_B.hostMac));
    assert.deepEqual(r.out.subarray(12), frame.subarray(12));
    assert.equal(b.metrics.get("fwd_local", "ingress").packets, before + 1n);
    assert.equal(b.conntrack.count(), 1);
    // And the reply goes back natively, towards node A.
    const reply = probeFrame({ protocol: "TCP", src: POD_B.ip, dst: POD_A.ip, sport: 8080, dport: 42000 });
    const back = run(b, PROGRAMS.fromPod, reply, podVeth);
    assert.equal(back.decision.reason, "fwd_native");
    assert.equal(back.out.subarray(0, 6).toString("hex"), hex(MAC_A));
  });

  it("drops a pod address arriving from another node's MAC (spoofing), counted with the reason", function () {
    const before = b.metrics.get("drop_spoofed", "ingress").packets;
    for (const fromMac of [MAC_B, "02:66:66:66:66:66"]) {
      const r = run(b, PROGRAMS.fromUplink, onWire(fromMac, POD_A.ip, POD_B.ip, 42001), uplink.ifindex);
      assert.equal(r.retval, TC_ACT_SHOT, fromMac);
      assert.equal(r.decision.reason, "drop_spoofed");
    }
    assert.equal(b.metrics.get("drop_spoofed", "ingress").packets, before + 2n);
    // Even an established flow: every packet is checked.
    run(b, PROGRAMS.fromUplink, onWire(MAC_A, POD_A.ip, POD_B.ip, 42002), uplink.ifindex);
    assert.equal(
      run(b, PROGRAMS.fromUplink, onWire(MAC_B, POD_A.ip, POD_B.ip, 42002), uplink.ifindex).retval,
      TC_ACT_SHOT,
    );
  });

  it("drops this node's own pods and addresses arriving from outside", function () {
    b.endpoints.set("10.244.1.21", { ifindex: podVeth, flags: 0, mac: POD_B.mac, hostMac: POD_B.hostMac });
    b.ipcache.set(
      { ip: "10.244.1.21", length: 32 },
      { identity: ID_B, tunnelIp: null, cidrIdentity: 0, flags: 0 },
    );
    try {
      for (const src of ["10.244.1.21", NODE_B]) {
        const r = run(b, PROGRAMS.fromUplink, onWire(MAC_A, src, POD_B.ip, 42003), uplink.ifindex);
        assert.equal(r.retval, TC_ACT_SHOT, src);
        assert.equal(r.decision.reason, "drop_spoofed");
      }
    } finally {
      b.endpoints.delete("10.244.1.21");
      b.ipcache.delete({ ip: "10.244.1.21", length: 32 });
    }
  });

  it("enforces the pod's ingress policy on new flows; the world (no ipcache entry) is judged as world", function () {
    b.ipcache.set(
      { ip: POD_B.ip, length: 32 },
      { identity: ID_B, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceIngress },
    );
    try {
      const denied = run(b, PROGRAMS.fromUplink, onWire(MAC_A, POD_A.ip, POD_B.ip, 42004), uplink.ifindex);
      assert.equal(denied.retval, TC_ACT_SHOT);
      assert.equal(denied.decision.reason, "drop_policy");
      const world = run(
        b,
        PROGRAMS.fromUplink,
        onWire(MAC_A, "203.0.113.10", POD_B.ip, 42005),
        uplink.ifindex,
      );
      assert.equal(world.retval, TC_ACT_SHOT);
      assert.equal(world.decision.peerIdentity, Identity.world);
    } finally {
      b.ipcache.set(
        { ip: POD_B.ip, length: 32 },
        { identity: ID_B, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
    }
    const open = run(b, PROGRAMS.fromUplink, onWire(MAC_A, "203.0.113.10", POD_B.ip, 42006), uplink.ifindex);
    assert.equal(open.retval, TC_ACT_REDIRECT, "an unselected pod takes the world");
  });

  it("leaves to the stack, uncounted, what is not for a local pod", function () {
    for (const dst of ["198.18.0.12", "10.244.1.99", "10.244.0.10"]) {
      const r = run(b, PROGRAMS.fromUplink, onWire(MAC_A, NODE_A, dst, 42007), uplink.ifindex);
      assert.equal(r.retval, TC_ACT_OK, dst);
    }
  });

  it("skn_to_uplink: a local pod's flow the stack routed out is tracked as the stack's; its replies go back through it", function () {
    // Node A's stack translated a Service to POD_B and routed it out of the uplink.
    const out = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: POD_B.ip, sport: 43000, dport: 8080 });
    const r = run(a, PROGRAMS.toUplink, out, uplink.ifindex);
    assert.equal(r.retval, TC_ACT_OK);
    assert.equal(r.decision.reason, "fwd_native");
    assert.equal(a.conntrack.count(), 1);
    // B's reply arrives natively: through A's stack (which reverses the translation), not into the pod.
    const reply = probeFrame({
      protocol: "TCP",
      src: POD_B.ip,
      dst: POD_A.ip,
      sport: 8080,
      dport: 43000,
      srcMac: MAC_B,
      dstMac: uplink.mac,
    });
    const back = run(a, PROGRAMS.fromUplink, reply, uplink.ifindex);
    assert.equal(back.retval, TC_ACT_OK);
    assert.equal(back.decision.reason, "fwd_stack");
    // Node traffic on the uplink is not the datapath's.
    const node = probeFrame({ protocol: "TCP", src: NODE_A, dst: POD_B.ip, sport: 43001, dport: 8080 });
    const before = a.decision.last();
    assert.equal(run(a, PROGRAMS.toUplink, node, uplink.ifindex).retval, TC_ACT_OK);
    assert.deepEqual(a.decision.last(), before, "no decision recorded");
  });
});
