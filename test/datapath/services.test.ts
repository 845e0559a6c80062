/**
 * Service traffic the node translates (kube-proxy), through BPF_PROG_TEST_RUN on the real object:
 * a flow the host stack delivered (skn_to_pod, skn_to_vxlan for a local pod's packet) is marked in
 * conntrack and its other packets go back to the stack instead of being redirected; a new flow into
 * the Service CIDR is judged by egress policy after translation, on the backend; untranslated
 * pod-to-pod traffic keeps its redirects.
 */
import assert from "node:assert/strict";
import { CtFlag } from "../../maps/conntrack.js";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity } from "../../maps/identities.js";
import { PROGRAMS } from "../../maps/pins.js";
import { vxlanMacFor } from "../../maps/config.js";
import { PrivateDatapath } from "../../maps/datapath/private.js";
import {
  IcmpType,
  IpProto,
  TcpFlags,
  icmpMessage,
  ipv4Frame,
  ipv4Packet,
  probeFrame,
  tcpSegment,
  udpDatagram,
} from "../../maps/packet.js";
import { requireRoot } from "../helpers/privileged.js";
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, run } from "../helpers/datapath.js";

const NODE = "198.18.0.11";
const REMOTE_NODE = "198.18.0.12";
const UPLINK = 7;
// Test runs need an ifindex that exists here, and from_pod checks it against the sender's endpoint:
// every pod "sits" on lo. Redirects are recorded, not performed.
const CLIENT = { ip: "10.244.0.10", mac: "02:aa:00:00:00:0a", hostMac: "02:bb:00:00:00:0a", ifindex: 1 };
const BACKEND = { ip: "10.244.0.11", mac: "02:aa:00:00:00:0b", hostMac: "02:bb:00:00:00:0b", ifindex: 1 };
const OTHER = { ip: "10.244.0.12", mac: "02:aa:00:00:00:0c", hostMac: "02:bb:00:00:00:0c", ifindex: 1 };
const REMOTE_POD = "10.244.1.20";
const CLUSTER_IP = "10.96.0.10";
const WORLD = "203.0.113.5";
const ID = { client: 300, backend: 301, other: 302, remote: 303 };

function tcp(src: string, sport: number, dst: string, dport: number, flags: number): Buffer {
  return ipv4Frame({
    src,
    dst,
    protocol: IpProto.TCP,
    payload: tcpSegment({ src, dst, sport, dport, flags }),
  });
}

/** A VXLAN frame from the remote node as it arrives on this node's uplink (VNI = sender identity). */
function fromRemote(inner: Buffer, vni: number): Buffer {
  const vxlan = Buffer.alloc(8 + inner.length);
  vxlan.writeUInt32BE(0x08000000, 0);
  vxlan.writeUInt32BE((vni << 8) >>> 0, 4);
  inner.copy(vxlan, 8);
  return ipv4Frame({
    src: REMOTE_NODE,
    dst: NODE,
    protocol: IpProto.UDP,
    payload: udpDatagram({ src: REMOTE_NODE, dst: NODE, sport: 51000, dport: 4789, payload: vxlan }),
  });
}

describe("datapath: Services translated by the node (BPF_PROG_TEST_RUN)", function () {
  let dp = undefined as unknown as PrivateDatapath;

  before(function () {
    requireRoot(this);
    dp = PrivateDatapath.load({ settings: { recordDecisions: true, serviceCidr: "10.96.0.0/12" } });
    for (const [p, identity] of [
      [CLIENT, ID.client],
      [BACKEND, ID.backend],
      [OTHER, ID.other],
    ] as const) {
      dp.endpoints.set(p.ip, { ifindex: p.ifindex, flags: 0, mac: p.mac, hostMac: p.hostMac });
      dp.ipcache.set({ ip: p.ip, length: 32 }, { identity, tunnelIp: null, cidrIdentity: 0, flags: 0 });
    }
    dp.ipcache.set(
      { ip: REMOTE_POD, length: 32 },
      { identity: ID.remote, tunnelIp: REMOTE_NODE, cidrIdentity: 0, flags: 0 },
    );
    dp.ipcache.set(
      { ip: REMOTE_NODE, length: 32 },
      { identity: Identity.remoteNode, tunnelIp: REMOTE_NODE, cidrIdentity: 0, flags: 0 },
    );
    dp.config.write({
      vxlanIfindex: 1,
      nodeIp: NODE,
      vxlanMac: vxlanMacFor(NODE),
      flags: 0,
      vxlanPort: 4789,
      uplinkIfindex: UPLINK,
    });
  });

  after(function () {
    (dp as PrivateDatapath | undefined)?.close();
  });

  beforeEach(function () {
    if ((dp as PrivateDatapath | undefined) === undefined) return;
    for (const k of [...dp.conntrack.raw.keys()]) dp.conntrack.raw.delete(k);
    for (const k of [...dp.policy.raw.keys()]) dp.policy.raw.delete(k);
  });

  function flags(a: string, b: string): number | undefined {
    for (const [k, v] of dp.conntrack.entries())
      if ([k.addrA, k.addrB].sort().join() === [a, b].sort().join()) return v.flags;
    return undefined;
  }

  function enforceEgress(on: boolean): void {
    dp.ipcache.set(
      { ip: CLIENT.ip, length: 32 },
      {
        identity: ID.client,
        tunnelIp: null,
        cidrIdentity: 0,
        flags: on ? IpcacheFlag.enforceEgress : 0,
      },
    );
  }

  function allowEgressTo(peerIdentity: number): void {
    dp.policy.set(
      { endpointIp: CLIENT.ip, direction: "egress", peerIdentity, protocol: IpProto.TCP, port: 8080 },
      { ruleId: 7, flags: 0 },
    );
  }

  it("same node: the backend's reply to a flow the stack delivered goes back to the stack, not into the client", function () {
    // The stack has rewritten client → ClusterIP:80 to client → backend:8080 and hands it to to_pod.
    const open = run(dp, PROGRAMS.toPod, tcp(CLIENT.ip, 40000, BACKEND.ip, 8080, TcpFlags.SYN), {
      ifindex: BACKEND.ifindex,
    });
    assert.equal(open.retval, TC_ACT_OK);
    assert.equal(open.decision.reason, "fwd_deliver");
    assert.ok(((flags(CLIENT.ip, BACKEND.ip) ?? 0) & CtFlag.viaStack) !== 0, "conntrack marks the flow");
    const reply = run(
      dp,
      PROGRAMS.fromPod,
      tcp(BACKEND.ip, 8080, CLIENT.ip, 40000, TcpFlags.SYN | TcpFlags.ACK),
      { ifindex: BACKEND.ifindex },
    );
    assert.equal(reply.retval, TC_ACT_OK, "to the stack, which turns the source back into the ClusterIP");
    assert.equal(reply.decision.reason, "fwd_stack");
  });

  it("an ICMP error a backend sends about a flow the stack delivered goes to the stack, same node and from the overlay", function () {
    const udp = (src: string, dst: string) =>
      ipv4Frame({
        src,
        dst,
        protocol: IpProto.UDP,
        payload: udpDatagram({ src, dst, sport: 40100, dport: 5354 }),
      });
    // Port unreachable, quoting the translated datagram (client → backend).
    const unreachable = (from: string) => {
      const quoted = ipv4Packet({
        src: CLIENT.ip,
        dst: from,
        protocol: IpProto.UDP,
        payload: udpDatagram({ src: CLIENT.ip, dst: from, sport: 40100, dport: 5354 }),
      }).subarray(0, 28);
      return ipv4Frame({
        src: from,
        dst: CLIENT.ip,
        protocol: IpProto.ICMP,
        payload: icmpMessage(IcmpType.destUnreachable, 3, 0, quoted),
      });
    };
    run(dp, PROGRAMS.toPod, udp(CLIENT.ip, BACKEND.ip), { ifindex: 1 });
    const local = run(dp, PROGRAMS.fromPod, unreachable(BACKEND.ip), { ifindex: 1 });
    assert.equal(local.retval, TC_ACT_OK);
    assert.equal(local.decision.reason, "fwd_stack");
    run(dp, PROGRAMS.toVxlan, udp(CLIENT.ip, REMOTE_POD), { ifindex: 1 });
    const remote = run(dp, PROGRAMS.fromUplink, fromRemote(unreachable(REMOTE_POD), ID.remote), {
      ifindex: 1,
    });
    assert.equal(remote.retval, TC_ACT_OK, "left for the VXLAN device, then the stack");
  });

  it("same node, untranslated: pod to pod keeps its redirect both ways", function () {
    const open = run(dp, PROGRAMS.fromPod, tcp(CLIENT.ip, 40001, BACKEND.ip, 8080, TcpFlags.SYN), {
      ifindex: CLIENT.ifindex,
    });
    assert.equal(open.retval, TC_ACT_REDIRECT);
    assert.equal((flags(CLIENT.ip, BACKEND.ip) ?? 0) & CtFlag.viaStack, 0);
    const reply = run(
      dp,
      PROGRAMS.fromPod,
      tcp(BACKEND.ip, 8080, CLIENT.ip, 40001, TcpFlags.SYN | TcpFlags.ACK),
      { ifindex: BACKEND.ifindex },
    );
    assert.equal(reply.retval, TC_ACT_REDIRECT);
    assert.equal(reply.decision.reason, "fwd_local");
  });

  it("cross node: a local pod's packet the stack routes into the overlay is marked and carries the pod's identity; the reply from the uplink goes to the stack", function () {
    const frame = tcp(REMOTE_POD, 8080, CLIENT.ip, 40002, TcpFlags.SYN | TcpFlags.ACK);
    // Without the mark (a flow set up elsewhere), the uplink would deliver straight into the pod.
    const unmarked = run(dp, PROGRAMS.fromUplink, fromRemote(frame, ID.remote), { ifindex: 1 });
    assert.equal(unmarked.retval, TC_ACT_REDIRECT);
    for (const k of [...dp.conntrack.raw.keys()]) dp.conntrack.raw.delete(k);

    const out = run(dp, PROGRAMS.toVxlan, tcp(CLIENT.ip, 40002, REMOTE_POD, 8080, TcpFlags.SYN), {
      ifindex: 1,
    });
    assert.equal(out.retval, TC_ACT_OK);
    assert.equal(out.decision.reason, "fwd_overlay");
    assert.equal(out.decision.tunnelId, ID.client, "the VNI names the client pod, not the node");
    assert.ok(((flags(CLIENT.ip, REMOTE_POD) ?? 0) & CtFlag.viaStack) !== 0);
    const back = run(dp, PROGRAMS.fromUplink, fromRemote(frame, ID.remote), { ifindex: 1 });
    assert.equal(back.retval, TC_ACT_OK, "left encapsulated for the VXLAN device, then the stack");
    // The node's own traffic into the overlay is not a pod's: no entry.
    run(dp, PROGRAMS.toVxlan, tcp(NODE, 40003, REMOTE_POD, 8080, TcpFlags.SYN), { ifindex: 1 });
    assert.equal(flags(NODE, REMOTE_POD), undefined);
  });

  it("egress to the Service CIDR is deferred at from_pod and judged on the backend after translation; the world stays enforced", function () {
    enforceEgress(true);
    try {
      allowEgressTo(ID.backend);
      allowEgressTo(ID.remote);
      const toService = run(
        dp,
        PROGRAMS.fromPod,
        probeFrame({ protocol: "TCP", src: CLIENT.ip, dst: CLUSTER_IP, sport: 40010, dport: 80 }),
        { ifindex: CLIENT.ifindex },
      );
      assert.equal(toService.retval, TC_ACT_OK);
      assert.equal(toService.decision.reason, "fwd_stack");
      const toWorld = run(
        dp,
        PROGRAMS.fromPod,
        probeFrame({ protocol: "TCP", src: CLIENT.ip, dst: WORLD, sport: 40011, dport: 8080 }),
        { ifindex: CLIENT.ifindex },
      );
      assert.equal(toWorld.retval, TC_ACT_SHOT, "a real world destination is judged at once");

      const allowed = run(dp, PROGRAMS.toPod, tcp(CLIENT.ip, 40010, BACKEND.ip, 8080, TcpFlags.SYN), {
        ifindex: BACKEND.ifindex,
      });
      assert.equal(allowed.retval, TC_ACT_OK);
      assert.equal(allowed.decision.ruleId, 7);
      const denied = run(dp, PROGRAMS.toPod, tcp(CLIENT.ip, 40012, OTHER.ip, 8080, TcpFlags.SYN), {
        ifindex: OTHER.ifindex,
      });
      assert.equal(denied.retval, TC_ACT_SHOT);
      assert.equal(denied.decision.reason, "drop_policy");
      assert.equal(denied.decision.direction, "egress");

      const cross = run(dp, PROGRAMS.toVxlan, tcp(CLIENT.ip, 40013, REMOTE_POD, 8080, TcpFlags.SYN), {
        ifindex: 1,
      });
      assert.equal(cross.retval, TC_ACT_OK);
      for (const k of [...dp.policy.raw.keys()]) dp.policy.raw.delete(k);
      allowEgressTo(ID.backend);
      const crossDenied = run(dp, PROGRAMS.toVxlan, tcp(CLIENT.ip, 40014, REMOTE_POD, 8080, TcpFlags.SYN), {
        ifindex: 1,
      });
      assert.equal(crossDenied.retval, TC_ACT_SHOT);
      assert.equal(crossDenied.decision.reason, "drop_policy");
      assert.equal(crossDenied.decision.direction, "egress");
    } finally {
      enforceEgress(false);
    }
  });

  it("without a Service CIDR, a ClusterIP is judged as the world at from_pod (the setting's default)", function () {
    using plain = PrivateDatapath.load({ settings: { recordDecisions: true } });
    plain.endpoints.set(CLIENT.ip, {
      ifindex: CLIENT.ifindex,
      flags: 0,
      mac: CLIENT.mac,
      hostMac: CLIENT.hostMac,
    });
    plain.ipcache.set(
      { ip: CLIENT.ip, length: 32 },
      { identity: ID.client, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceEgress },
    );
    const r = run(
      plain,
      PROGRAMS.fromPod,
      probeFrame({ protocol: "TCP", src: CLIENT.ip, dst: CLUSTER_IP, sport: 40020, dport: 80 }),
      { ifindex: CLIENT.ifindex },
    );
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(r.decision.reason, "drop_policy");
  });
});
