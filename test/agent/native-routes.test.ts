import assert from "node:assert/strict";
import {
  SKEIN_ROUTE_PROTO,
  classifyNodes,
  describeNodeRoutes,
  routeSource,
} from "../../agent/node/native-routes.js";
import { parsePrefix } from "../../maps/net.js";

const nodes = [
  { name: "n2", internalIp: "198.18.0.12", podCidr: "10.244.1.0/24" },
  { name: "n3", internalIp: "198.19.0.13", podCidr: "10.244.2.0/24" },
  { name: "n4", internalIp: "10.0.5.4", podCidr: "10.244.3.0/24" },
];

describe("agent: native routing's routes", function () {
  it("classifies a node as direct when its address is inside one of the uplink's connected prefixes", function () {
    const c = classifyNodes([parsePrefix("198.18.0.11/24"), parsePrefix("10.0.0.2/16")], nodes);
    assert.deepEqual(
      c.direct.map((n) => n.name),
      ["n2", "n4"],
    );
    assert.deepEqual(
      c.routed.map((n) => n.name),
      ["n3"],
    );
    assert.deepEqual(classifyNodes([], nodes).direct, [], "no connected prefix: all BGP's");
    assert.deepEqual(classifyNodes([parsePrefix("0.0.0.0/0")], nodes).direct, [], "a /0 is not a segment");
  });

  it("names each node's route and its source: Skein's proto 94, BIRD's, the overlay's, none", function () {
    assert.equal(SKEIN_ROUTE_PROTO, 0x5e);
    const routes = [
      { dst: "10.244.1.0/24", gateway: "198.18.0.12", dev: "eth0", protocol: "94" },
      { dst: "10.244.2.0/24", gateway: "198.18.0.1", dev: "eth0", protocol: "bird" },
      { dst: "default", gateway: "198.18.0.1", dev: "eth0" },
    ];
    assert.deepEqual(describeNodeRoutes(nodes, routes, "skn_vxlan"), [
      {
        node: "n2",
        podCidr: "10.244.1.0/24",
        via: "198.18.0.12",
        dev: "eth0",
        protocol: "94",
        source: "direct",
      },
      {
        node: "n3",
        podCidr: "10.244.2.0/24",
        via: "198.18.0.1",
        dev: "eth0",
        protocol: "bird",
        source: "bgp",
      },
      { node: "n4", podCidr: "10.244.3.0/24", via: null, dev: null, protocol: null, source: "none" },
    ]);
    assert.equal(
      routeSource({ dst: "10.244.1.0/24", dev: "skn_vxlan", protocol: "boot" }, "skn_vxlan"),
      "vxlan",
    );
    assert.equal(
      routeSource({ dst: "10.244.1.0/24", dev: "eth0", protocol: "static" }, "skn_vxlan"),
      "other",
    );
  });
});
