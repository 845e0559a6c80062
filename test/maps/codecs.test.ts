import assert from "node:assert/strict";
import fc from "fast-check";
import { endpointsCodec } from "../../maps/endpoints.js";
import { ipcacheCodec } from "../../maps/ipcache.js";
import { policyCodec, portRangePrefixes, policyKeyString, type PolicyKey } from "../../maps/policy.js";
import { conntrackCodec } from "../../maps/conntrack.js";
import { vxlanMacFor } from "../../maps/config.js";
import { formatIPv4, parsePrefix, prefixContains } from "../../maps/net.js";
import { DEFAULT_SETTINGS, SETTINGS_SIZE, decodeSettings, encodeSettings } from "../../maps/settings.js";

const ipArb = fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4);
const macArb = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(":"));

describe("maps: codecs (golden bytes and round trips)", function () {
  it("endpoint value golden bytes", function () {
    const bytes = endpointsCodec.value.encode({
      ifindex: 7,
      flags: 0,
      mac: "02:00:00:00:00:0a",
      hostMac: "0e:00:00:00:00:0b",
    });
    assert.equal(bytes.toString("hex"), "07000000" + "00000000" + "02000000000a" + "0e000000000b");
    assert.equal(endpointsCodec.key.encode("10.244.0.5").toString("hex"), "0af40005", "key in network order");
  });

  it("ipcache key golden bytes: prefix length host order, address network order", function () {
    assert.equal(
      ipcacheCodec.key.encode({ ip: "10.244.1.0", length: 24 }).toString("hex"),
      "18000000" + "0af40100",
    );
  });

  it("policy keys: prefix lengths by specificity; port in network order, host bits cleared", function () {
    const base = { endpointIp: "10.0.0.1", direction: "ingress" as const, peerIdentity: 300 };
    assert.equal(policyCodec.key.encode(base).readUInt32LE(0), 72);
    assert.equal(policyCodec.key.encode({ ...base, protocol: 6 }).readUInt32LE(0), 80);
    const full = policyCodec.key.encode({ ...base, protocol: 6, port: 80 });
    assert.equal(full.readUInt32LE(0), 96);
    assert.equal(full.subarray(14).toString("hex"), "0050");
    const ranged = policyCodec.key.encode({ ...base, protocol: 6, port: 0x1ff, portBits: 8 });
    assert.equal(ranged.readUInt32LE(0), 88);
    assert.equal(ranged.subarray(14).toString("hex"), "0100", "low 8 bits cleared");
    const byIp = policyCodec.key.encode({
      endpointIp: "10.0.0.1",
      direction: "egress",
      peerIdentity: 0,
      peerIp: "10.0.0.2",
      protocol: 6,
      port: 80,
    });
    assert.equal(byIp.readUInt8(12), 3);
    assert.equal(byIp.readUInt32LE(8), 0x0a000002);
    assert.throws(() => policyCodec.key.encode({ ...base, peerIp: "10.0.0.2" }), /egress only/);
  });

  it("round trips every codec", function () {
    fc.assert(
      fc.property(ipArb, fc.integer({ min: 0, max: 0xffffffff }), macArb, macArb, (ip, n, mac, hostMac) => {
        const e = { ifindex: n, flags: 0, mac, hostMac };
        assert.deepEqual(endpointsCodec.value.decode(endpointsCodec.value.encode(e)), e);
        assert.equal(endpointsCodec.key.decode(endpointsCodec.key.encode(ip)), ip);
        const ic = {
          identity: n & 0xffffff,
          tunnelIp: ip === "0.0.0.0" ? null : ip,
          cidrIdentity: 0,
          flags: 3,
        };
        assert.deepEqual(ipcacheCodec.value.decode(ipcacheCodec.value.encode(ic)), ic);
        const ct = { addrA: ip, addrB: "10.1.1.1", portA: n & 0xffff, portB: 80, proto: 17 };
        assert.deepEqual(conntrackCodec.key.decode(conntrackCodec.key.encode(ct)), ct);
      }),
    );
  });

  it("policy keys round trip and their canonical strings are unique", function () {
    const keyArb: fc.Arbitrary<PolicyKey> = fc
      .record({
        endpointIp: ipArb,
        direction: fc.constantFrom("ingress" as const, "egress" as const),
        peerIdentity: fc.integer({ min: 0, max: 0xffffff }),
        protocol: fc.option(fc.constantFrom(6, 17, 132), { nil: undefined }),
        port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      })
      .map((k) => {
        const out: PolicyKey = {
          endpointIp: k.endpointIp,
          direction: k.direction,
          peerIdentity: k.peerIdentity,
        };
        if (k.protocol !== undefined) {
          out.protocol = k.protocol;
          if (k.port !== undefined) {
            out.port = k.port;
            out.portBits = 16;
          }
        }
        return out;
      });
    fc.assert(
      fc.property(keyArb, (k) => {
        const back = policyCodec.key.decode(policyCodec.key.encode(k));
        assert.deepEqual(back, k);
        assert.equal(policyKeyString(back), policyKeyString(k));
      }),
    );
  });

  it("port ranges become exact, minimal prefix covers", function () {
    assert.deepEqual(portRangePrefixes(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(portRangePrefixes(0, 65535), [{ port: 0, bits: 0 }]);
    assert.deepEqual(portRangePrefixes(32000, 32768), [
      { port: 32000, bits: 8 },
      { port: 32256, bits: 7 },
      { port: 32768, bits: 16 },
    ]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b) => {
        const [from, to] = a <= b ? [a, b] : [b, a];
        const covered = new Set<number>();
        for (const p of portRangePrefixes(from, to)) {
          const size = 2 ** (16 - p.bits);
          assert.equal(p.port % size, 0, "aligned");
          for (let x = p.port; x < p.port + size; x++) {
            assert.ok(!covered.has(x), "no overlap");
            covered.add(x);
          }
        }
        assert.equal(covered.size, to - from + 1);
        assert.ok(covered.has(from) && covered.has(to));
        assert.ok(portRangePrefixes(from, to).length <= 30, "at most 2 prefixes per bit");
      }),
      { numRuns: 200 },
    );
  });

  it("VXLAN MACs are derived from node addresses, locally administered unicast", function () {
    assert.equal(vxlanMacFor("198.18.0.11"), "0e:5e:c6:12:00:0b");
  });

  it("prefixes parse strictly", function () {
    assert.deepEqual(parsePrefix("10.244.1.7/24"), { ip: "10.244.1.0", length: 24 });
    for (const bad of [
      "10.244.1.0/33",
      "10.244.1/24",
      "a.b.c.d/8",
      "10.0.0.0/",
      "10.0.0.256/8",
      "1.2.3.4/8/9",
    ])
      assert.throws(() => parsePrefix(bad), RangeError, bad);
    assert.ok(prefixContains(parsePrefix("10.0.0.0/8"), parsePrefix("10.1.0.0/16")));
    assert.ok(!prefixContains(parsePrefix("10.1.0.0/16"), parsePrefix("10.0.0.0/8")));
  });
});

describe("skn_settings codec", function () {
  it("carries the Service CIDR as network (network order) and prefix length; none is all zeros", function () {
    const b = encodeSettings({ ...DEFAULT_SETTINGS, serviceCidr: "10.96.7.1/12" });
    assert.equal(b.length, SETTINGS_SIZE);
    assert.deepEqual([...b.subarray(20, 28)], [10, 96, 0, 0, 12, 0, 0, 0]);
    assert.equal(decodeSettings(b).serviceCidr, "10.96.0.0/12");
    const none = encodeSettings(DEFAULT_SETTINGS);
    assert.deepEqual([...none.subarray(20, 32)], new Array<number>(12).fill(0));
    assert.deepEqual(decodeSettings(none), DEFAULT_SETTINGS);
    assert.throws(() => encodeSettings({ ...DEFAULT_SETTINGS, serviceCidr: "10.96.0.0/40" }), RangeError);
    assert.throws(() => encodeSettings({ ...DEFAULT_SETTINGS, serviceCidr: "0.0.0.0/0" }), RangeError);
  });
});
