/** trimObject: the informers' caches keep what views.ts and the policy engine read, nothing else. */
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { nodeView, podView, trimObject } from "../../agent/k8s/views.js";
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
});
