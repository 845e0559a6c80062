/**
 * Incrementality: an event recomputes only the endpoints it touches. lastChange().endpoints lists
 * every local endpoint whose entries were (re)computed during the last event, changed or not.
 */
import assert from "node:assert/strict";
import { PolicyEngine } from "../../policy/engine.js";
import { namespace, pod, policy } from "./fixtures.js";

const NS = 10;
const PODS_PER_NS = 20;

/** 200 pods in 10 namespaces; pod j of namespace i is app-(j % 10), IP 10.i.0.(j+1). */
function big(): PolicyEngine {
  const e = new PolicyEngine();
  for (let i = 0; i < NS; i++) {
    e.upsertNamespace(namespace(`ns${i}`, { team: `t${i % 3}` }));
    for (let j = 0; j < PODS_PER_NS; j++)
      e.upsertPod(
        pod(`ns${i}`, `p${j}`, `10.${i}.0.${j + 1}`, {
          labels: { app: `app${j % 10}` },
          ports: [{ name: "http", port: 80 }],
        }),
      );
  }
  // In every namespace: app0 pods accept app1 pods of the same namespace, and anything from team t0.
  for (let i = 0; i < NS; i++)
    e.upsertPolicy(
      policy(`ns${i}`, "app0", {
        podSelector: { matchLabels: { app: "app0" } },
        ingress: [
          { from: [{ podSelector: { matchLabels: { app: "app1" } } }] },
          { from: [{ namespaceSelector: { matchLabels: { team: "t0" } } }] },
        ],
      }),
    );
  return e;
}

const touched = (e: PolicyEngine): string[] => [...e.lastChange().endpoints].sort();

describe("policy engine: incrementality", function () {
  it("a label change nobody selects or names recomputes nothing", function () {
    const e = big();
    e.upsertPod(
      pod("ns1", "p5", "10.1.0.6", {
        labels: { app: "app5", extra: "x" },
        ports: [{ name: "http", port: 80 }],
      }),
    );
    assert.deepEqual(touched(e), []);
    assert.ok(e.lastChange().addresses.has("10.1.0.6"), "its identity changed, for the ipcache");
  });

  it("a label change that joins a peer set touches exactly the endpoints of the rules it joins", function () {
    const e = big();
    // ns4/p5 becomes app1: it joins ns4/app0's first rule, which applies to ns4's app0 pods (p0, p10).
    e.upsertPod(
      pod("ns4", "p5", "10.4.0.6", {
        labels: { app: "app1", v: "new" },
        ports: [{ name: "http", port: 80 }],
      }),
    );
    assert.deepEqual(touched(e), ["10.4.0.1", "10.4.0.11"]);
  });

  it("a label change that changes which policies select a pod recomputes that pod only", function () {
    const e = big();
    e.upsertPod(
      pod("ns2", "p3", "10.2.0.4", { labels: { app: "app0" }, ports: [{ name: "http", port: 80 }] }),
    );
    // app0 already exists in ns2 (p0, p10): same identity, no new peer memberships.
    assert.deepEqual(touched(e), ["10.2.0.4"]);
  });

  it("a new pod with a known identity touches only itself", function () {
    const e = big();
    e.upsertPod(pod("ns7", "new", "10.7.1.1", { labels: { app: "app0" } }));
    assert.deepEqual(touched(e), ["10.7.1.1"]);
    e.upsertPod(pod("ns7", "new2", "10.7.1.2", { labels: { app: "app1" } }));
    assert.deepEqual(touched(e), ["10.7.1.2"], "app1 of ns7 is already a peer; its identity exists");
  });

  it("a policy change touches the endpoints it selects (before or after) and nothing else", function () {
    const e = big();
    e.upsertPolicy(
      policy("ns3", "app0", {
        podSelector: { matchLabels: { app: "app0" } },
        ingress: [{ ports: [{ port: 443 }] }],
      }),
    );
    assert.deepEqual(touched(e), ["10.3.0.1", "10.3.0.11"]);
    e.upsertPolicy(
      policy("ns3", "app0", {
        podSelector: { matchLabels: { app: "app2" } },
        ingress: [{ ports: [{ port: 443 }] }],
      }),
    );
    assert.deepEqual(touched(e), ["10.3.0.1", "10.3.0.11", "10.3.0.13", "10.3.0.3"]);
    e.deletePolicy("ns3", "app0");
    assert.deepEqual(touched(e), ["10.3.0.13", "10.3.0.3"]);
  });

  it("a namespace label change touches the endpoints whose rules gain or lose its pods", function () {
    const e = big();
    // ns5 joins team t0: every app0 pod in every namespace now accepts ns5's pods.
    e.upsertNamespace(namespace("ns5", { team: "t0" }));
    const want = Array.from({ length: NS }, (_, i) => [`10.${i}.0.1`, `10.${i}.0.11`])
      .flat()
      .sort();
    assert.deepEqual(touched(e), want);
  });

  it("a pod with a named port touches the endpoints of named-port egress rules only", function () {
    const e = big();
    e.upsertPolicy(
      policy("ns0", "out", {
        podSelector: { matchLabels: { app: "app9" } },
        policyTypes: ["Egress"],
        egress: [{ ports: [{ port: "http" }] }],
      }),
    );
    e.upsertPod(
      pod("ns8", "web", "10.8.1.1", { labels: { app: "app3" }, ports: [{ name: "http", port: 8080 }] }),
    );
    assert.deepEqual(
      touched(e),
      ["10.0.0.10", "10.0.0.20", "10.8.1.1"],
      "ns0's app9 pods get an address-keyed entry; the pod itself",
    );
    assert.ok(e.desiredPolicy().has("10.0.0.10|egress|ip:10.8.1.1|6|8080/16"));
  });

  it("work per event does not grow with unrelated policies", function () {
    const e = big();
    for (let k = 0; k < 2000; k++)
      e.upsertPolicy(
        policy(`ns${k % NS}`, `extra${k}`, {
          podSelector: { matchLabels: { app: `unused${k}` } },
          ingress: [{ from: [{ podSelector: { matchLabels: { role: `r${k}` } } }] }],
        }),
      );
    e.upsertPod(
      pod("ns4", "p5", "10.4.0.6", {
        labels: { app: "app1", v: "new" },
        ports: [{ name: "http", port: 80 }],
      }),
    );
    assert.deepEqual(touched(e), ["10.4.0.1", "10.4.0.11"]);
  });

  it("rules with identical content share one shape: repeating a rule adds no keys or atoms", function () {
    const e = big();
    const internet = {
      podSelector: {},
      policyTypes: ["Egress"],
      egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [{ port: 443 }] }],
    };
    e.upsertPolicy(policy("ns1", "internet-0", internet));
    const one = e.stats();
    for (let k = 1; k < 50; k++) e.upsertPolicy(policy("ns1", `internet-${k}`, internet));
    const many = e.stats();
    assert.equal(many.shapes, one.shapes);
    assert.equal(many.contributions, one.contributions);
    assert.equal(many.keys, one.keys);
    // The reported rule is the first by name; deleting it hands its keys to the next.
    const ruleOf = (): string | undefined => {
      const entry = [...e.desiredPolicy().values()].find(
        (x) => x.key.endpointIp === "10.1.0.1" && x.key.direction === "egress",
      );
      return entry === undefined ? undefined : e.rule(entry.entry.ruleId)?.policy;
    };
    assert.equal(ruleOf(), "internet-0");
    e.deletePolicy("ns1", "internet-0");
    assert.equal(ruleOf(), "internet-1");
    assert.ok(
      [...e.lastChange().policyKeys].every((k) => k.startsWith("10.1.")),
      "only ns1's keys changed rule",
    );
  });
});
