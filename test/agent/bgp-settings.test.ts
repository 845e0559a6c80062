/**
 * BGP settings (agent/routing/bgp-settings.ts): what the agent accepts from `bgp:` in its config
 * file and from --bgp-* flags, and that everything else is refused with the field's name.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  AS_TRANS,
  BgpSettingsError,
  MAX_ASN,
  parseAsn,
  parseBgpSettings,
  parsePeerAddress,
  parsePeerList,
} from "../../agent/routing/bgp-settings.js";

function refused(fn: () => unknown, field: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BgpSettingsError, `not a BgpSettingsError: ${String(err)}`);
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

describe("agent: BGP settings", function () {
  it("accepts the config file's bgp object: 4-byte ASNs, peers with password and port, mesh", function () {
    const s = parseBgpSettings({
      file: {
        asn: 4200000001,
        peers: [
          { address: "192.0.2.1", asn: 65000, password: "s3cret", port: 1179 },
          { address: "192.0.2.2", asn: "4200000001" },
        ],
        mesh: true,
      },
    });
    assert.deepEqual(s, {
      asn: 4200000001,
      peers: [
        { address: "192.0.2.1", asn: 65000, password: "s3cret", port: 1179 },
        { address: "192.0.2.2", asn: 4200000001 },
      ],
      mesh: true,
    });
  });

  it("is off (null) when nothing is set, and flags win over the file field by field", function () {
    assert.equal(parseBgpSettings({}), null);
    assert.equal(parseBgpSettings({ file: null }), null);
    assert.equal(parseBgpSettings({ file: {} }), null);
    const s = parseBgpSettings({
      file: { asn: 64512, peers: [{ address: "192.0.2.1", asn: 65000 }] },
      flags: { asn: "64513", mesh: true },
    });
    assert.deepEqual(s, { asn: 64513, peers: [{ address: "192.0.2.1", asn: 65000 }], mesh: true });
    assert.deepEqual(
      parseBgpSettings({ flags: { asn: "64512", peers: "65000@192.0.2.1,64512@192.0.2.9:1179" } }),
      {
        asn: 64512,
        peers: [
          { address: "192.0.2.1", asn: 65000 },
          { address: "192.0.2.9", asn: 64512, port: 1179 },
        ],
        mesh: false,
      },
    );
  });

  it("refuses ASNs out of range, AS_TRANS, fractions and text", function () {
    for (const bad of [0, -1, MAX_ASN + 1, 2 ** 53, 1.5, "65000x", "", "1e5", null, true, "0"])
      refused(() => parseAsn(bad, "bgp.asn"), "bgp.asn");
    refused(() => parseAsn(AS_TRANS, "bgp.asn"), "bgp.asn", /AS_TRANS/);
    assert.equal(parseAsn(1, "x"), 1);
    assert.equal(parseAsn(MAX_ASN, "x"), MAX_ASN);
    assert.equal(parseAsn(" 65000 ", "x"), 65000);
  });

  it("names the field of each refusal", function () {
    refused(() => parseBgpSettings({ file: { asn: 0, mesh: true } }), "bgp.asn", /out of range/);
    refused(
      () => parseBgpSettings({ file: { peers: [{ address: "192.0.2.1", asn: 1 }] } }),
      "bgp.asn",
      /required/,
    );
    refused(() => parseBgpSettings({ file: { mesh: true } }), "bgp.asn", /required/);
    refused(() => parseBgpSettings({ file: { asn: 64512 } }), "bgp.peers", /no peer and no mesh/);
    refused(
      () =>
        parseBgpSettings({
          file: {
            asn: 64512,
            peers: [
              { address: "192.0.2.1", asn: 1 },
              { address: "192.0.2.300", asn: 1 },
            ],
          },
        }),
      "bgp.peers[1].address",
      /unparsable peer address/,
    );
    refused(
      () => parseBgpSettings({ file: { asn: 64512, peers: [{ address: "192.0.2.1", asn: 4294967296 }] } }),
      "bgp.peers[0].asn",
    );
    refused(
      () => parseBgpSettings({ file: { asn: 64512, peers: [{ address: "192.0.2.1", asn: 1, port: 0 }] } }),
      "bgp.peers[0].port",
    );
    refused(
      () =>
        parseBgpSettings({
          file: { asn: 64512, peers: [{ address: "192.0.2.1", asn: 1, password: 'a"; }' }] },
        }),
      "bgp.peers[0].password",
    );
    refused(
      () =>
        parseBgpSettings({ file: { asn: 64512, peers: [{ address: "192.0.2.1", asn: 1, pasword: "x" }] } }),
      "bgp.peers[0].pasword",
      /unknown key/,
    );
    refused(
      () =>
        parseBgpSettings({
          file: {
            asn: 64512,
            peers: [
              { address: "192.0.2.1", asn: 1 },
              { address: "192.0.2.1", asn: 2 },
            ],
          },
        }),
      "bgp.peers[1].address",
      /also bgp.peers\[0\]/,
    );
    refused(() => parseBgpSettings({ file: { asn: 64512, mesh: "yes" } }), "bgp.mesh");
    refused(() => parseBgpSettings({ file: { asn: 64512, peers: "192.0.2.1" } }), "bgp.peers");
    refused(() => parseBgpSettings({ file: { asn: 64512, mesh: true, rr: true } }), "bgp.rr", /unknown key/);
    refused(() => parseBgpSettings({ file: [1] }), "bgp");
    refused(() => parseBgpSettings({ flags: { asn: "99999999999", mesh: true } }), "--bgp-asn");
    refused(() => parsePeerList("192.0.2.1"), "--bgp-peers[0]", /ASN@ADDRESS/);
    refused(() => parsePeerList("65000@192.0.2.1:70000"), "--bgp-peers[0].port");
  });

  it("refuses addresses that are not unicast hosts", function () {
    for (const bad of [
      "0.0.0.0",
      "127.0.0.1",
      "224.0.0.5",
      "255.255.255.255",
      "0.1.2.3",
      "192.0.2.01",
      "::1",
      "192.0.2",
      "host.example",
      3232235521,
    ])
      refused(() => parsePeerAddress(bad, "p"), "p");
  });

  it("fuzz: any valid unicast address and ASN round-trip; any other text is refused, never thrown otherwise", function () {
    const unicast = fc
      .tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255))
      .filter(([a]) => a !== 127)
      .map((o) => o.join("."));
    const asn = fc.integer({ min: 1, max: MAX_ASN }).filter((n) => n !== AS_TRANS);
    fc.assert(
      fc.property(unicast, asn, asn, (address, own, peer) => {
        const s = parseBgpSettings({ file: { asn: own, peers: [{ address, asn: peer }] } });
        assert.deepEqual(s, { asn: own, peers: [{ address, asn: peer }], mesh: false });
        assert.deepEqual(parsePeerList(`${peer}@${address}`), [{ address, asn: peer }]);
      }),
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null)), (text) => {
        let ok = false;
        try {
          parsePeerAddress(text, "p");
          ok = true;
        } catch (err) {
          assert.ok(err instanceof BgpSettingsError, String(err));
        }
        if (ok) assert.match(String(text), /^\d+\.\d+\.\d+\.\d+$/);
        try {
          parseAsn(text, "a");
        } catch (err) {
          assert.ok(err instanceof BgpSettingsError, String(err));
        }
      }),
    );
  });

  it("skein-agent refuses bad BGP settings at start, naming the field, before touching anything", function () {
    this.timeout(120000);
    const main = join(dirname(fileURLToPath(import.meta.url)), "../../agent/main.js");
    const dir = mkdtempSync(join(tmpdir(), "skein-bgp-cfg-"));
    try {
      const cases: [string, string[], RegExp][] = [
        ["routing: native\nbgp:\n  asn: 0\n  mesh: true\n", [], /bgp\.asn: ASN out of range/],
        [
          "routing: native\nbgp:\n  asn: 64512\n  peers:\n    - {address: 192.0.2.999, asn: 65000}\n",
          [],
          /bgp\.peers\[0\]\.address: unparsable peer address/,
        ],
        ["routing: native\n", ["--bgp-asn=4294967296", "--bgp-mesh"], /--bgp-asn: ASN out of range/],
        ["routing: vxlan\nbgp: {asn: 64512, mesh: true}\n", [], /bgp: BGP needs native routing/],
        ["routing: bgp\n", [], /unknown routing mode "bgp"/],
      ];
      for (const [yaml, args, pattern] of cases) {
        const file = join(dir, "agent.yaml");
        writeFileSync(file, yaml);
        // A kubeconfig that does not exist: the settings are refused before it is read.
        const r = spawnSync(
          process.execPath,
          [main, `--config=${file}`, "--kubeconfig=/nonexistent", ...args],
          {
            encoding: "utf8",
            timeout: 20000,
          },
        );
        assert.equal(r.status, 1, `${yaml}: exit ${String(r.status)} ${r.stderr}`);
        assert.match(r.stderr, pattern);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
