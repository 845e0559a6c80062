import assert from "node:assert/strict";
import fc from "fast-check";
import { RingBuffer } from "../../loader/index.js";
import { decodeEvent, type DatapathEvent } from "../../maps/events.js";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity } from "../../maps/identities.js";
import { PROGRAMS } from "../../maps/pins.js";
import type { PrivateDatapath } from "../../maps/datapath/private.js";
import {
  EtherType,
  IpProto,
  arpFrame,
  ethernet,
  icmpEcho,
  ipv4Frame,
  ipv4Packet,
  probeFrame,
  tcpSegment,
  udpDatagram,
} from "../../maps/packet.js";
import { vxlanMacFor } from "../../maps/config.js";
import { requireRoot } from "../helpers/privileged.js";
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, loadTestDatapath, run } from "../helpers/datapath.js";

const POD_A = { ip: "10.244.0.10", mac: "02:aa:00:00:00:0a", hostMac: "02:bb:00:00:00:0a", ifindex: 1 };
const POD_B = { ip: "10.244.0.11", mac: "02:aa:00:00:00:0b", hostMac: "02:bb:00:00:00:0b", ifindex: 4242 };
const REMOTE_POD = "10.244.1.20";
const REMOTE_NODE = "198.18.0.12";
const WORLD = "203.0.113.5";

describe("datapath: skn_from_pod (BPF_PROG_TEST_RUN on the real object)", function () {
  // Undefined until `before` loaded it (and when it failed).
  let dp = undefined as unknown as PrivateDatapath;

  before(function () {
    requireRoot(this);
    dp = loadTestDatapath();
    for (const p of [POD_A, POD_B]) {
      dp.endpoints.set(p.ip, { ifindex: p.ifindex, flags: 0, mac: p.mac, hostMac: p.hostMac });
      dp.ipcache.set({ ip: p.ip, length: 32 }, { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: 0 });
    }
    dp.ipcache.set(
      { ip: "10.244.1.0", length: 24 },
      { identity: Identity.unmanaged, tunnelIp: REMOTE_NODE, cidrIdentity: 0, flags: 0 },
    );
    dp.config.write({
      vxlanIfindex: 1,
      nodeIp: "198.18.0.11",
      vxlanMac: vxlanMacFor("198.18.0.11"),
      flags: 0,
      vxlanPort: 4789,
      uplinkIfindex: 0,
    });
  });

  after(function () {
    (dp as PrivateDatapath | undefined)?.close();
  });

  beforeEach(function () {
    if ((dp as PrivateDatapath | undefined) === undefined) return;
    for (const k of [...dp.conntrack.raw.keys()]) dp.conntrack.raw.delete(k);
  });

  function count(
    reason: Parameters<PrivateDatapath["metrics"]["get"]>[0],
    dir: "ingress" | "egress" = "egress",
  ): bigint {
    return dp.metrics.get(reason, dir).packets;
  }

  it("answers an ARP request for the gateway with the host veth's MAC", function () {
    const before = count("arp_reply");
    const frame = arpFrame({
      op: "request",
      senderMac: POD_A.mac,
      senderIp: POD_A.ip,
      targetIp: "169.254.1.1",
    });
    const r = run(dp, PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "arp_reply");
    assert.equal(r.decision.ifindex, POD_A.ifindex, "sent back out of the same veth");
    const expected = arpFrame(
      {
        op: "reply",
        senderMac: POD_A.hostMac,
        senderIp: "169.254.1.1",
        targetMac: POD_A.mac,
        targetIp: POD_A.ip,
      },
      POD_A.mac,
    );
    assert.deepEqual(r.out.subarray(0, expected.length), expected);
    assert.equal(count("arp_reply"), before + 1n);
  });

  it("drops ARP that is not a request for the gateway", function () {
    const before = count("drop_arp");
    const r = run(
      dp,
      PROGRAMS.fromPod,
      arpFrame({ op: "request", senderMac: POD_A.mac, senderIp: POD_A.ip, targetIp: POD_B.ip }),
    );
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(count("drop_arp"), before + 1n);
  });

  it("drops an ARP request whose sender claims another pod's address", function () {
    const before = count("drop_spoofed");
    const r = run(
      dp,
      PROGRAMS.fromPod,
      arpFrame({ op: "request", senderMac: POD_A.mac, senderIp: POD_B.ip, targetIp: "169.254.1.1" }),
    );
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(count("drop_spoofed"), before + 1n);
  });

  it("redirects to a pod on this node with bpf_redirect_peer, rewriting both MACs", function () {
    const before = count("fwd_local");
    const frame = probeFrame({
      protocol: "TCP",
      src: POD_A.ip,
      dst: POD_B.ip,
      sport: 40000,
      dport: 80,
      srcMac: POD_A.mac,
      dstMac: POD_A.hostMac,
    });
    const r = run(dp, PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_local");
    assert.equal(r.decision.ifindex, POD_B.ifindex);
    assert.equal(r.out.subarray(0, 6).toString("hex"), POD_B.mac.replaceAll(":", ""));
    assert.equal(r.out.subarray(6, 12).toString("hex"), POD_B.hostMac.replaceAll(":", ""));
    assert.deepEqual(r.out.subarray(12), frame.subarray(12), "everything after the MACs unchanged");
    assert.equal(count("fwd_local"), before + 1n);
  });

  it("hands traffic for unknown destinations to the host stack", function () {
    const before = count("fwd_stack");
    const frame = probeFrame({ protocol: "UDP", src: POD_A.ip, dst: WORLD, sport: 5000, dport: 53 });
    const r = run(dp, PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_OK);
    assert.equal(r.decision.reason, "fwd_stack");
    assert.deepEqual(r.out, frame, "frame untouched");
    assert.equal(count("fwd_stack"), before + 1n);
  });

  it("encapsulates towards the node owning a remote pod CIDR, identity in the VNI", function () {
    const frame = probeFrame({ protocol: "TCP", src: POD_A.ip, dst: REMOTE_POD, sport: 40001, dport: 8080 });
    const r = run(dp, PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.decision.reason, "fwd_overlay");
    assert.equal(r.decision.tunnelIp, REMOTE_NODE);
    assert.equal(r.decision.tunnelId, 300);
    assert.equal(r.out.subarray(0, 6).toString("hex"), vxlanMacFor(REMOTE_NODE).replaceAll(":", ""));
    assert.equal(r.out.subarray(6, 12).toString("hex"), vxlanMacFor("198.18.0.11").replaceAll(":", ""));
  });

  it("drops packets whose source address is not the sending pod's, and reports them", function () {
    const events: DatapathEvent[] = [];
    using rb = new RingBuffer(dp.events, (rec) => events.push(decodeEvent(rec)));
    rb.consume();
    events.length = 0;
    const before = count("drop_spoofed");
    // POD_B's address, sent from POD_A's veth (ifindex 1).
    const spoofed = probeFrame({ protocol: "TCP", src: POD_B.ip, dst: POD_A.ip, sport: 1234, dport: 80 });
    assert.equal(run(dp, PROGRAMS.fromPod, spoofed).retval, TC_ACT_SHOT);
    // An address no pod has.
    const forged = probeFrame({ protocol: "UDP", src: "10.244.0.99", dst: WORLD, sport: 1, dport: 2 });
    assert.equal(run(dp, PROGRAMS.fromPod, forged).retval, TC_ACT_SHOT);
    assert.equal(count("drop_spoofed"), before + 2n);
    rb.consume();
    assert.equal(events.length, 2);
    assert.equal(events[0]!.type, "drop");
    assert.equal(events[0]!.reason, "drop_spoofed");
    assert.equal(events[0]!.saddr, POD_B.ip);
    assert.equal(events[0]?.dport, 80);
  });

  it("drops IPv6 and unknown EtherTypes as unsupported", function () {
    const before = count("drop_unsupported");
    const r = run(dp, PROGRAMS.fromPod, ethernet(undefined, undefined, EtherType.IPv6, Buffer.alloc(60)));
    assert.equal(r.retval, TC_ACT_SHOT);
    run(dp, PROGRAMS.fromPod, ethernet(undefined, undefined, 0x88cc, Buffer.alloc(46)));
    assert.equal(count("drop_unsupported"), before + 2n);
  });

  describe("malformed and truncated frames", function () {
    function malformedCase(name: string, frame: Buffer): void {
      it(`drops and counts: ${name}`, function () {
        const before = count("drop_malformed");
        const r = run(dp, PROGRAMS.fromPod, frame);
        assert.equal(r.retval, TC_ACT_SHOT);
        assert.equal(count("drop_malformed"), before + 1n);
      });
    }
    const good = ipv4Packet({
      src: POD_A.ip,
      dst: POD_B.ip,
      protocol: IpProto.TCP,
      payload: tcpSegment({ src: POD_A.ip, dst: POD_B.ip, sport: 1, dport: 2 }),
    });
    const withByte = (offset: number, value: number) => {
      const b = Buffer.from(good);
      b[offset] = value;
      return ethernet(undefined, undefined, EtherType.IPv4, b);
    };
    malformedCase("IPv4 header length below 5 words", withByte(0, 0x44));
    malformedCase("IP version 6 in an IPv4 EtherType", withByte(0, 0x65));
    malformedCase(
      "total length beyond the frame",
      (() => {
        const b = Buffer.from(good);
        b.writeUInt16BE(1500, 2);
        return ethernet(undefined, undefined, EtherType.IPv4, b);
      })(),
    );
    malformedCase(
      "TCP header cut short",
      ipv4Frame({ src: POD_A.ip, dst: POD_B.ip, protocol: IpProto.TCP, payload: Buffer.alloc(8) }),
    );
    malformedCase(
      "UDP header cut short",
      ipv4Frame({ src: POD_A.ip, dst: POD_B.ip, protocol: IpProto.UDP, payload: Buffer.alloc(4) }),
    );
    malformedCase(
      "ICMP header cut short",
      ipv4Frame({ src: POD_A.ip, dst: POD_B.ip, protocol: IpProto.ICMP, payload: Buffer.alloc(3) }),
    );
    malformedCase(
      "ARP frame cut short",
      arpFrame({ op: "request", senderMac: POD_A.mac, senderIp: POD_A.ip, targetIp: "169.254.1.1" }).subarray(
        0,
        30,
      ),
    );

    it("never crashes on arbitrary bytes; every frame gets exactly one counted verdict", function () {
      this.timeout(60000);
      const total = () => dp.metrics.counters().reduce((s, c) => s + c.packets, 0n);
      fc.assert(
        fc.property(
          fc.constantFrom(EtherType.IPv4, EtherType.ARP, EtherType.IPv6, 0x1234),
          fc.uint8Array({ minLength: 40, maxLength: 200 }),
          fc.boolean(),
          (etherType, body, plausible) => {
            const payload = Buffer.from(body);
            if (plausible && etherType === EtherType.IPv4) {
              payload[0] = 0x45;
              payload.writeUInt32BE(0x0af4000a, 12); // POD_A as source, so parsing goes deep
            }
            const frame = ethernet(POD_A.hostMac, POD_A.mac, etherType, payload);
            const before = total();
            const r = dp.programs[PROGRAMS.fromPod].testRun({ data: frame, ctx: { ifindex: 1 } });
            assert.ok([TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT].includes(r.retval), `retval ${r.retval}`);
            assert.equal(total(), before + 1n);
          },
        ),
        { numRuns: 400 },
      );
    });
  });

  it("lets the reply of an allowed ping back into a pod whose ingress is default-deny", function () {
    const req = ipv4Frame({ src: POD_A.ip, dst: POD_B.ip, protocol: IpProto.ICMP, payload: icmpEcho(7, 1) });
    assert.equal(run(dp, PROGRAMS.fromPod, req).retval, TC_ACT_REDIRECT);
    assert.equal(dp.conntrack.count(), 1, "one entry for the flow, both directions");
    // Now POD_A admits nothing, and POD_B answers from its own veth.
    dp.ipcache.set(
      { ip: POD_A.ip, length: 32 },
      { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceIngress },
    );
    dp.endpoints.set(POD_B.ip, { ifindex: 1, flags: 0, mac: POD_B.mac, hostMac: POD_B.hostMac });
    try {
      const reply = ipv4Frame({
        src: POD_B.ip,
        dst: POD_A.ip,
        protocol: IpProto.ICMP,
        payload: icmpEcho(7, 1, true),
      });
      const r = run(dp, PROGRAMS.fromPod, reply);
      assert.equal(r.retval, TC_ACT_REDIRECT, "reply passes through conntrack");
      const fresh = ipv4Frame({
        src: POD_B.ip,
        dst: POD_A.ip,
        protocol: IpProto.ICMP,
        payload: icmpEcho(8, 1),
      });
      const denied = run(dp, PROGRAMS.fromPod, fresh);
      assert.equal(denied.retval, TC_ACT_SHOT, "a new ping from B is a new flow and is denied");
      assert.equal(denied.decision.direction, "ingress");
    } finally {
      dp.ipcache.set(
        { ip: POD_A.ip, length: 32 },
        { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      dp.endpoints.set(POD_B.ip, {
        ifindex: POD_B.ifindex,
        flags: 0,
        mac: POD_B.mac,
        hostMac: POD_B.hostMac,
      });
    }
  });

  it("counts a non-first fragment of a new flow on an enforced pod as drop_fragment (it has no ports to judge), a whole packet as drop_policy", function () {
    const fragment = (src: string, dst: string) =>
      ipv4Frame({ src, dst, protocol: IpProto.UDP, fragmentOffset: 185, payload: Buffer.alloc(64) });
    const whole = (src: string, dst: string) =>
      probeFrame({ protocol: "UDP", src, dst, sport: 5353, dport: 53 });
    dp.ipcache.set(
      { ip: POD_A.ip, length: 32 },
      {
        identity: 300,
        tunnelIp: null,
        cidrIdentity: 0,
        flags: IpcacheFlag.enforceEgress | IpcacheFlag.enforceIngress,
      },
    );
    try {
      for (const [program, frame, direction, reason] of [
        [PROGRAMS.fromPod, fragment(POD_A.ip, WORLD), "egress", "drop_fragment"],
        [PROGRAMS.fromPod, whole(POD_A.ip, WORLD), "egress", "drop_policy"],
        [PROGRAMS.toPod, fragment(WORLD, POD_A.ip), "ingress", "drop_fragment"],
        [PROGRAMS.toPod, whole(WORLD, POD_A.ip), "ingress", "drop_policy"],
      ] as const) {
        const before = count(reason, direction);
        const r = run(dp, program, frame);
        assert.equal(r.retval, TC_ACT_SHOT, `${program} ${reason}`);
        assert.equal(r.decision.reason, reason);
        assert.equal(r.decision.direction, direction);
        assert.equal(count(reason, direction), before + 1n);
      }
    } finally {
      dp.ipcache.set(
        { ip: POD_A.ip, length: 32 },
        { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
    }
  });

  it("enforces egress default-deny on a selected pod and still lets replies in via conntrack", function () {
    const src = { ...POD_A };
    dp.ipcache.set(
      { ip: src.ip, length: 32 },
      { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: IpcacheFlag.enforceEgress },
    );
    try {
      const before = count("drop_policy");
      const out = probeFrame({ protocol: "UDP", src: src.ip, dst: WORLD, sport: 5353, dport: 53 });
      const r = run(dp, PROGRAMS.fromPod, out);
      assert.equal(r.retval, TC_ACT_SHOT);
      assert.equal(r.decision.reason, "drop_policy");
      assert.equal(r.decision.direction, "egress");
      assert.equal(count("drop_policy"), before + 1n);
      dp.policy.set(
        {
          endpointIp: src.ip,
          direction: "egress",
          peerIdentity: Identity.any,
          protocol: IpProto.UDP,
          port: 53,
        },
        { ruleId: 9, flags: 0 },
      );
      const allowed = run(dp, PROGRAMS.fromPod, out);
      assert.equal(allowed.retval, TC_ACT_OK);
      assert.equal(allowed.decision.ruleId, 9);
      // The reply, delivered by the host stack to the pod's veth: conntrack, not policy.
      const reply = ipv4Frame({
        src: WORLD,
        dst: src.ip,
        protocol: IpProto.UDP,
        payload: udpDatagram({ src: WORLD, dst: src.ip, sport: 53, dport: 5353 }),
      });
      assert.equal(run(dp, PROGRAMS.toPod, reply).retval, TC_ACT_OK);
      const tcp = probeFrame({ protocol: "TCP", src: src.ip, dst: WORLD, sport: 41000, dport: 443 });
      assert.equal(run(dp, PROGRAMS.fromPod, tcp).retval, TC_ACT_SHOT, "other ports stay denied");
    } finally {
      dp.ipcache.set(
        { ip: src.ip, length: 32 },
        { identity: 300, tunnelIp: null, cidrIdentity: 0, flags: 0 },
      );
      for (const k of [...dp.policy.raw.keys()]) dp.policy.raw.delete(k);
    }
  });
});
