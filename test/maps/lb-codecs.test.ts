import assert from "node:assert/strict";
import fc from "fast-check";
import { lbAffinityCodec } from "../../maps/lb-affinity.js";
import { lbBackendCodec } from "../../maps/lb-backend.js";
import { lbFlowCodec } from "../../maps/lb-flow.js";
import { MAGLEV_M, lbMaglevCodec } from "../../maps/lb-maglev.js";
import { lbRevnatCodec } from "../../maps/lb-revnat.js";
import { lbSlotCodec } from "../../maps/lb-slot.js";
import { LbSvcFlag, lbSvcCodec, type LbProtoNumber } from "../../maps/lb-svc.js";
import { conntrackCodec, CtFlag } from "../../maps/conntrack.js";
import { formatIPv4 } from "../../maps/net.js";

const ipArb = fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4);
const portArb = fc.integer({ min: 0, max: 0xffff });
const protoArb = fc.constantFrom<LbProtoNumber>(6, 17, 132);
const u32Arb = fc.integer({ min: 0, max: 0xffffffff });

describe("maps: Service map codecs (golden bytes and round trips)", function () {
  it("skn_lb_svc: address and port network order, protocol, pad; value little-endian", function () {
    const k = lbSvcCodec.key.encode({ addr: "10.96.0.10", port: 53, proto: 17 });
    assert.equal(k.toString("hex"), "0a60000a" + "0035" + "11" + "00");
    const v = lbSvcCodec.value.encode({
      svcId: 0x01020304,
      count: 3,
      localCount: 1,
      flags: LbSvcFlag.affinity | LbSvcFlag.consistent,
      affinityTimeoutS: 10800,
    });
    assert.equal(v.toString("hex"), "04030201" + "0300" + "0100" + "09000000" + "302a0000");
    assert.throws(
      () => lbSvcCodec.value.encode({ svcId: 1, count: 1, localCount: 2, flags: 0, affinityTimeoutS: 0 }),
      /localCount/,
    );
    assert.throws(() => lbSvcCodec.key.encode({ addr: "10.0.0.1", port: 70000, proto: 6 }), /u16/);
    assert.throws(
      () => lbSvcCodec.key.encode({ addr: "10.0.0.1", port: 80, proto: 1 as LbProtoNumber }),
      /protocol/,
    );
  });

  it("skn_lb_slot, skn_lb_backend, skn_lb_revnat golden bytes", function () {
    assert.equal(lbSlotCodec.key.encode({ svcId: 7, slot: 2 }).toString("hex"), "07000000" + "02000000");
    assert.equal(lbSlotCodec.value.encode({ backendId: 9 }).toString("hex"), "09000000" + "00000000");
    assert.equal(lbBackendCodec.key.encode(9).toString("hex"), "09000000");
    assert.equal(
      lbBackendCodec.value.encode({ addr: "10.244.1.5", port: 8080, proto: 6, flags: 3 }).toString("hex"),
      "0af40105" + "1f90" + "06" + "03",
    );
    assert.equal(
      lbRevnatCodec.value.encode({ addr: "10.96.0.1", port: 443, proto: 132 }).toString("hex"),
      "0a600001" + "01bb" + "84" + "00",
    );
  });

  it("skn_lb_affinity, skn_lb_flow golden bytes", function () {
    assert.equal(
      lbAffinityCodec.key.encode({ client: "10.244.0.2", svcId: 5 }).toString("hex"),
      "0af40002" + "05000000",
    );
    assert.equal(
      lbAffinityCodec.value.encode({ backendId: 4, lastUsedNs: 0x0102030405060708n }).toString("hex"),
      "04000000" + "00000000" + "0807060504030201",
    );
    assert.equal(
      lbFlowCodec.key
        .encode({
          client: "10.244.0.2",
          frontend: "10.96.0.10",
          clientPort: 40000,
          frontendPort: 53,
          proto: 17,
        })
        .toString("hex"),
      "0af40002" + "0a60000a" + "9c40" + "0035" + "11" + "000000",
    );
    assert.equal(
      lbFlowCodec.value.encode({ backendId: 4, svcId: 5 }).toString("hex"),
      "04000000" + "05000000",
    );
  });

  it("skn_lb_maglev: 251 little-endian ids; a wrong length is refused", function () {
    const table = Array.from({ length: MAGLEV_M }, (_v, i) => i + 1);
    const b = lbMaglevCodec.value.encode(table);
    assert.equal(b.length, 1004);
    assert.equal(b.subarray(0, 8).toString("hex"), "01000000" + "02000000");
    assert.deepEqual(lbMaglevCodec.value.decode(b), table);
    assert.throws(() => lbMaglevCodec.value.encode([1, 2]), /251 slots/);
  });

  it("conntrack: lb_svc_id sits in the former pad at 36 (the value stays 40 bytes)", function () {
    const b = conntrackCodec.value.encode({
      createdNs: 1n,
      lastSeenNs: 2n,
      identityA: 3,
      identityB: 4,
      flags: CtFlag.lb | CtFlag.lbHairpin,
      ruleId: 0,
      tunnelIp: null,
      lbSvcId: 0x0a0b0c0d,
    });
    assert.equal(b.length, 40);
    assert.equal(b.subarray(24, 28).toString("hex"), "60000000");
    assert.equal(b.subarray(36).toString("hex"), "0d0c0b0a");
  });

  it("round trips", function () {
    fc.assert(
      fc.property(ipArb, ipArb, portArb, portArb, protoArb, u32Arb, (a, b, p1, p2, proto, n) => {
        const sk = { addr: a, port: p1, proto };
        assert.deepEqual(lbSvcCodec.key.decode(lbSvcCodec.key.encode(sk)), sk);
        const sv = { svcId: n, count: p1, localCount: Math.min(p1, p2), flags: n & 63, affinityTimeoutS: n };
        assert.deepEqual(lbSvcCodec.value.decode(lbSvcCodec.value.encode(sv)), sv);
        const be = { addr: b, port: p2, proto, flags: n & 3 };
        assert.deepEqual(lbBackendCodec.value.decode(lbBackendCodec.value.encode(be)), be);
        const fk = { client: a, frontend: b, clientPort: p1, frontendPort: p2, proto };
        assert.deepEqual(lbFlowCodec.key.decode(lbFlowCodec.key.encode(fk)), fk);
        const rv = { addr: a, port: p2, proto };
        assert.deepEqual(lbRevnatCodec.value.decode(lbRevnatCodec.value.encode(rv)), rv);
        const ak = { client: a, svcId: n };
        assert.deepEqual(lbAffinityCodec.key.decode(lbAffinityCodec.key.encode(ak)), ak);
      }),
    );
  });
});
