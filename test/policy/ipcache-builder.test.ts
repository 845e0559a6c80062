import assert from "node:assert/strict";
import { Identity } from "../../maps/identities.js";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { buildIpcache } from "../../policy/ipcache-builder.js";

const nodes = [
  { name: "n1", internalIp: "198.18.0.11", podCidr: "10.244.0.0/24" },
  { name: "n2", internalIp: "198.18.0.12", podCidr: "10.244.1.0/24" },
];

describe("agent: ipcache builder", function () {
  const desired = buildIpcache({
    localNodeName: "n1",
    localAddresses: ["198.18.0.11"],
    nodes,
    pods: [
      { ip: "10.244.0.5", nodeName: "n1", identity: 300, flags: IpcacheFlag.enforceIngress },
      { ip: "10.244.1.7", nodeName: "n2", identity: 301, flags: IpcacheFlag.enforceEgress },
    ],
    cidrs: new Map([
      ["10.244.0.0/16", Identity.firstCidr],
      ["10.244.1.0/28", Identity.firstCidr + 1],
      ["203.0.113.0/24", Identity.firstCidr + 2],
    ]),
  });
  const get = (p: string) => desired.get(p)?.entry;

  it("local pods: own identity, no tunnel, their flags", function () {
    assert.deepEqual(get("10.244.0.5/32"), {
      identity: 300,
      tunnelIp: null,
      cidrIdentity: Identity.firstCidr,
      flags: IpcacheFlag.enforceIngress,
    });
  });

  it("remote pods: tunnel to their node; flags are only for local pods", function () {
    assert.deepEqual(get("10.244.1.7/32"), {
      identity: 301,
      tunnelIp: "198.18.0.12",
      cidrIdentity: Identity.firstCidr + 1,
      flags: 0,
    });
  });

  it("pod CIDRs route unknown pods: remote ones through the tunnel", function () {
    assert.deepEqual(get("10.244.1.0/24"), {
      identity: Identity.unmanaged,
      tunnelIp: "198.18.0.12",
      cidrIdentity: Identity.firstCidr,
      flags: 0,
    });
    assert.deepEqual(get("10.244.0.0/24"), {
      identity: Identity.unmanaged,
      tunnelIp: null,
      cidrIdentity: Identity.firstCidr,
      flags: 0,
    });
  });

  it("nodes: host for this one, remote node (through the overlay) for the others", function () {
    assert.equal(get("198.18.0.11/32")?.identity, Identity.host);
    assert.equal(get("198.18.0.11/32")?.tunnelIp, null);
    assert.equal(get("198.18.0.12/32")?.identity, Identity.remoteNode);
    assert.equal(get("198.18.0.12/32")?.tunnelIp, "198.18.0.12");
  });

  it("ipBlock prefixes inherit routing from the pod CIDR around them and never inherit pod flags", function () {
    assert.deepEqual(get("10.244.1.0/28"), {
      identity: Identity.unmanaged,
      tunnelIp: "198.18.0.12",
      cidrIdentity: Identity.firstCidr + 1,
      flags: 0,
    });
    assert.deepEqual(get("203.0.113.0/24"), {
      identity: Identity.world,
      tunnelIp: null,
      cidrIdentity: Identity.firstCidr + 2,
      flags: 0,
    });
    assert.deepEqual(get("10.244.0.0/16"), {
      identity: Identity.world,
      tunnelIp: null,
      cidrIdentity: Identity.firstCidr,
      flags: 0,
    });
  });

  it("pods on nodes it does not know are left out (no tunnel to use)", function () {
    const d = buildIpcache({
      localNodeName: "n1",
      localAddresses: [],
      nodes: nodes.slice(0, 1),
      pods: [{ ip: "10.250.0.1", nodeName: "ghost", identity: 300, flags: 0 }],
      cidrs: new Map(),
    });
    assert.equal(d.get("10.250.0.1/32"), undefined);
  });
});
