import { strict as assert } from "node:assert";
import { ApiError } from "../../../lab/apiserver/errors.js";
import type { JsonValue } from "../../../lab/apiserver/json.js";
import {
  applyJsonPatch,
  applyMergePatch,
  applyStrategicMergePatch,
  patchTypeOf,
} from "../../../lab/apiserver/patch.js";

function rejects(code: number, fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof ApiError && err.code === code);
}

describe("lab apiserver: merge patch (RFC 7386)", () => {
  it("merges objects, deletes with null, replaces arrays and scalars", () => {
    const target: JsonValue = { a: { b: 1, c: 2 }, list: [1, 2], keep: "x", gone: true };
    const out = applyMergePatch(target, { a: { b: 9, c: null, d: 4 }, list: [3], gone: null, s: "new" });
    assert.deepEqual(out, { a: { b: 9, d: 4 }, list: [3], keep: "x", s: "new" });
    assert.deepEqual(target, { a: { b: 1, c: 2 }, list: [1, 2], keep: "x", gone: true }, "input untouched");
  });

  it("follows the RFC's examples", () => {
    assert.deepEqual(applyMergePatch({ a: "b" }, { a: "c" }), { a: "c" });
    assert.deepEqual(applyMergePatch({ a: "b" }, { b: "c" }), { a: "b", b: "c" });
    assert.deepEqual(applyMergePatch({ a: [{ b: "c" }] }, { a: [1] }), { a: [1] });
    assert.deepEqual(applyMergePatch(["a", "b"], ["c", "d"]), ["c", "d"]);
    assert.deepEqual(applyMergePatch({ a: "b" }, ["c"]), ["c"]);
    assert.deepEqual(applyMergePatch({ e: null }, { a: 1 }), { e: null, a: 1 });
    assert.deepEqual(applyMergePatch([1, 2], { a: "b", c: null }), { a: "b" });
    assert.deepEqual(applyMergePatch({}, { a: { bb: { ccc: null } } }), { a: { bb: {} } });
  });
});

describe("lab apiserver: JSON patch (RFC 6902)", () => {
  const doc: JsonValue = { metadata: { labels: { a: "1" } }, list: ["x", "y"], "a/b": { "c~d": 1 } };

  it("applies add, remove, replace, move, copy and test", () => {
    const out = applyJsonPatch(doc, [
      { op: "test", path: "/metadata/labels/a", value: "1" },
      { op: "add", path: "/metadata/labels/b", value: "2" },
      { op: "replace", path: "/metadata/labels/a", value: "one" },
      { op: "add", path: "/list/1", value: "inserted" },
      { op: "add", path: "/list/-", value: "end" },
      { op: "remove", path: "/list/0" },
      { op: "copy", from: "/metadata/labels", path: "/copied" },
      { op: "move", from: "/a~1b/c~0d", path: "/moved" },
    ]);
    assert.deepEqual(out, {
      metadata: { labels: { a: "one", b: "2" } },
      list: ["inserted", "y", "end"],
      "a/b": {},
      copied: { a: "one", b: "2" },
      moved: 1,
    });
    assert.deepEqual((doc as { list: string[] }).list, ["x", "y"], "input untouched");
  });

  it("is atomic and fails with 422 when it cannot apply", () => {
    rejects(422, () => applyJsonPatch(doc, [{ op: "test", path: "/metadata/labels/a", value: "2" }]));
    rejects(422, () => applyJsonPatch(doc, [{ op: "remove", path: "/nope" }]));
    rejects(422, () => applyJsonPatch(doc, [{ op: "replace", path: "/metadata/nope", value: 1 }]));
    rejects(422, () => applyJsonPatch(doc, [{ op: "add", path: "/list/5", value: 1 }]));
    rejects(422, () => applyJsonPatch(doc, [{ op: "add", path: "/missing/deep", value: 1 }]));
    rejects(422, () => applyJsonPatch(doc, [{ op: "move", from: "/metadata", path: "/metadata/labels/x" }]));
  });

  it("rejects malformed patch documents with 400", () => {
    rejects(400, () => applyJsonPatch(doc, { op: "add" }));
    rejects(400, () => applyJsonPatch(doc, [{ op: "frobnicate", path: "/a" }]));
    rejects(400, () => applyJsonPatch(doc, [{ op: "add", path: "/a" }]));
    rejects(400, () => applyJsonPatch(doc, [{ op: "add", path: "no-slash", value: 1 }]));
  });

  it("can replace the whole document", () => {
    assert.deepEqual(applyJsonPatch(doc, [{ op: "replace", path: "", value: { x: 1 } }]), { x: 1 });
  });
});

describe("lab apiserver: strategic merge patch", () => {
  const pod: JsonValue = {
    metadata: { name: "p", finalizers: ["a"] },
    spec: {
      containers: [
        { name: "app", image: "v1", ports: [{ containerPort: 80, name: "http" }] },
        { name: "side", image: "s1" },
      ],
      tolerations: [{ key: "x" }],
    },
    status: { conditions: [{ type: "Ready", status: "False" }] },
  };

  it("merges keyed lists element by element", () => {
    const out = applyStrategicMergePatch(pod, {
      spec: { containers: [{ name: "app", image: "v2", ports: [{ containerPort: 8080 }] }] },
      status: {
        conditions: [
          { type: "Ready", status: "True" },
          { type: "Scheduled", status: "True" },
        ],
      },
    }) as {
      spec: { containers: { name: string; image: string; ports?: unknown[] }[] };
      status: { conditions: unknown[] };
    };
    assert.deepEqual(
      out.spec.containers.map((c) => [c.name, c.image]),
      [
        ["app", "v2"],
        ["side", "s1"],
      ],
    );
    assert.deepEqual(out.spec.containers[0]?.ports, [
      { containerPort: 80, name: "http" },
      { containerPort: 8080 },
    ]);
    assert.deepEqual(out.status.conditions, [
      { type: "Ready", status: "True" },
      { type: "Scheduled", status: "True" },
    ]);
  });

  it("honours $patch, $retainKeys, $setElementOrder and $deleteFromPrimitiveList", () => {
    const out = applyStrategicMergePatch(pod, {
      metadata: { finalizers: ["b"], "$deleteFromPrimitiveList/finalizers": ["a"] },
      spec: {
        "$setElementOrder/containers": [{ name: "side" }, { name: "app" }],
        containers: [{ name: "side", $patch: "delete" }],
        tolerations: [{ key: "y" }],
      },
      status: { $patch: "replace", phase: "Running" },
    });
    assert.deepEqual(out, {
      metadata: { name: "p", finalizers: ["b"] },
      spec: {
        containers: [{ name: "app", image: "v1", ports: [{ containerPort: 80, name: "http" }] }],
        tolerations: [{ key: "y" }],
      },
      status: { phase: "Running" },
    });
    const retained = applyStrategicMergePatch(
      { spec: { a: 1, b: 2, c: 3 } },
      { spec: { $retainKeys: ["a", "d"], d: 4 } },
    );
    assert.deepEqual(retained, { spec: { a: 1, d: 4 } });
  });

  it("maps Content-Types to patch types", () => {
    assert.equal(patchTypeOf("application/merge-patch+json"), "merge");
    assert.equal(patchTypeOf("application/strategic-merge-patch+json; charset=utf-8"), "strategic");
    assert.equal(patchTypeOf("application/json-patch+json"), "json");
    assert.equal(patchTypeOf("application/apply-patch+yaml"), undefined);
    assert.equal(patchTypeOf("application/json"), undefined);
  });
});
