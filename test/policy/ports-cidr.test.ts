/** Ports (names, ranges, container ports) and CIDRs (parsing, blocks, the prefix trie). */
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import fc from "fast-check";
import { formatPrefix, parsePrefix, prefixContains, type Prefix } from "../../maps/net.js";
import { Protocol } from "../../maps/policy.js";
import { PrefixTrie, blockAllowsIp, compileIpBlock, parseCidr } from "../../policy/cidr.js";
import { compilePorts, containerNamedPorts, isIanaSvcName, portTuples } from "../../policy/ports.js";
import { model } from "./fixtures.js";

describe("policy ports", function () {
  it("knows IANA service names", function () {
    for (const ok of ["http", "h2c", "a", "web-8080", "x".repeat(15), "1a"])
      assert.equal(isIanaSvcName(ok), true, ok);
    for (const bad of ["", "HTTP", "80", "-http", "http-", "a--b", "x".repeat(16), "my_port", "p.q"])
      assert.equal(isIanaSvcName(bad), false, bad);
  });

  it("compiles ports: absent or empty = any; protocol defaults to TCP", function () {
    assert.deepEqual(compilePorts(undefined, "p"), { ok: true, ports: [{ kind: "any" }] });
    assert.deepEqual(compilePorts([], "p"), { ok: true, ports: [{ kind: "any" }] });
    assert.deepEqual(compilePorts([{}], "p"), {
      ok: true,
      ports: [{ kind: "protocol", protocol: Protocol.TCP }],
    });
    const r = compilePorts(
      [
        { port: 53, protocol: "UDP" },
        { port: "dns", protocol: "UDP" },
        { port: 8000, endPort: 8003 },
      ],
      "p",
    );
    assert.ok(r.ok);
    assert.deepEqual(r.ports[0], {
      kind: "range",
      protocol: Protocol.UDP,
      from: 53,
      to: 53,
      prefixes: [{ port: 53, bits: 16 }],
    });
    assert.deepEqual(r.ports[1], { kind: "named", protocol: Protocol.UDP, name: "dns" });
    assert.deepEqual(r.ports[2], {
      kind: "range",
      protocol: Protocol.TCP,
      from: 8000,
      to: 8003,
      prefixes: [{ port: 8000, bits: 14 }],
    });
  });

  it("endPort 65535 and the full range are fine", function () {
    const r = compilePorts([{ port: 1, endPort: 65535 }], "p");
    assert.ok(r.ok);
    const range = r.ports[0];
    assert.ok(range?.kind === "range");
    const covered = range.prefixes.reduce((n, p) => n + 2 ** (16 - p.bits), 0);
    assert.equal(covered, 65535);
  });

  it("collects every error with its path", function () {
    const r = compilePorts(
      [{ port: 0 }, { port: "Bad" }, { protocol: "icmp" }, { port: 5, endPort: 4 }],
      "spec.ingress[0].ports",
    );
    assert.equal(r.ok, false);
    assert.equal(r.errors.length, 4);
    assert.ok(r.errors[0]?.startsWith("spec.ingress[0].ports[0].port"));
    assert.ok(r.errors[3]?.startsWith("spec.ingress[0].ports[3].endPort"));
  });

  it("reads named container ports: containers, then sidecars; first wins; protocol default TCP", function () {
    const ports = containerNamedPorts(
      model<V1Pod>({
        spec: {
          containers: [
            {
              name: "a",
              ports: [
                { name: "http", containerPort: 80 },
                { containerPort: 81 },
                { name: "dns", containerPort: 53, protocol: "UDP" },
              ],
            },
            { name: "b", ports: [{ name: "http", containerPort: 8080 }] },
          ],
          initContainers: [
            { name: "init", ports: [{ name: "once", containerPort: 1 }] },
            { name: "sidecar", restartPolicy: "Always", ports: [{ name: "metrics", containerPort: 9090 }] },
          ],
        },
      }),
    );
    assert.deepEqual(
      [...ports].sort(),
      [
        [`${Protocol.TCP}/http`, 80],
        [`${Protocol.TCP}/metrics`, 9090],
        [`${Protocol.UDP}/dns`, 53],
      ].sort(),
    );
  });

  it("turns specs into tuples; unresolved names into nothing", function () {
    const named = new Map([[`${Protocol.TCP}/http`, 80]]);
    assert.deepEqual(portTuples({ kind: "named", protocol: Protocol.TCP, name: "http" }, named), [
      { protocol: Protocol.TCP, port: 80, portBits: 16 },
    ]);
    assert.deepEqual(portTuples({ kind: "named", protocol: Protocol.UDP, name: "http" }, named), []);
    assert.deepEqual(portTuples({ kind: "any" }), [{}]);
  });
});

describe("policy CIDRs", function () {
  it("parses CIDRs like the API server's legacy parser", function () {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { family: 4, prefix: { ip: "10.0.0.0", length: 8 } });
    assert.deepEqual(
      parseCidr("10.1.2.3/8"),
      { family: 4, prefix: { ip: "10.0.0.0", length: 8 } },
      "host bits cleared",
    );
    assert.deepEqual(
      parseCidr("010.0.0.0/8"),
      { family: 4, prefix: { ip: "10.0.0.0", length: 8 } },
      "leading zeros are decimal",
    );
    assert.equal(parseCidr("2001:db8::/32")?.family, 6);
    for (const bad of [
      "10.0.0.0",
      "10.0.0.0/33",
      "10.0.0/8",
      "256.0.0.0/8",
      "x/8",
      "10.0.0.0/-1",
      "2001:db8::/129",
      "",
    ])
      assert.equal(parseCidr(bad), undefined, bad);
  });

  it("validates except as a strict subset, in either family", function () {
    assert.ok(compileIpBlock({ cidr: "10.0.0.0/8", except: ["10.1.0.0/16", "10.2.3.4/32"] }, "b").ok);
    assert.ok(compileIpBlock({ cidr: "2001:db8::/32", except: ["2001:db8:1::/48"] }, "b").ok);
    for (const except of ["10.0.0.0/8", "11.0.0.0/16", "0.0.0.0/0", "2001:db8::/48"])
      assert.equal(compileIpBlock({ cidr: "10.0.0.0/8", except: [except] }, "b").ok, false, except);
    assert.equal(compileIpBlock({ cidr: "2001:db8::/32", except: ["2001:db9::/48"] }, "b").ok, false);
  });

  it("evaluates blocks with except", function () {
    const r = compileIpBlock({ cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] }, "b");
    assert.ok(r.ok && r.block !== undefined);
    assert.equal(blockAllowsIp(r.block, "10.2.0.1"), true);
    assert.equal(blockAllowsIp(r.block, "10.1.0.1"), false);
    assert.equal(blockAllowsIp(r.block, "11.0.0.1"), false);
  });

  it("trie: longest match, within and containing agree with brute force (property)", function () {
    const prefixArb = fc
      .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
      .map(([ip, len]) =>
        parsePrefix(`${[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".")}/${len}`),
      );
    // Cluster prefixes in a small area so that nesting is common.
    const nearArb = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 }))
      .map(([x, len]) => parsePrefix(`10.0.${x >> 4}.${(x & 15) * 16}/${len}`));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(prefixArb, nearArb), { maxLength: 30 }),
        fc.array(fc.oneof(prefixArb, nearArb), { maxLength: 10 }),
        (stored, removed) => {
          const trie = new PrefixTrie<string>();
          const model = new Map<string, Prefix>();
          for (const p of stored) {
            trie.set(p, formatPrefix(p));
            model.set(formatPrefix(p), p);
          }
          for (const p of removed) {
            assert.equal(trie.delete(p), model.delete(formatPrefix(p)));
          }
          assert.equal(trie.size, model.size);
          for (const q of [...stored, ...removed]) {
            const inside = [...model.values()]
              .filter((p) => prefixContains(q, p))
              .map(formatPrefix)
              .sort();
            assert.deepEqual([...trie.within(q)].map((x) => x.value).sort(), inside);
            const around = [...model.values()].filter((p) => prefixContains(p, q));
            assert.deepEqual(
              [...trie.containing(q)].map((x) => x.value),
              around.sort((a, b) => a.length - b.length).map(formatPrefix),
            );
            const best = around.reduce<Prefix | undefined>(
              (b, p) => (b === undefined || p.length > b.length ? p : b),
              undefined,
            );
            assert.equal(trie.longestMatch(q)?.value, best === undefined ? undefined : formatPrefix(best));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
