/**
 * Identities: the order-independent allocator (against a from-scratch model, collisions forced),
 * determinism across engines fed in different orders, and renumbering on collisions.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Identity, isCidrIdentity, isPodIdentity } from "../../maps/identities.js";
import { PolicyEngine } from "../../policy/engine.js";
import {
  OrderedProbingAllocator,
  podIdentityText,
  sha256Hash,
  type IdentityHash,
} from "../../policy/identity.js";
import { compareText } from "../../policy/selector.js";
import { evaluate } from "./evaluator.js";
import { namespace, observable, pod, policy } from "./fixtures.js";

/** The definition: insert every text in code-unit order into an empty linear-probing table. */
function fromScratch(texts: Iterable<string>, span: number, hash: IdentityHash): Map<string, number> {
  const slots = new Set<number>();
  const out = new Map<string, number>();
  for (const t of [...new Set(texts)].sort(compareText)) {
    let o = Math.floor(Math.abs(hash(t))) % span;
    while (slots.has(o)) o = (o + 1) % span;
    slots.add(o);
    out.set(t, o);
  }
  return out;
}

describe("policy identities: allocator", function () {
  it("matches the from-scratch definition after any insert/remove sequence (tiny range, forced collisions)", function () {
    const span = 12;
    const textArb = fc.constantFrom(
      ...Array.from({ length: 14 }, (_, i) => `t${String.fromCharCode(97 + i)}`),
    );
    // Homes cluster on a few slots, including the last one to exercise wrap-around.
    const hash: IdentityHash = (t) => [0, 3, 11, 11, 5][t.charCodeAt(1) % 5] as number;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), textArb), { maxLength: 60 }), (ops) => {
        const a = new OrderedProbingAllocator(100, 100 + span - 1, hash);
        const present = new Set<string>();
        for (const [insert, t] of ops) {
          const before = a.entries();
          if (insert) {
            if (!present.has(t) && present.size >= span) {
              assert.throws(() => a.insert(t), RangeError);
              continue;
            }
            const { id, moved } = a.insert(t);
            present.add(t);
            assert.equal(a.idOf(t), id);
            for (const m of moved) assert.equal(before.get(m.canonical), m.from);
          } else {
            a.remove(t);
            present.delete(t);
          }
          const want = fromScratch(present, span, hash);
          const got = a.entries();
          assert.equal(got.size, want.size);
          for (const [text, o] of want)
            assert.equal(got.get(text), 100 + o, `${text} after ${JSON.stringify(ops)}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("reports exactly who moved", function () {
    const hash: IdentityHash = () => 0;
    const a = new OrderedProbingAllocator(0, 9, hash);
    assert.deepEqual(a.insert("m"), { id: 0, moved: [] });
    assert.deepEqual(a.insert("z"), { id: 1, moved: [] });
    // "a" sorts first: it takes slot 0; m and z each move up one.
    assert.deepEqual(a.insert("a"), {
      id: 0,
      moved: [
        { canonical: "m", from: 0, to: 1 },
        { canonical: "z", from: 1, to: 2 },
      ],
    });
    assert.deepEqual(a.remove("m"), [{ canonical: "z", from: 2, to: 1 }]);
  });

  it("spreads real texts over the pod range", function () {
    const a = new OrderedProbingAllocator(Identity.firstPod, Identity.lastPod, sha256Hash);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const { id } = a.insert(
        podIdentityText("ns", { "kubernetes.io/metadata.name": "ns" }, { app: `a${i}` }),
      );
      assert.ok(isPodIdentity(id));
      seen.add(id);
    }
    assert.equal(seen.size, 2000);
  });

  it("canonical texts are unambiguous whatever labels contain", function () {
    const a = podIdentityText("n", {}, { a: 'b","c' });
    const b = podIdentityText("n", {}, { a: "b", c: "" });
    assert.notEqual(a, b);
    assert.equal(
      podIdentityText("n", { y: "1", x: "2" }, { b: "1", a: "2" }),
      podIdentityText("n", { x: "2", y: "1" }, { a: "2", b: "1" }),
    );
  });
});

function objects(): { apply: (e: PolicyEngine) => void; ips: string[] }[] {
  const out: { apply: (e: PolicyEngine) => void; ips: string[] }[] = [];
  out.push({
    apply: (e) => {
      e.upsertNamespace(namespace("a", { team: "x" }));
    },
    ips: [],
  });
  out.push({
    apply: (e) => {
      e.upsertNamespace(namespace("b", { team: "y" }));
    },
    ips: [],
  });
  for (let i = 0; i < 12; i++) {
    const ns = i % 2 === 0 ? "a" : "b";
    const ip = `10.0.0.${i + 1}`;
    const labels = { app: `app${i % 4}`, ...(i % 3 === 0 ? { tier: "fe" } : {}) };
    out.push({
      apply: (e) => {
        e.upsertPod(pod(ns, `p${i}`, ip, { labels, ports: [{ name: "http", port: 8000 + i }] }));
      },
      ips: [ip],
    });
  }
  out.push({
    apply: (e) => {
      e.upsertPolicy(
        policy("a", "p1", {
          podSelector: { matchLabels: { app: "app0" } },
          ingress: [
            {
              from: [
                { namespaceSelector: { matchLabels: { team: "y" } } },
                { ipBlock: { cidr: "192.168.0.0/16", except: ["192.168.3.0/24"] } },
              ],
            },
          ],
          egress: [
            {
              to: [{ podSelector: { matchExpressions: [{ key: "tier", operator: "Exists" }] } }],
              ports: [{ port: "http" }, { port: 53, protocol: "UDP" }],
            },
          ],
        }),
      );
    },
    ips: [],
  });
  out.push({
    apply: (e) => {
      e.upsertPolicy(
        policy("b", "p2", {
          podSelector: {},
          ingress: [
            {
              from: [
                { podSelector: { matchLabels: { app: "app1" } } },
                { ipBlock: { cidr: "192.168.3.0/24" } },
              ],
              ports: [{ port: 1000, endPort: 1100 }],
            },
          ],
        }),
      );
    },
    ips: [],
  });
  return out;
}

describe("policy identities: determinism across agents", function () {
  it("two engines fed the same objects in different orders agree on identities and entries", function () {
    const objs = objects();
    const ips = objs.flatMap((o) => o.ips);
    const reference = new PolicyEngine();
    for (const o of objs) o.apply(reference);
    const want = observable(reference, ips);
    fc.assert(
      fc.property(fc.shuffledSubarray(objs, { minLength: objs.length, maxLength: objs.length }), (order) => {
        const e = new PolicyEngine();
        for (const o of order) o.apply(e);
        assert.deepEqual(observable(e, ips), want);
      }),
      { numRuns: 60 },
    );
  });

  it("the same holds with every text colliding (hash = constant)", function () {
    const objs = objects();
    const ips = objs.flatMap((o) => o.ips);
    const hash: IdentityHash = () => 7;
    const reference = new PolicyEngine({ hash });
    for (const o of objs) o.apply(reference);
    const want = observable(reference, ips);
    fc.assert(
      fc.property(fc.shuffledSubarray(objs, { minLength: objs.length, maxLength: objs.length }), (order) => {
        const e = new PolicyEngine({ hash });
        for (const o of order) o.apply(e);
        assert.deepEqual(observable(e, ips), want);
      }),
      { numRuns: 60 },
    );
  });
});

describe("policy identities: collisions", function () {
  it("the smaller canonical text keeps the slot; a newcomer renumbers the larger one everywhere", function () {
    const hash: IdentityHash = () => 0;
    const e = new PolicyEngine({ hash });
    e.upsertPod(pod("ns", "zed", "10.0.0.2", { labels: { app: "zed" } }));
    e.upsertPod(pod("ns", "srv", "10.0.0.9", { labels: { role: "srv" } }));
    e.upsertPolicy(
      policy("ns", "p", {
        podSelector: { matchLabels: { role: "srv" } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: "zed" } } }] }],
      }),
    );
    const zedBefore = e.podIdentity("ns", "zed");
    assert.equal(evaluate(e, "10.0.0.2", "10.0.0.9", 6, 80).allowed, true);
    // ["ns",…,[["app","abe"]]] < ["ns",…,[["app","zed"]]]: abe takes the first slot.
    e.upsertPod(pod("ns", "abe", "10.0.0.1", { labels: { app: "abe" } }));
    assert.equal(e.podIdentity("ns", "abe"), zedBefore, "the smaller text takes the home slot");
    assert.notEqual(e.podIdentity("ns", "zed"), zedBefore, "zed is renumbered");
    assert.ok(e.lastChange().addresses.has("10.0.0.2"), "the ipcache must follow");
    assert.equal(evaluate(e, "10.0.0.2", "10.0.0.9", 6, 80).allowed, true, "entries follow the new number");
    assert.equal(
      evaluate(e, "10.0.0.1", "10.0.0.9", 6, 80).allowed,
      false,
      "and the old number now means abe, which is not allowed",
    );
    // abe leaves: zed moves back.
    e.deletePod("ns", "abe");
    assert.equal(e.podIdentity("ns", "zed"), zedBefore);
    assert.equal(evaluate(e, "10.0.0.2", "10.0.0.9", 6, 80).allowed, true);
  });

  it("CIDR identities collide and renumber the same way", function () {
    const hash: IdentityHash = () => 1;
    const e = new PolicyEngine({ hash });
    e.upsertPod(pod("ns", "srv", "10.0.0.9", { labels: { role: "srv" } }));
    e.upsertPolicy(
      policy("ns", "p", { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "9.0.0.0/8" } }] }] }),
    );
    const nine = e.cidrPrefixes().get("9.0.0.0/8");
    assert.equal(nine, Identity.firstCidr + 1);
    e.upsertPolicy(
      policy("ns", "q", {
        podSelector: { matchLabels: { none: "x" } },
        ingress: [{ from: [{ ipBlock: { cidr: "1.0.0.0/8" } }] }],
      }),
    );
    assert.equal(e.cidrPrefixes().get("1.0.0.0/8"), Identity.firstCidr + 1);
    assert.equal(e.cidrPrefixes().get("9.0.0.0/8"), Identity.firstCidr + 2);
    assert.ok(isCidrIdentity(e.cidrIdentityOf("9.1.1.1")));
    assert.equal(evaluate(e, "9.1.1.1", "10.0.0.9", 6, 80).allowed, true);
    assert.equal(evaluate(e, "1.1.1.1", "10.0.0.9", 6, 80).allowed, false);
  });
});
