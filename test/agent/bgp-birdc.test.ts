/** birdc output parsers (agent/routing/birdc.ts), on output captured from BIRD 2.0.12. */
import assert from "node:assert/strict";
import { parseBirdTime, parseProtocols, parseRoutes } from "../../agent/routing/birdc.js";

const PROTOCOLS = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-12-02 14:30:54  

skn_pods   Static     master4    up     2026-12-02 14:30:54  
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     200
    Input filter:   ACCEPT
    Output filter:  REJECT
    Routes:         1 imported, 0 exported, 1 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              1          0          0          0          1

skn_peer_192_0_2_1 BGP        ---        up     2026-12-02 14:31:02  Established   
  Description:    peer 192.0.2.1
  BGP state:          Established
    Neighbor address: 192.0.2.1
    Neighbor AS:      65000
    Local AS:         64512
    Neighbor ID:      192.0.2.1
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     100
    Input filter:   skein_import
    Output filter:  skein_export
    Routes:         2 imported, 1 exported, 2 preferred

skn_node_192_0_2_12 BGP        ---        start  2026-12-02 14:30:54  Active        Socket: Connection refused
  Description:    node n2 192.0.2.12
  BGP state:          Active
    Neighbor address: 192.0.2.12
    Neighbor AS:      64512
    Local AS:         64512
    Connect delay:    2.381/5
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
    Table:          master4
    Input filter:   skein_import
    Output filter:  skein_export
`;

const ROUTES = `BIRD 2.0.12 ready.
Table master4:
10.201.2.0/24        unicast [skn_peer_192_0_2_1 2026-12-02 14:31:03 from 198.51.100.12] * (100/?) [i]
	via 192.0.2.1 on eth0
10.201.3.0/24        unicast [skn_node_192_0_2_13 2026-12-02 14:31:03] * (100) [i]
	via 192.0.2.13 on eth0
                     unicast [skn_peer_192_0_2_1 2026-12-02 14:31:04 from 192.0.2.13] (100/?) [i]
	via 192.0.2.13 on eth0
`;

describe("agent: birdc output", function () {
  it("parses show protocols all: states, BGP state, neighbour, route counts, last error", function () {
    const p = parseProtocols(PROTOCOLS);
    assert.deepEqual(
      p.map((x) => [x.name, x.proto, x.state, x.since]),
      [
        ["device1", "Device", "up", "2026-12-02 14:30:54"],
        ["skn_pods", "Static", "up", "2026-12-02 14:30:54"],
        ["skn_peer_192_0_2_1", "BGP", "up", "2026-12-02 14:31:02"],
        ["skn_node_192_0_2_12", "BGP", "start", "2026-12-02 14:30:54"],
      ],
    );
    const peer = p[2]!;
    assert.equal(peer.bgpState, "Established");
    assert.equal(peer.neighborAddress, "192.0.2.1");
    assert.equal(peer.neighborAs, 65000);
    assert.equal(peer.imported, 2);
    assert.equal(peer.exported, 1);
    assert.equal(peer.description, "peer 192.0.2.1");
    const node = p[3]!;
    assert.equal(node.bgpState, "Active");
    assert.equal(node.info, "Active        Socket: Connection refused");
    assert.equal(node.lastError, "Socket: Connection refused");
    assert.equal(node.imported, undefined);
  });

  it("parses show route: prefix, protocol, best path, from, via", function () {
    assert.deepEqual(parseRoutes(ROUTES), [
      {
        prefix: "10.201.2.0/24",
        protocol: "skn_peer_192_0_2_1",
        primary: true,
        from: "198.51.100.12",
        via: "192.0.2.1",
      },
      { prefix: "10.201.3.0/24", protocol: "skn_node_192_0_2_13", primary: true, via: "192.0.2.13" },
      {
        prefix: "10.201.3.0/24",
        protocol: "skn_peer_192_0_2_1",
        primary: false,
        from: "192.0.2.13",
        via: "192.0.2.13",
      },
    ]);
    assert.deepEqual(parseRoutes("BIRD 2.0.12 ready.\n"), []);
  });

  it("reads BIRD's iso long time as local time", function () {
    assert.equal(parseBirdTime("2026-12-02 14:31:02")?.getTime(), new Date(2026, 11, 2, 14, 31, 2).getTime());
    assert.equal(parseBirdTime("14:31:02"), null);
  });
});
