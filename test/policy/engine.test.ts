/**
 * NetworkPolicy semantics, one case at a time, with the exact policy-map keys expected, plus
 * end-to-end verdicts through the reference evaluator.
 */
import assert from "node:assert/strict";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { IpcacheFlag } from "../../maps/ipcache.js";
import { Identity, isCidrIdentity, isPodIdentity } from "../../maps/identities.js";
import { Protocol, type PolicyKey } from "../../maps/policy.js";
import { PolicyEngine } from "../../policy/engine.js";
import { evaluate } from "./evaluator.js";
import { keyStrings, keys, model, namespace, pod, policy } from "./fixtures.js";

const { TCP, UDP, SCTP } = Protocol;
const ING = "ingress" as const;
const EG = "egress" as const;

/** Two namespaces, four pods: prod/web (10.0.0.1), prod/db (10.0.0.2), dev/web (10.0.1.1), dev/tool (10.0.1.2). */
function cluster(): PolicyEngine {
  const e = new PolicyEngine();
  e.upsertNamespace(namespace("prod", { env: "prod" }));
  e.upsertNamespace(namespace("dev", { env: "dev" }));
  e.upsertPod(
    pod("prod", "web", "10.0.0.1", { labels: { app: "web" }, ports: [{ name: "http", port: 8080 }] }),
  );
  e.upsertPod(pod("prod", "db", "10.0.0.2", { labels: { app: "db" }, ports: [{ name: "pg", port: 5432 }] }));
  e.upsertPod(
    pod("dev", "web", "10.0.1.1", { labels: { app: "web" }, ports: [{ name: "http", port: 9090 }] }),
  );
  e.upsertPod(pod("dev", "tool", "10.0.1.2", { labels: { app: "tool" } }));
  return e;
}

const id = (e: PolicyEngine, ns: string, name: string): number => {
  const v = e.podIdentity(ns, name);
  assert.ok(v !== undefined, `${ns}/${name} has an identity`);
  return v;
};

function k(
  endpointIp: string,
  direction: "ingress" | "egress",
  peerIdentity: number,
  rest: Partial<PolicyKey> = {},
): PolicyKey {
  return { endpointIp, direction, peerIdentity, ...rest };
}

describe("policy engine: semantics", function () {
  it("gives no entries and no flags without policies", function () {
    const e = cluster();
    assert.equal(e.desiredPolicy().size, 0);
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]) assert.equal(e.localFlags(ip), 0);
    assert.ok(isPodIdentity(id(e, "prod", "web")));
    assert.deepEqual(e.errors(), []);
  });

  it("ingress: [] (or absent) with type Ingress isolates and allows nothing", function () {
    for (const spec of [
      { podSelector: {} },
      { podSelector: {}, ingress: [] },
      { podSelector: {}, policyTypes: ["Ingress"] },
    ]) {
      const e = cluster();
      e.upsertPolicy(policy("prod", "deny", spec));
      assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceIngress, JSON.stringify(spec));
      assert.equal(e.localFlags("10.0.0.2"), IpcacheFlag.enforceIngress);
      assert.equal(e.localFlags("10.0.1.1"), 0, "other namespace untouched");
      assert.deepEqual(keys(e), []);
      assert.equal(evaluate(e, "10.0.1.1", "10.0.0.1", TCP, 80).allowed, false);
      assert.equal(evaluate(e, "10.0.0.1", "10.0.1.1", TCP, 80).allowed, true, "egress stays open");
    }
  });

  it("policyTypes default: Egress only when the policy has at least one egress rule", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "empty-egress", { podSelector: {}, egress: [] }));
    assert.equal(
      e.localFlags("10.0.0.1"),
      IpcacheFlag.enforceIngress,
      "egress: [] does not default to Egress",
    );
    e.upsertPolicy(policy("prod", "empty-egress", { podSelector: {}, egress: [{}] }));
    assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceIngress | IpcacheFlag.enforceEgress);
    e.upsertPolicy(policy("prod", "empty-egress", { podSelector: {}, policyTypes: ["Egress"] }));
    assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceEgress, "explicit Egress only: ingress open");
    assert.deepEqual(keys(e), []);
    e.upsertPolicy(
      policy("prod", "empty-egress", { podSelector: {}, policyTypes: ["Egress"], ingress: [{}] }),
    );
    assert.deepEqual(keys(e), [], "ingress rules of a policy not of type Ingress are ignored");
  });

  it("podSelector selects pods of the policy's namespace only", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "web", { podSelector: { matchLabels: { app: "web" } } }));
    assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceIngress);
    assert.equal(e.localFlags("10.0.0.2"), 0);
    assert.equal(e.localFlags("10.0.1.1"), 0, "dev/web has the label but lives elsewhere");
  });

  it("a rule without from allows every peer (peer 0, world included)", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "all", { podSelector: { matchLabels: { app: "db" } }, ingress: [{}] }));
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, Identity.any)]));
    assert.equal(evaluate(e, "8.8.8.8", "10.0.0.2", UDP, 53).allowed, true);
    e.upsertPolicy(
      policy("prod", "all", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [] }] }),
    );
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, Identity.any)]), "from: [] is the same");
  });

  it("podSelector peer: pods of the policy's namespace", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "db", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }],
      }),
    );
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, id(e, "prod", "web"))]));
    assert.equal(evaluate(e, "10.0.0.1", "10.0.0.2", TCP, 5432).allowed, true);
    assert.equal(
      evaluate(e, "10.0.1.1", "10.0.0.2", TCP, 5432).allowed,
      false,
      "dev/web is another namespace",
    );
    assert.equal(evaluate(e, "8.8.8.8", "10.0.0.2", TCP, 5432).allowed, false);
  });

  it("namespaceSelector peer alone: every pod of matching namespaces", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "db", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "dev" } } }] }],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.2", ING, id(e, "dev", "web")), k("10.0.0.2", ING, id(e, "dev", "tool"))]),
    );
  });

  it("namespaceSelector {} selects all namespaces; podSelector {} all pods of the own namespace", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "a", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ namespaceSelector: {} }] }],
      }),
    );
    assert.equal(keys(e).length, 4, "all four pod identities");
    e.upsertPolicy(
      policy("prod", "a", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ podSelector: {} }] }],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.2", ING, id(e, "prod", "web")), k("10.0.0.2", ING, id(e, "prod", "db"))]),
    );
  });

  it("podSelector and namespaceSelector in one peer are ANDed; in two peers ORed", function () {
    const e = cluster();
    const and = {
      namespaceSelector: { matchLabels: { env: "dev" } },
      podSelector: { matchLabels: { app: "web" } },
    };
    e.upsertPolicy(
      policy("prod", "a", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: [and] }] }),
    );
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, id(e, "dev", "web"))]));
    const or = [
      { namespaceSelector: { matchLabels: { env: "dev" } } },
      { podSelector: { matchLabels: { app: "web" } } },
    ];
    e.upsertPolicy(
      policy("prod", "a", { podSelector: { matchLabels: { app: "db" } }, ingress: [{ from: or }] }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([
        k("10.0.0.2", ING, id(e, "dev", "web")),
        k("10.0.0.2", ING, id(e, "dev", "tool")),
        k("10.0.0.2", ING, id(e, "prod", "web")),
      ]),
    );
  });

  it("kubernetes.io/metadata.name is always a namespace label, even before the Namespace arrives", function () {
    const e = new PolicyEngine();
    e.upsertPod(pod("late", "p", "10.9.0.1", { labels: { app: "x" } }));
    e.upsertPod(pod("prod", "db", "10.0.0.2", { labels: { app: "db" } }));
    e.upsertPolicy(
      policy("prod", "a", {
        podSelector: {},
        ingress: [
          { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "late" } } }] },
        ],
      }),
    );
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, id(e, "late", "p"))]));
    e.upsertNamespace(namespace("late", { "kubernetes.io/metadata.name": "spoofed", team: "t" }));
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.2", ING, id(e, "late", "p"))]),
      "the name label cannot be overridden",
    );
    assert.deepEqual(e.identities().get(id(e, "late", "p"))?.namespaceLabels, {
      "kubernetes.io/metadata.name": "late",
      team: "t",
    });
  });

  it("ports: number (TCP default), protocol only, UDP, SCTP, endPort ranges", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [
          {
            ports: [
              { port: 5432 },
              { protocol: "UDP" },
              { protocol: "SCTP", port: 9000 },
              { protocol: "TCP", port: 1000, endPort: 1003 },
            ],
          },
        ],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([
        k("10.0.0.2", ING, 0, { protocol: TCP, port: 5432, portBits: 16 }),
        k("10.0.0.2", ING, 0, { protocol: UDP }),
        k("10.0.0.2", ING, 0, { protocol: SCTP, port: 9000, portBits: 16 }),
        k("10.0.0.2", ING, 0, { protocol: TCP, port: 1000, portBits: 14 }),
      ]),
    );
    for (const [proto, port, ok] of [
      [TCP, 5432, true],
      [TCP, 5433, false],
      [UDP, 1, true],
      [SCTP, 9000, true],
      [SCTP, 9001, false],
      [TCP, 999, false],
      [TCP, 1000, true],
      [TCP, 1003, true],
      [TCP, 1004, false],
    ] as const)
      assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", proto, port).allowed, ok, `${proto}/${port}`);
  });

  it("endPort across alignment splits into several prefixes", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ ports: [{ port: 30, endPort: 33 }] }],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([
        k("10.0.0.2", ING, 0, { protocol: TCP, port: 30, portBits: 15 }),
        k("10.0.0.2", ING, 0, { protocol: TCP, port: 32, portBits: 15 }),
      ]),
    );
    for (let p = 28; p <= 35; p++)
      assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, p).allowed, p >= 30 && p <= 33, `port ${p}`);
  });

  it("a rule with peers and ports needs both; peers without ports allow every protocol", function () {
    const e = cluster();
    const web = { podSelector: { matchLabels: { app: "web" } } };
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [web], ports: [{ port: 5432 }] }],
      }),
    );
    const w = id(e, "prod", "web");
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.2", ING, w, { protocol: TCP, port: 5432, portBits: 16 })]),
    );
    assert.equal(evaluate(e, "10.0.0.1", "10.0.0.2", TCP, 5432).allowed, true);
    assert.equal(evaluate(e, "10.0.0.1", "10.0.0.2", TCP, 5433).allowed, false);
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 5432).allowed, false);
  });

  it("named ingress port resolves on the selected pod: name and protocol must match", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "p", { podSelector: {}, ingress: [{ ports: [{ port: "http" }] }] }));
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.1", ING, 0, { protocol: TCP, port: 8080, portBits: 16 })]),
      "db has no http port",
    );
    e.upsertPolicy(
      policy("prod", "p", { podSelector: {}, ingress: [{ ports: [{ port: "http", protocol: "UDP" }] }] }),
    );
    assert.deepEqual(keys(e), [], "http is TCP");
  });

  it("named ingress port follows the pod's container ports", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "web" } },
        ingress: [{ ports: [{ port: "http" }] }],
      }),
    );
    e.upsertPod(
      pod("prod", "web", "10.0.0.1", { labels: { app: "web" }, ports: [{ name: "http", port: 8081 }] }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.1", ING, 0, { protocol: TCP, port: 8081, portBits: 16 })]),
    );
  });

  it("named egress port resolves per destination pod into address-keyed entries", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("dev", "p", {
        podSelector: { matchLabels: { app: "tool" } },
        egress: [
          {
            to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: "web" } } }],
            ports: [{ port: "http" }],
          },
        ],
      }),
    );
    assert.equal(e.localFlags("10.0.1.2"), IpcacheFlag.enforceIngress | IpcacheFlag.enforceEgress);
    assert.deepEqual(
      keys(e),
      keyStrings([
        k("10.0.1.2", EG, 0, { peerIp: "10.0.0.1", protocol: TCP, port: 8080, portBits: 16 }),
        k("10.0.1.2", EG, 0, { peerIp: "10.0.1.1", protocol: TCP, port: 9090, portBits: 16 }),
      ]),
    );
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.1", TCP, 8080).allowed, true);
    assert.equal(
      evaluate(e, "10.0.1.2", "10.0.0.1", TCP, 9090).allowed,
      false,
      "9090 is http on dev/web only",
    );
    assert.equal(evaluate(e, "10.0.1.2", "10.0.1.1", TCP, 9090).allowed, true);
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 8080).allowed, false, "db is not a web pod");
    // A new web pod appears: it gets its own address-keyed entry.
    e.upsertPod(
      pod("prod", "web2", "10.0.0.3", { labels: { app: "web" }, ports: [{ name: "http", port: 7070 }] }),
    );
    assert.ok(
      keys(e).includes(
        keyStrings([
          k("10.0.1.2", EG, 0, { peerIp: "10.0.0.3", protocol: TCP, port: 7070, portBits: 16 }),
        ])[0] as string,
      ),
    );
    e.deletePod("prod", "web2");
    assert.equal(keys(e).length, 2);
  });

  it("named egress port without peers: every pod declaring the port, never the world", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("dev", "p", {
        podSelector: { matchLabels: { app: "tool" } },
        policyTypes: ["Egress"],
        egress: [{ ports: [{ port: "pg" }] }],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.1.2", EG, 0, { peerIp: "10.0.0.2", protocol: TCP, port: 5432, portBits: 16 })]),
    );
    assert.equal(evaluate(e, "10.0.1.2", "8.8.8.8", TCP, 5432).allowed, false);
  });

  it("ipBlock with except: CIDR identities for cidr and every except, exact by longest prefix", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "web" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "192.168.0.0/16", except: ["192.168.1.0/24"] } }] }],
      }),
    );
    const outer = e.cidrPrefixes().get("192.168.0.0/16");
    const hole = e.cidrPrefixes().get("192.168.1.0/24");
    assert.ok(
      outer !== undefined &&
        hole !== undefined &&
        isCidrIdentity(outer) &&
        isCidrIdentity(hole) &&
        outer !== hole,
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.0.1", EG, outer)]),
      "the except gets an identity but no entry",
    );
    assert.equal(e.cidrIdentityOf("192.168.1.7"), hole);
    assert.equal(e.cidrIdentityOf("192.168.2.7"), outer);
    assert.equal(e.cidrIdentityOf("10.0.0.9"), 0);
    assert.equal(evaluate(e, "10.0.0.1", "192.168.2.7", TCP, 443).allowed, true);
    assert.equal(evaluate(e, "10.0.0.1", "192.168.1.7", TCP, 443).allowed, false);
    assert.equal(evaluate(e, "10.0.0.1", "8.8.8.8", TCP, 443).allowed, false);
  });

  it("ipBlock allows known prefixes nested inside it (from other policies) but not inside its excepts", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "web" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }] }],
      }),
    );
    // Another policy mentions prefixes inside and outside the except.
    e.upsertPolicy(
      policy("dev", "q", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "10.0.1.0/24" } }, { ipBlock: { cidr: "8.8.8.0/24" } }] }],
      }),
    );
    const c = (p: string): number => e.cidrPrefixes().get(p) as number;
    assert.deepEqual(
      keys(e, (key) => key.endpointIp === "10.0.0.1"),
      keyStrings([k("10.0.0.1", EG, c("0.0.0.0/0")), k("10.0.0.1", EG, c("8.8.8.0/24"))]),
    );
    assert.equal(evaluate(e, "10.0.0.1", "8.8.8.8", UDP, 53).allowed, true);
    assert.equal(evaluate(e, "10.0.0.1", "1.1.1.1", UDP, 53).allowed, true);
    assert.equal(evaluate(e, "10.0.0.1", "10.0.1.1", UDP, 53).allowed, false, "pod inside the except");
    // The nested prefix's policy goes away: its identity too, and 8.8.8.8 falls back to 0.0.0.0/0.
    e.deletePolicy("dev", "q");
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.1", EG, c("0.0.0.0/0"))]));
    assert.deepEqual([...e.cidrPrefixes().keys()].sort(), ["0.0.0.0/0", "10.0.0.0/8"]);
    assert.equal(evaluate(e, "10.0.0.1", "8.8.8.8", UDP, 53).allowed, true);
  });

  it("ipBlock matches pod addresses too (ingress from a pod by its /32)", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ ipBlock: { cidr: "10.0.1.2/32" } }] }],
      }),
    );
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 1).allowed, true);
    assert.equal(evaluate(e, "10.0.1.1", "10.0.0.2", TCP, 1).allowed, false);
  });

  it("ipBlock with a named egress port: pods inside the block, by address", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("dev", "p", {
        podSelector: { matchLabels: { app: "tool" } },
        policyTypes: ["Egress"],
        egress: [
          { to: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.1.0/24"] } }], ports: [{ port: "http" }] },
        ],
      }),
    );
    assert.deepEqual(
      keys(e),
      keyStrings([k("10.0.1.2", EG, 0, { peerIp: "10.0.0.1", protocol: TCP, port: 8080, portBits: 16 })]),
    );
  });

  it("IPv6 ipBlocks are valid but match nothing in the IPv4 datapath", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: "fd00::/8", except: ["fd00:1::/32"] } }] }],
      }),
    );
    assert.deepEqual(e.errors(), []);
    assert.deepEqual(keys(e), []);
    assert.equal(e.cidrPrefixes().size, 0);
  });

  it("policies are unioned, per direction, per pod", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "a", {
        podSelector: {},
        ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }],
      }),
    );
    e.upsertPolicy(
      policy("prod", "b", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ ports: [{ port: 5432 }] }],
      }),
    );
    assert.equal(evaluate(e, "10.0.0.1", "10.0.0.2", UDP, 1).allowed, true, "from a");
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 5432).allowed, true, "from b");
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 5431).allowed, false);
    assert.equal(evaluate(e, "10.0.1.2", "10.0.0.1", TCP, 5432).allowed, false, "b does not select web");
  });

  it("traffic needs the source's egress and the destination's ingress", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "in", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ namespaceSelector: {} }] }],
      }),
    );
    e.upsertPolicy(
      policy("dev", "out", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: {} }] }],
      }),
    );
    const v = evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 1);
    assert.deepEqual([v.allowed, v.deniedBy], [false, "egress"]);
    e.upsertPolicy(
      policy("dev", "out", {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: {} }] }],
      }),
    );
    const w = evaluate(e, "10.0.1.2", "10.0.0.2", TCP, 1);
    assert.equal(w.allowed, true);
    assert.deepEqual(e.rule(w.egressRule), {
      namespace: "dev",
      policy: "out",
      direction: "egress",
      index: 0,
    });
    assert.deepEqual(e.rule(w.ingressRule), {
      namespace: "prod",
      policy: "in",
      direction: "ingress",
      index: 0,
    });
  });

  it("host traffic needs no entry; the world is only reachable through any-peer or ipBlock rules", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "deny", { podSelector: {} }));
    assert.equal(evaluate(e, "192.0.2.1", "10.0.0.1", TCP, 80, { srcIdentity: Identity.host }).allowed, true);
    assert.equal(evaluate(e, "192.0.2.1", "10.0.0.1", TCP, 80).allowed, false);
  });

  it("only counted pods: no IP, host network, Succeeded/Failed pods are ignored", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "p", { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }));
    const before = keys(e);
    e.upsertPod(pod("prod", "pending", undefined, { labels: { app: "new" } }));
    e.upsertPod(pod("prod", "hostnet", "10.0.0.50", { labels: { app: "new2" }, hostNetwork: true }));
    e.upsertPod(pod("prod", "done", "10.0.0.51", { labels: { app: "new3" }, phase: "Succeeded" }));
    assert.deepEqual(keys(e), before);
    assert.equal(e.podIdentity("prod", "pending"), undefined);
    assert.equal(e.identityOfIp("10.0.0.50"), undefined);
    // A running pod that finishes stops counting.
    e.upsertPod(pod("prod", "web", "10.0.0.1", { labels: { app: "web" }, phase: "Failed" }));
    assert.equal(e.identityOfIp("10.0.0.1"), undefined);
    assert.ok(!keys(e).some((s) => s.startsWith("10.0.0.1|")));
  });

  it("pods on other nodes are peers, not endpoints", function () {
    const e = new PolicyEngine({ nodeName: "n1" });
    e.upsertPod(pod("prod", "here", "10.0.0.1", { labels: { app: "db" }, node: "n1" }));
    e.upsertPod(pod("prod", "there", "10.0.9.1", { labels: { app: "db" }, node: "n2" }));
    e.upsertPod(pod("prod", "client", "10.0.9.2", { labels: { app: "web" }, node: "n2" }));
    e.upsertPolicy(
      policy("prod", "p", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: "web" } } }] }],
      }),
    );
    assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceIngress);
    assert.equal(e.localFlags("10.0.9.1"), 0, "not ours to enforce");
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.1", ING, id(e, "prod", "client"))]));
    assert.equal(e.identityOfIp("10.0.9.2"), id(e, "prod", "client"));
  });

  it("pods with equal labels share an identity; namespace labels are part of it", function () {
    const e = cluster();
    e.upsertPod(pod("prod", "web2", "10.0.0.3", { labels: { app: "web" } }));
    assert.equal(id(e, "prod", "web"), id(e, "prod", "web2"));
    assert.notEqual(id(e, "prod", "web"), id(e, "dev", "web"));
    assert.deepEqual(e.identities().get(id(e, "prod", "web")), {
      namespace: "prod",
      labels: { app: "web" },
      namespaceLabels: { env: "prod", "kubernetes.io/metadata.name": "prod" },
    });
    const before = id(e, "prod", "web");
    e.upsertNamespace(namespace("prod", { env: "production" }));
    assert.notEqual(id(e, "prod", "web"), before);
    assert.equal(id(e, "prod", "web"), id(e, "prod", "web2"));
    assert.equal(e.identities().size, 4, "the old identities are gone");
  });

  it("rule ids are stable per (policy, direction, index), reused only when free, 0 never", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "a", { podSelector: {}, ingress: [{}, { ports: [{ port: 1 }] }] }));
    e.upsertPolicy(policy("prod", "b", { podSelector: {}, ingress: [{}] }));
    const ruleOf = (ns: string, name: string, index: number): number => {
      for (const { entry } of e.desiredPolicy().values()) {
        const r = e.rule(entry.ruleId);
        if (r?.namespace === ns && r.policy === name && r.index === index) return entry.ruleId;
      }
      return -1;
    };
    assert.equal(ruleOf("prod", "a", 1), 2);
    assert.equal(e.rule(0), undefined);
    e.upsertPolicy(policy("prod", "a", { podSelector: {}, ingress: [{}, { ports: [{ port: 2 }] }] }));
    assert.equal(ruleOf("prod", "a", 1), 2, "content change keeps the id");
    e.deletePolicy("prod", "a");
    assert.equal(e.rule(1), undefined);
    assert.equal(e.rule(3)?.policy, "b");
    e.upsertPolicy(
      policy("prod", "c", {
        podSelector: { matchLabels: { app: "db" } },
        ingress: [{ ports: [{ port: 7 }] }],
      }),
    );
    assert.deepEqual(
      e.rule(1),
      { namespace: "prod", policy: "c", direction: "ingress", index: 0 },
      "smallest free id",
    );
  });

  it("of several rules allowing a key, the first by namespace, name, direction, index is reported", function () {
    const e = cluster();
    e.upsertPolicy(policy("prod", "a", { podSelector: {}, ingress: [{}] }));
    e.upsertPolicy(policy("prod", "b", { podSelector: {}, ingress: [{}] }));
    for (const { entry } of e.desiredPolicy().values()) assert.equal(e.rule(entry.ruleId)?.policy, "a");
    e.deletePolicy("prod", "a");
    for (const { entry } of e.desiredPolicy().values()) assert.equal(e.rule(entry.ruleId)?.policy, "b");
    assert.equal(e.desiredPolicy().size, 2);
  });

  it("deleting every policy leaves no entries, flags, CIDR identities or rule ids", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "a", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "1.0.0.0/8" } }] }] }),
    );
    e.upsertPolicy(policy("dev", "b", { podSelector: {}, egress: [{ ports: [{ port: "http" }] }] }));
    e.deletePolicy("prod", "a");
    e.deletePolicy("dev", "b");
    assert.equal(e.desiredPolicy().size, 0);
    assert.equal(e.cidrPrefixes().size, 0);
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]) assert.equal(e.localFlags(ip), 0);
    assert.equal(e.rule(1), undefined);
  });

  it("version bumps on changes and only on changes", function () {
    const e = cluster();
    const v0 = e.version;
    const p = policy("prod", "a", { podSelector: {}, ingress: [{}] });
    e.upsertPolicy(p);
    const v1 = e.version;
    assert.ok(v1 > v0);
    e.upsertPolicy(p);
    assert.equal(e.version, v1, "same policy again");
    e.upsertPod(
      pod("prod", "web", "10.0.0.1", { labels: { app: "web" }, ports: [{ name: "http", port: 8080 }] }),
    );
    assert.equal(e.version, v1, "same pod again");
    e.upsertPod(
      pod("prod", "web", "10.0.0.1", {
        labels: { app: "web", v: "2" },
        ports: [{ name: "http", port: 8080 }],
      }),
    );
    assert.ok(e.version > v1, "identity changed");
    assert.ok(e.lastChange().addresses.has("10.0.0.1"));
  });

  it("client-node model objects name ingress peers _from", function () {
    const e = cluster();
    e.upsertPolicy(
      model<V1NetworkPolicy>({
        metadata: { namespace: "prod", name: "typed" },
        spec: {
          podSelector: { matchLabels: { app: "db" } },
          ingress: [{ _from: [{ podSelector: { matchLabels: { app: "web" } } }] }],
        },
      }),
    );
    assert.deepEqual(keys(e), keyStrings([k("10.0.0.2", ING, id(e, "prod", "web"))]));
  });
});

describe("policy engine: invalid objects fail closed", function () {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["bad CIDR", { ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }] }, /cidr.*not a valid CIDR/],
    ["CIDR without length", { ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.1" } }] }] }, /not a valid CIDR/],
    [
      "except outside cidr",
      { ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/24", except: ["10.0.1.0/25"] } }] }] },
      /strict subset/,
    ],
    [
      "except equal to cidr",
      { ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/24", except: ["10.0.0.0/24"] } }] }] },
      /strict subset/,
    ],
    [
      "bad operator",
      {
        ingress: [
          {
            from: [{ podSelector: { matchExpressions: [{ key: "a", operator: "Equals", values: ["b"] }] } }],
          },
        ],
      },
      /operator/,
    ],
    [
      "In without values",
      {
        ingress: [
          { from: [{ podSelector: { matchExpressions: [{ key: "a", operator: "In", values: [] }] } }] },
        ],
      },
      /must be specified/,
    ],
    [
      "Exists with values",
      {
        ingress: [
          {
            from: [{ podSelector: { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] } }],
          },
        ],
      },
      /may not be specified/,
    ],
    ["bad port name", { ingress: [{ ports: [{ port: "Not_A_Name" }] }] }, /IANA_SVC_NAME/],
    ["numeric string port", { ingress: [{ ports: [{ port: "80" }] }] }, /IANA_SVC_NAME/],
    ["port 0", { ingress: [{ ports: [{ port: 0 }] }] }, /port number/],
    [
      "endPort < port",
      { ingress: [{ ports: [{ port: 100, endPort: 99 }] }] },
      /endPort.*greater than or equal/,
    ],
    ["endPort without port", { ingress: [{ ports: [{ endPort: 99 }] }] }, /endPort/],
    ["endPort with a named port", { ingress: [{ ports: [{ port: "http", endPort: 99 }] }] }, /endPort/],
    ["unknown protocol", { ingress: [{ ports: [{ protocol: "ICMP", port: 1 }] }] }, /protocol/],
    ["lower-case protocol", { ingress: [{ ports: [{ protocol: "tcp", port: 1 }] }] }, /protocol/],
    ["empty peer", { ingress: [{ from: [{}] }] }, /must specify a peer/],
    [
      "ipBlock with a selector",
      { ingress: [{ from: [{ ipBlock: { cidr: "1.0.0.0/8" }, podSelector: {} }] }] },
      /both ipBlock/,
    ],
    [
      "bad label key",
      { ingress: [{ from: [{ podSelector: { matchLabels: { "bad key": "x" } } }] }] },
      /label key/,
    ],
  ];
  for (const [name, rest, message] of cases)
    it(`${name}: selects its pods, allows nothing, reports why`, function () {
      const e = cluster();
      e.upsertPolicy(policy("prod", "good", { podSelector: { matchLabels: { app: "web" } }, ingress: [{}] }));
      const good = keys(e);
      e.upsertPolicy(
        policy("prod", "bad", {
          podSelector: { matchLabels: { app: "db" } },
          ...rest,
          egress: [{ ports: [{ port: 1 }] }],
        }),
      );
      assert.equal(e.localFlags("10.0.0.2"), IpcacheFlag.enforceIngress | IpcacheFlag.enforceEgress);
      assert.deepEqual(keys(e), good, "no allow entries from the bad policy");
      const errors = e.errors();
      assert.equal(errors.length >= 1, true);
      assert.ok(errors.every((x) => x.object === "NetworkPolicy prod/bad"));
      assert.ok(
        errors.some((x) => message.test(x.message)),
        JSON.stringify(errors),
      );
      // Fixing it clears the error and brings its entries.
      e.upsertPolicy(policy("prod", "bad", { podSelector: { matchLabels: { app: "db" } }, ingress: [{}] }));
      assert.deepEqual(e.errors(), []);
      assert.equal(keys(e).length, good.length + 1);
    });

  it("an invalid podSelector isolates the whole namespace; invalid policyTypes both directions", function () {
    const e = cluster();
    e.upsertPolicy(
      policy("prod", "bad", {
        podSelector: { matchExpressions: [{ key: "app", operator: "Is" }] },
        ingress: [{}],
      }),
    );
    assert.equal(e.localFlags("10.0.0.1"), IpcacheFlag.enforceIngress);
    assert.equal(e.localFlags("10.0.0.2"), IpcacheFlag.enforceIngress);
    assert.equal(e.localFlags("10.0.1.1"), 0);
    assert.deepEqual(keys(e), []);
    e.upsertPolicy(
      policy("prod", "bad", {
        podSelector: { matchLabels: { app: "db" } },
        policyTypes: ["Sideways"],
        ingress: [{}],
      }),
    );
    assert.equal(e.localFlags("10.0.0.2"), IpcacheFlag.enforceIngress | IpcacheFlag.enforceEgress);
    assert.equal(e.localFlags("10.0.0.1"), 0);
    assert.match(e.errors()[0]?.message ?? "", /policyTypes/);
  });

  it("never throws on garbage", function () {
    const e = cluster();
    const garbage: unknown[] = [
      {},
      { metadata: {} },
      { metadata: { name: "x" }, spec: null },
      { metadata: { name: "x" }, spec: { ingress: "no" } },
      { metadata: { name: "x" }, spec: { ingress: [null, 3] } },
      { metadata: { name: "x" }, spec: { ingress: [{ from: [{ ipBlock: { cidr: 7 } }] }] } },
      { metadata: { name: "x" }, spec: { ingress: [{ ports: [{ port: { a: 1 } }] }] } },
      { metadata: { name: "x" }, spec: { podSelector: { matchLabels: "x" } } },
      { metadata: { name: "x" }, spec: { policyTypes: "Ingress" } },
    ];
    for (const g of garbage) e.upsertPolicy(g as never);
    e.upsertPod(model<V1Pod>({}));
    e.upsertPod(model<V1Pod>({ metadata: { name: "p" }, status: { podIP: "not-an-ip" } }));
    e.upsertPod(
      model<V1Pod>({ metadata: { name: "v6" }, status: { podIP: "fd00::1", podIPs: [{ ip: "fd00::1" }] } }),
    );
    e.upsertPod(
      model<V1Pod>({
        metadata: { name: "junk" },
        spec: { containers: "no" },
        status: { podIP: "10.9.9.9", podIPs: "no" },
      }),
    );
    e.upsertNamespace(model<V1Namespace>({}));
    assert.ok(e.errors().some((x) => x.object === "Pod default/v6"));
  });

  it("dual-stack pods use their IPv4 address", function () {
    const e = new PolicyEngine();
    e.upsertPod(
      model<V1Pod>({
        metadata: { name: "p", labels: { a: "b" } },
        status: { podIP: "fd00::5", podIPs: [{ ip: "fd00::5" }, { ip: "10.1.1.1" }] },
      }),
    );
    assert.ok(e.identityOfIp("10.1.1.1") !== undefined);
  });
});
