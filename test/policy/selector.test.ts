/** Label selectors: every operator, null/empty semantics, validation, and the anchor index. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  SelectorIndex,
  compileSelector,
  labelBuckets,
  matches,
  selectorAnchors,
  type Selector,
} from "../../policy/selector.js";

/** A LabelSelector as written in YAML. */
interface SelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

function sel(s: SelectorSpec | undefined): Selector {
  const r = compileSelector(s, "sel");
  assert.ok(r.ok, JSON.stringify(r));
  return r.selector;
}

describe("policy selectors", function () {
  it("empty and absent selectors match everything", function () {
    for (const s of [undefined, {}, { matchLabels: {} }, { matchExpressions: [] }]) {
      assert.equal(matches(sel(s), {}), true);
      assert.equal(matches(sel(s), { a: "b" }), true);
    }
  });

  it("matchLabels requires every pair", function () {
    const s = sel({ matchLabels: { app: "web", tier: "fe" } });
    assert.equal(matches(s, { app: "web", tier: "fe", x: "y" }), true);
    assert.equal(matches(s, { app: "web" }), false);
    assert.equal(matches(s, { app: "web", tier: "be" }), false);
  });

  it("In: key present with one of the values", function () {
    const s = sel({ matchExpressions: [{ key: "env", operator: "In", values: ["a", "b"] }] });
    assert.deepEqual(
      [matches(s, { env: "a" }), matches(s, { env: "b" }), matches(s, { env: "c" }), matches(s, {})],
      [true, true, false, false],
    );
  });

  it("NotIn: key absent, or present with another value", function () {
    const s = sel({ matchExpressions: [{ key: "env", operator: "NotIn", values: ["a"] }] });
    assert.deepEqual(
      [matches(s, { env: "a" }), matches(s, { env: "b" }), matches(s, {})],
      [false, true, true],
    );
  });

  it("Exists and DoesNotExist look at the key only (empty values included)", function () {
    const ex = sel({ matchExpressions: [{ key: "k", operator: "Exists" }] });
    const nx = sel({ matchExpressions: [{ key: "k", operator: "DoesNotExist" }] });
    assert.deepEqual(
      [matches(ex, { k: "" }), matches(ex, {}), matches(nx, { k: "" }), matches(nx, {})],
      [true, false, false, true],
    );
  });

  it("matchLabels and matchExpressions are ANDed", function () {
    const s = sel({
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "tier", operator: "NotIn", values: ["be"] }],
    });
    assert.deepEqual(
      [matches(s, { app: "web" }), matches(s, { app: "web", tier: "be" }), matches(s, { tier: "fe" })],
      [true, false, false],
    );
  });

  it("does not match inherited properties", function () {
    const s = sel({ matchExpressions: [{ key: "toString", operator: "Exists" }] });
    assert.equal(matches(s, {}), false);
  });

  it("rejects what the API server rejects, naming the field", function () {
    const bad: [SelectorSpec, RegExp][] = [
      [{ matchExpressions: [{ key: "a", operator: "in", values: ["x"] }] }, /operator/],
      [{ matchExpressions: [{ key: "a", operator: "NotIn" }] }, /values: must be specified/],
      [{ matchExpressions: [{ key: "a", operator: "DoesNotExist", values: ["x"] }] }, /may not be specified/],
      [{ matchExpressions: [{ key: "", operator: "Exists" }] }, /key/],
      [{ matchLabels: { "-a": "x" } }, /label key/],
      [{ matchLabels: { "Bad_Prefix/a": "x" } }, /prefix/],
      [{ matchLabels: { a: "bad value" } }, /label value/],
      [{ matchLabels: { a: "x".repeat(64) } }, /label value/],
    ];
    for (const [s, re] of bad) {
      const r = compileSelector(s, "spec.podSelector");
      assert.equal(r.ok, false, JSON.stringify(s));
      assert.ok(
        r.errors.some((e) => e.startsWith("spec.podSelector") && re.test(e)),
        r.errors.join("; "),
      );
    }
    assert.ok(compileSelector({ matchLabels: { "example.com/a-b_c.d": "" } }, "s").ok);
  });

  it("gives equal selectors equal text", function () {
    const a = sel({
      matchLabels: { b: "1", a: "2" },
      matchExpressions: [{ key: "c", operator: "In", values: ["y", "x"] }],
    });
    const b = sel({
      matchExpressions: [
        { key: "c", operator: "In", values: ["x", "y"] },
        { key: "a", operator: "In", values: ["2"] },
      ],
      matchLabels: { b: "1" },
    });
    assert.equal(a.text, b.text);
  });

  it("anchors never hide a match (property)", function () {
    const keyArb = fc.constantFrom("a", "b", "c");
    const valArb = fc.constantFrom("1", "2", "3");
    const reqArb = fc.oneof(
      fc.record({
        key: keyArb,
        operator: fc.constantFrom("In", "NotIn"),
        values: fc.uniqueArray(valArb, { minLength: 1, maxLength: 2 }),
      }),
      fc.record({ key: keyArb, operator: fc.constantFrom("Exists", "DoesNotExist") }),
    );
    const selArb = fc.record({
      matchLabels: fc.dictionary(keyArb, valArb, { maxKeys: 2 }),
      matchExpressions: fc.array(reqArb, { maxLength: 2 }),
    });
    const labelsArb = fc.dictionary(keyArb, valArb, { maxKeys: 3 });
    fc.assert(
      fc.property(
        fc.array(selArb, { minLength: 1, maxLength: 6 }),
        fc.array(labelsArb, { minLength: 1, maxLength: 6 }),
        (sels, labelSets) => {
          const index = new SelectorIndex<number>();
          const compiled = sels.map((s) => sel(s as SelectorSpec));
          compiled.forEach((s, i) => {
            index.add(i, selectorAnchors(s));
          });
          for (const labels of labelSets) {
            const cands = index.candidates(labelBuckets(labels));
            compiled.forEach((s, i) => {
              if (matches(s, labels))
                assert.ok(
                  cands.has(i),
                  `selector ${s.text} matches ${JSON.stringify(labels)} but is not a candidate`,
                );
            });
          }
          compiled.forEach((_, i) => {
            index.delete(i);
          });
          assert.equal(index.size, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("prunes: anchored selectors are not candidates for unrelated labels", function () {
    const index = new SelectorIndex<string>();
    index.add("web", selectorAnchors(sel({ matchLabels: { app: "web" } })));
    index.add("all", selectorAnchors(sel({})));
    index.add(
      "notin",
      selectorAnchors(sel({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["x"] }] })),
    );
    assert.deepEqual([...index.candidates(labelBuckets({ app: "db" }))].sort(), ["all", "notin"]);
    assert.deepEqual([...index.candidates(labelBuckets({ app: "web" }))].sort(), ["all", "notin", "web"]);
  });
});
