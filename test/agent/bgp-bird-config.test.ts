/**
 * BIRD's configuration as the agent renders it (agent/routing/bird-config.ts): a golden text, the
 * neighbours and the accepted prefixes, and (where bird2 is installed) BIRD's own parser (`bird -p`)
 * accepting what we render for random clusters.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  acceptedPrefixes,
  neighbours,
  renderBirdConfig,
  type BirdConfigInput,
} from "../../agent/routing/bird-config.js";

const input: BirdConfigInput = {
  own: { name: "n1", internalIp: "198.18.1.11", podCidr: "10.244.0.0/24" },
  nodes: [
    { name: "n1", internalIp: "198.18.1.11", podCidr: "10.244.0.0/24" },
    { name: "n2", internalIp: "198.18.2.12", podCidr: "10.244.1.0/24" },
    { name: "n3", internalIp: "198.18.1.1", podCidr: "10.244.2.0/24" },
  ],
  bgp: {
    asn: 64512,
    peers: [{ address: "198.18.1.1", asn: 65000, password: "s3cret", port: 1179 }],
    mesh: true,
  },
  uplink: "eth0",
};

const GOLDEN = `# Written by skein-agent for node n1; do not edit (rewritten on every change).
router id 198.18.1.11;
log stderr all;
timeformat protocol iso long;
timeformat route iso long;

# Other nodes' pod CIDRs: the only prefixes accepted from any BGP neighbour.
define SKEIN_NODE_CIDRS = [ 10.244.1.0/24, 10.244.2.0/24 ];
define SKEIN_OWN_CIDR = 10.244.0.0/24;

filter skein_import {
  if net ~ SKEIN_NODE_CIDRS then accept;
  print "skein: rejected ", net, " from ", proto, ": not another node's pod CIDR";
  reject;
}

filter skein_export {
  if proto = "skn_pods" && net = SKEIN_OWN_CIDR then accept;
  reject;
}

protocol device {
  scan time 10;
}

protocol direct skn_uplink {
  ipv4 { import all; export none; };
  interface "eth0";
}

protocol kernel skn_kernel {
  ipv4 {
    import all;
    export filter { if source = RTS_BGP then accept; reject; };
  };
  metric 200;
  learn;
  persist;
  graceful restart on;
  merge paths on;
  scan time 10;
}

protocol static skn_pods {
  ipv4;
  route 10.244.0.0/24 blackhole;
}

protocol bgp skn_peer_198_18_1_1 {
  description "peer 198.18.1.1";
  local 198.18.1.11 as 64512;
  neighbor 198.18.1.1 port 1179 as 65000;
  password "s3cret";
  graceful restart on;
  connect retry time 5;
  ipv4 {
    import filter skein_import;
    export filter skein_export;
    next hop self;
  };
}

protocol bgp skn_node_198_18_2_12 {
  description "node n2 198.18.2.12";
  local 198.18.1.11 as 64512;
  neighbor 198.18.2.12 as 64512;
  graceful restart on;
  connect retry time 5;
  ipv4 {
    import filter skein_import;
    export filter skein_export;
    next hop self;
  };
}
`;

function birdInstalled(): boolean {
  try {
    execFileSync("bird", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("agent: BIRD configuration", function () {
  it("renders the golden configuration (a peer that is also a node is peered once, as the peer)", function () {
    assert.equal(renderBirdConfig(input), GOLDEN);
  });

  it("accepts exactly the other nodes' pod CIDRs, normalised, never its own", function () {
    assert.deepEqual(
      acceptedPrefixes(input.own, [
        ...input.nodes,
        { name: "n4", internalIp: "198.18.2.14", podCidr: "10.244.3.7/24" },
        { name: "n5", internalIp: "198.18.2.15", podCidr: "10.244.0.0/24" },
        { name: "bad", internalIp: "198.18.2.16", podCidr: "nonsense" },
      ]),
      ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"],
    );
    const alone = renderBirdConfig({ ...input, nodes: [input.own] });
    assert.match(alone, /define SKEIN_NODE_CIDRS = \[ 0\.0\.0\.0\/32 \];/);
  });

  it("meshes with every other node by address, skipping itself and unusable addresses", function () {
    const n = neighbours({
      own: input.own,
      nodes: [...input.nodes, { name: "x", internalIp: "", podCidr: "10.9.0.0/24" }],
      bgp: { asn: 64512, peers: [], mesh: true },
    });
    assert.deepEqual(
      n.map((x) => [x.protocol, x.address, x.asn, x.kind, x.node]),
      [
        ["skn_node_198_18_1_1", "198.18.1.1", 64512, "node", "n3"],
        ["skn_node_198_18_2_12", "198.18.2.12", 64512, "node", "n2"],
      ],
    );
    assert.deepEqual(neighbours({ ...input, bgp: { ...input.bgp, mesh: false } }).length, 1);
  });

  it("refuses a node without a usable address or pod CIDR, and an odd uplink name", function () {
    assert.throws(
      () => renderBirdConfig({ ...input, own: { ...input.own, internalIp: "x" } }),
      /unusable address/,
    );
    assert.throws(
      () => renderBirdConfig({ ...input, own: { ...input.own, podCidr: "" } }),
      /unusable pod CIDR/,
    );
    assert.throws(() => renderBirdConfig({ ...input, uplink: 'eth0"; }' }), /uplink/);
  });

  it("renders what BIRD 2's own parser accepts, for random clusters (bird -p)", function () {
    if (!birdInstalled()) this.skip();
    this.timeout(60000);
    const dir = mkdtempSync(join(tmpdir(), "skein-bird-p-"));
    try {
      const octet = fc.integer({ min: 1, max: 223 }).filter((a) => a !== 127);
      const node = fc.record({
        name: fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/),
        internalIp: fc
          .tuple(octet, fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 }))
          .map((o) => o.join(".")),
        podCidr: fc
          .tuple(fc.nat(255), fc.nat(255), fc.integer({ min: 16, max: 28 }))
          .map(([a, b, l]) => `10.${a}.${b}.0/${l}`),
      });
      fc.assert(
        fc.property(
          fc.array(node, { minLength: 1, maxLength: 6 }),
          fc.integer({ min: 1, max: 4294967295 }),
          fc.boolean(),
          (nodes, asn, mesh) => {
            const own = nodes[0]!;
            const text = renderBirdConfig({
              own,
              nodes,
              bgp: { asn, peers: [{ address: "192.0.2.1", asn: 65000, password: "k e y!" }], mesh },
              uplink: "eth0",
            });
            const file = join(dir, "bird.conf");
            writeFileSync(file, text);
            execFileSync("bird", ["-p", "-c", file], { stdio: "pipe" });
          },
        ),
        { numRuns: 25 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
