/** trimObject: the informers' caches keep what views.ts and the policy engine read, nothing else. */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { V1Pod } from "@kubernetes/client-node";
import { TRIM_SHAPES, nodeView, podView, trimObject, type Shape } from "../../agent/k8s/views.js";
import { scaleNode, scalePod } from "../../bench/scale-seed.js";
import { PolicyEngine } from "../../policy/engine.js";

describe("agent: trimmed informer objects", function () {
  it("keep what the views and the engine read: same views, same identity and named ports", function () {
    const pod = scalePod("p", 1, 0, "10.0.0.9") as V1Pod;
    (pod.spec ??= { containers: [] }).initContainers = [
      { name: "side", restartPolicy: "Always", ports: [{ name: "side", containerPort: 7000 }] },
    ];
    const trimmed = trimObject("Pod", pod);
    assert.deepEqual(podView(trimmed), podView(pod));
    assert.equal(trimmed.metadata?.annotations, undefined, "annotations dropped");
    assert.equal(trimmed.spec?.containers[0]?.image, undefined, "images dropped");
    assert.equal(trimmed.metadata?.resourceVersion, pod.metadata?.resourceVersion);

    const whole = new PolicyEngine({ nodeName: "node-0" });
    const trim = new PolicyEngine({ nodeName: "node-0" });
    whole.upsertPod(pod);
    trim.upsertPod(trimmed);
    assert.equal(trim.podIdentity("ns-1", "p"), whole.podIdentity("ns-1", "p"));
    assert.deepEqual(trim.identities(), whole.identities());

    const node = scaleNode(3, "198.19.0.2");
    assert.deepEqual(nodeView(trimObject("Node", node)), nodeView(node));
    assert.deepEqual(trimObject("Unknown", { a: 1 }), { a: 1 });
  });

  it("copies exactly what the shapes list, as the field-by-field walk it replaced did", function () {
    /** The former trim, kept as the reference. */
    const reference = (value: unknown, shape: Shape | true | readonly [Shape]): unknown => {
      if (shape === true || value === null || typeof value !== "object") return value;
      if (Array.isArray(shape)) {
        const inner = shape[0] as Shape;
        return Array.isArray(value) ? value.map((v) => reference(v, inner)) : undefined;
      }
      const out: Record<string, unknown> = {};
      for (const [k, sub] of Object.entries(shape as Shape)) {
        const v = (value as Record<string, unknown>)[k];
        if (v !== undefined) out[k] = reference(v, sub);
      }
      return out;
    };
    /** Values that follow a shape part of the time, and anything JSON otherwise. */
    const shaped = (shape: Shape | true | readonly [Shape], depth: number): fc.Arbitrary<unknown> => {
      if (shape === true || depth > 4) return fc.jsonValue({ maxDepth: 2 });
      if (Array.isArray(shape))
        return fc.oneof(
          fc.array(shaped(shape[0] as Shape, depth + 1), { maxLength: 3 }),
          fc.jsonValue({ maxDepth: 1 }),
        );
      const fields = Object.fromEntries(
        Object.entries(shape as Shape).map(([k, sub]) => [k, shaped(sub, depth + 1)] as const),
      );
      return fc.oneof(
        {
          weight: 4,
          arbitrary: fc
            .tuple(
              fc.record(fields, { requiredKeys: [] }),
              fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
            )
            .map(([known, extra]) => ({ ...extra, ...known })),
        },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
      );
    };
    for (const [kind, shape] of Object.entries(TRIM_SHAPES))
      fc.assert(
        fc.property(shaped(shape, 0), (obj) => {
          assert.deepEqual(trimObject(kind, obj), reference(obj, shape));
        }),
        { numRuns: 300 },
      );
  });
});
