/**
 * allOnLink: when every tunnel endpoint is a direct neighbour on the uplink, the datapath names it as
 * the next hop (ConfigFlag.tunnelOnLink). Decided from `ip -j -4 route show` output by longest
 * prefix, as the kernel's main table would.
 */
import assert from "node:assert/strict";
import type { RouteInfo, RuleInfo } from "../../loader/index.js";
import { allOnLink, onlyDefaultRules } from "../../agent/node/overlay.js";

const connected: RouteInfo = { dst: "198.18.0.0/24", dev: "eth0", protocol: "kernel", scope: "link" };
const deflt: RouteInfo = { dst: "default", gateway: "198.18.0.1", dev: "eth0" };
const podRoute: RouteInfo = { dst: "10.244.1.0/24", dev: "skn_vxlan", scope: "link" };

describe("agent: allOnLink (the tunnel next-hop shortcut)", function () {
  it("holds for nodes inside the uplink's connected prefix, and vacuously for none", function () {
    const routes = [deflt, connected, podRoute];
    assert.equal(allOnLink(routes, "eth0", ["198.18.0.12", "198.18.0.13"]), true);
    assert.equal(allOnLink(routes, "eth0", []), true);
  });

  it("fails for a node reached through a gateway (the default route or a more specific one)", function () {
    assert.equal(allOnLink([deflt, connected], "eth0", ["198.18.0.12", "198.19.5.5"]), false);
    const viaGateway: RouteInfo = { dst: "198.18.0.12", gateway: "198.18.0.12", dev: "eth0" };
    assert.equal(allOnLink([deflt, connected, viaGateway], "eth0", ["198.18.0.12"]), false);
    assert.equal(allOnLink([deflt, connected, viaGateway], "eth0", ["198.18.0.13"]), true);
  });

  it("fails when the best route leaves through another device or is not unicast", function () {
    const other: RouteInfo = { dst: "198.18.0.0/25", dev: "eth1", scope: "link" };
    assert.equal(allOnLink([connected, other], "eth0", ["198.18.0.12"]), false);
    assert.equal(allOnLink([connected, other], "eth0", ["198.18.0.200"]), true);
    const blackhole: RouteInfo = { dst: "198.18.0.12", type: "blackhole" };
    assert.equal(allOnLink([connected, blackhole], "eth0", ["198.18.0.12"]), false);
    const unicastHost: RouteInfo = { dst: "198.18.0.12", type: "unicast", dev: "eth0", scope: "link" };
    assert.equal(allOnLink([connected, unicastHost], "eth0", ["198.18.0.12"]), true);
  });

  it("fails with no route at all, and ignores entries that are not IPv4 prefixes", function () {
    assert.equal(allOnLink([], "eth0", ["198.18.0.12"]), false);
    const odd: RouteInfo = { dst: "nonsense", dev: "eth0" };
    assert.equal(allOnLink([odd, connected], "eth0", ["198.18.0.12"]), true);
  });

  it("trusts the main table only under the kernel's three default rules", function () {
    // What `ip -j -4 rule show` prints on a fresh namespace.
    const defaults: RuleInfo[] = [
      { priority: 0, src: "all", table: "local" },
      { priority: 32766, src: "all", table: "main" },
      { priority: 32767, src: "all", table: "default" },
    ];
    assert.equal(onlyDefaultRules(defaults), true);
    assert.equal(onlyDefaultRules([...defaults, { priority: 100, src: "all", table: "100" }]), false);
    assert.equal(
      onlyDefaultRules([defaults[0]!, { priority: 32766, src: "10.0.0.0/8", table: "main" }, defaults[2]!]),
      false,
    );
    assert.equal(onlyDefaultRules([defaults[0]!, { ...defaults[1]!, fwmark: "0x1" }, defaults[2]!]), false);
    assert.equal(onlyDefaultRules(defaults.slice(1)), false);
  });
});
