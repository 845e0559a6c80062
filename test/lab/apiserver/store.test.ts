import { strict as assert } from "node:assert";
import { ApiError } from "../../../lab/apiserver/errors.js";
import { jsonText, type JsonObject } from "../../../lab/apiserver/json.js";
import { LabStore, type WatchEvent } from "../../../lab/apiserver/store.js";

function code(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return [err.code, err.reason];
    throw err;
  }
  assert.fail("expected an ApiError");
}

function caught(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  assert.fail("expected an ApiError");
}

function rv(obj: JsonObject | undefined): number {
  return Number((obj?.metadata as JsonObject).resourceVersion);
}

function pod(name: string, labels: Record<string, string> = {}, extra: JsonObject = {}): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels },
    spec: { containers: [{ name: "c", image: "i" }] },
    ...extra,
  };
}

function collect(
  store: LabStore,
  resource: "pods" | "nodes" | "namespaces" | "networkpolicies",
  opts: Parameters<LabStore["watch"]>[1] = {},
): {
  events: [string, string, string][];
  close(): void;
} {
  const events: [string, string, string][] = [];
  const w = store.watch(resource, opts, (ev: WatchEvent) => {
    const m = ev.object.metadata as JsonObject;
    events.push([ev.type, jsonText(m.name), jsonText(m.resourceVersion)]);
  });
  return {
    events,
    close: () => {
      w.close();
    },
  };
}

describe("lab apiserver: store", () => {
  it("starts with the built-in namespaces and a time-based resourceVersion", () => {
    const before = Date.now();
    const store = new LabStore();
    const names = store.list("namespaces").items.map((n) => (n.metadata as JsonObject).name);
    assert.deepEqual(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
    assert.ok(Number(store.resourceVersion) >= before + 4);
    const ns = store.getOrThrow("namespaces", "default");
    assert.deepEqual((ns.metadata as JsonObject).labels, { "kubernetes.io/metadata.name": "default" });
    assert.deepEqual(ns.status, { phase: "Active" });
    assert.deepEqual(ns.spec, { finalizers: ["kubernetes"] });
  });

  it("sets server-managed metadata and one increasing resourceVersion", () => {
    const store = new LabStore({ firstResourceVersion: 100, builtinNamespaces: ["default"] });
    assert.equal(store.resourceVersion, "101");
    const p = store.create("pods", pod("a"), { namespace: "default" });
    const m = p.metadata as JsonObject;
    assert.equal(m.resourceVersion, "102");
    assert.equal(m.namespace, "default");
    assert.equal(m.generation, 1);
    assert.match(jsonText(m.uid), /^[0-9a-f-]{36}$/);
    assert.match(jsonText(m.creationTimestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(Object.keys(p).slice(0, 3), ["kind", "apiVersion", "metadata"]);
    assert.deepEqual(p.status, { phase: "Pending" });
    const n = store.create("nodes", { metadata: { name: "n1", namespace: "ignored" } });
    assert.equal(rv(n), 103);
    assert.equal(
      (n.metadata as JsonObject).namespace,
      undefined,
      "cluster-scoped objects lose their namespace",
    );
    assert.equal((n.metadata as JsonObject).generation, undefined, "nodes have no generation");
    assert.equal(store.resourceVersion, "103");
  });

  it("stores semantically bad objects but rejects structural problems", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    store.create("nodes", { metadata: { name: "no-cidr" } });
    store.create("nodes", {
      metadata: { name: "bad-cidr" },
      spec: { podCIDR: "10.0.0.0/33", podCIDRs: ["nonsense"] },
    });
    store.create("pods", { metadata: { name: "no-ip" }, spec: {} }, { namespace: "default" });
    store.create("networkpolicies", {
      metadata: { name: "np" },
      spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "garbage" } }] }] },
    });
    assert.deepEqual(
      code(() => store.create("pods", { metadata: { name: "x" }, spec: { nodeName: 5 } })),
      [400, "BadRequest"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { metadata: { name: "x", labels: { a: 1 } } })),
      [400, "BadRequest"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { metadata: "x" })),
      [400, "BadRequest"],
    );
    assert.deepEqual(
      code(() => store.create("pods", [1, 2])),
      [400, "BadRequest"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { metadata: {} })),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { metadata: { name: "UPPER" } })),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { metadata: { name: "x", labels: { "bad key!": "v" } } })),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() => store.create("pods", { kind: "Node", metadata: { name: "x" } })),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() =>
        store.create("networkpolicies", { apiVersion: "v1", kind: "NetworkPolicy", metadata: { name: "x" } }),
      ),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() => store.create("namespaces", { metadata: { name: "a.b" } })),
      [422, "Invalid"],
      "namespace names are DNS labels",
    );
  });

  it("generates names from generateName", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const p = store.create("pods", { metadata: { generateName: "web-" } });
    assert.match(jsonText((p.metadata as JsonObject).name), /^web-[0-9a-f]{5}$/);
  });

  it("answers 404 for a missing namespace and 409 for a taken name", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const err = caught(() => store.create("pods", pod("a"), { namespace: "nope" }));
    assert.equal(err.code, 404);
    assert.equal(err.message, 'namespaces "nope" not found');
    store.create("pods", pod("a"));
    const dup = code(() => store.create("pods", pod("a")));
    assert.deepEqual(dup, [409, "AlreadyExists"]);
    assert.deepEqual(
      code(() => store.create("pods", { metadata: { name: "b", namespace: "x" } }, { namespace: "default" })),
      [400, "BadRequest"],
    );
  });

  it("updates with optimistic concurrency and keeps status off the main endpoint", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const created = store.create("pods", pod("a", {}, { status: { phase: "Running", podIP: "10.0.0.5" } }));
    assert.equal(
      (created.status as JsonObject).podIP,
      "10.0.0.5",
      "status given at create is kept (lab leniency)",
    );
    const stale = structuredClone(created);
    const next = structuredClone(created);
    (next.metadata as JsonObject).labels = { v: "2" };
    next.status = { phase: "Failed" };
    const updated = store.update("pods", next);
    assert.equal(rv(updated), rv(created) + 1);
    assert.deepEqual((updated.metadata as JsonObject).labels, { v: "2" });
    assert.equal((updated.status as JsonObject).phase, "Running", "PUT on the main resource ignores status");
    assert.equal((updated.metadata as JsonObject).generation, 1, "metadata-only change keeps generation");
    assert.deepEqual(
      code(() => store.update("pods", stale)),
      [409, "Conflict"],
    );

    const st = store.update(
      "pods",
      { metadata: { name: "a" }, status: { phase: "Succeeded" }, spec: { nodeName: "ignored" } },
      { subresource: "status" },
    );
    assert.equal((st.status as JsonObject).phase, "Succeeded");
    assert.equal((st.spec as JsonObject).nodeName, undefined, "status update ignores spec");

    const specChange = store.update("pods", { metadata: { name: "a" }, spec: { nodeName: "n1" } });
    assert.equal((specChange.metadata as JsonObject).generation, 2);
    assert.equal((specChange.metadata as JsonObject).uid, (created.metadata as JsonObject).uid);

    const same = store.update("pods", specChange);
    assert.equal(rv(same), rv(specChange), "a no-op update keeps the resourceVersion");
    assert.deepEqual(
      code(() => store.update("pods", { metadata: { name: "missing" } })),
      [404, "NotFound"],
    );
    assert.deepEqual(
      code(() => store.update("pods", { metadata: { name: "a" } }, { name: "b" })),
      [400, "BadRequest"],
    );
  });

  it("patches with all three patch types and honours resourceVersion preconditions", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const n = store.create("nodes", { metadata: { name: "n1" } });
    const merged = store.patch(
      "nodes",
      "n1",
      { metadata: { labels: { zone: "a" } }, spec: { podCIDR: "10.1.0.0/24" } },
      "merge",
    );
    assert.equal((merged.spec as JsonObject).podCIDR, "10.1.0.0/24");
    const jp = store.patch(
      "nodes",
      "n1",
      [{ op: "add", path: "/metadata/labels/rack", value: "r1" }],
      "json",
    );
    assert.deepEqual((jp.metadata as JsonObject).labels, { zone: "a", rack: "r1" });
    const st = store.patch(
      "nodes",
      "n1",
      { status: { addresses: [{ type: "InternalIP", address: "192.0.2.1" }] } },
      "strategic",
      { subresource: "status" },
    );
    assert.deepEqual((st.status as JsonObject).addresses, [{ type: "InternalIP", address: "192.0.2.1" }]);
    const ignored = store.patch("nodes", "n1", { status: { addresses: [] } }, "merge");
    assert.equal(rv(ignored), rv(st), "status through the main endpoint is dropped: no change");
    assert.deepEqual(
      code(() =>
        store.patch(
          "nodes",
          "n1",
          { metadata: { resourceVersion: String(rv(n)) }, spec: { unschedulable: true } },
          "merge",
        ),
      ),
      [409, "Conflict"],
    );
    assert.deepEqual(
      code(() => store.patch("nodes", "n1", [{ op: "test", path: "/spec/podCIDR", value: "x" }], "json")),
      [422, "Invalid"],
    );
    assert.deepEqual(
      code(() => store.patch("nodes", "n1", { metadata: { name: "other" } }, "merge")),
      [400, "BadRequest"],
    );
    assert.deepEqual(
      code(() => store.patch("nodes", "zz", {}, "merge")),
      [404, "NotFound"],
    );
    assert.deepEqual(
      code(() => store.patch("nodes", "n1", { spec: { podCIDR: 7 } }, "merge")),
      [400, "BadRequest"],
    );
  });

  it("deletes with preconditions; deleting a namespace deletes its content", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    store.create("namespaces", { metadata: { name: "team" } });
    store.create("pods", pod("a"), { namespace: "team" });
    store.create("pods", pod("b"), { namespace: "default" });
    const np = store.create("networkpolicies", {
      metadata: { name: "np", namespace: "team" },
      spec: { podSelector: {} },
    });
    const pods = collect(store, "pods", { resourceVersion: store.resourceVersion });
    const nps = collect(store, "networkpolicies", { resourceVersion: store.resourceVersion });
    assert.deepEqual(
      code(() =>
        store.delete("networkpolicies", "np", { namespace: "team", preconditions: { uid: "nope" } }),
      ),
      [409, "Conflict"],
    );
    assert.deepEqual(
      code(() =>
        store.delete("networkpolicies", "np", { namespace: "team", preconditions: { resourceVersion: "1" } }),
      ),
      [409, "Conflict"],
    );
    const before = Number(store.resourceVersion);
    const gone = store.delete("namespaces", "team", { preconditions: { uid: undefined } });
    assert.equal(rv(gone), before + 3, "pod, policy, then namespace: each its own resourceVersion");
    assert.deepEqual(pods.events, [["DELETED", "a", String(before + 1)]]);
    assert.deepEqual(nps.events, [["DELETED", "np", String(before + 2)]]);
    assert.equal(store.get("networkpolicies", "np", { namespace: "team" }), undefined);
    assert.ok(store.get("pods", "b", { namespace: "default" }));
    assert.deepEqual(
      code(() => store.delete("namespaces", "team")),
      [404, "NotFound"],
    );
    assert.deepEqual(
      code(() => store.delete("namespaces", "default")),
      [403, "Forbidden"],
    );
    assert.ok(np);
    pods.close();
    nps.close();
  });

  it("lists with selectors, sorted, paginated, without kind on items", () => {
    const store = new LabStore({ builtinNamespaces: ["a", "b"] });
    store.create("pods", pod("z", { app: "web" }, { spec: { nodeName: "n1" } }), { namespace: "a" });
    store.create("pods", pod("y", { app: "db" }, { spec: { nodeName: "n2" } }), { namespace: "a" });
    store.create("pods", pod("x", { app: "web" }, { spec: { nodeName: "n2" } }), { namespace: "b" });
    const names = (r: { items: JsonObject[] }): string[] =>
      r.items.map(
        (i) =>
          `${jsonText((i.metadata as JsonObject).namespace)}/${jsonText((i.metadata as JsonObject).name)}`,
      );
    assert.deepEqual(names(store.list("pods")), ["a/y", "a/z", "b/x"]);
    assert.deepEqual(names(store.list("pods", { namespace: "a" })), ["a/y", "a/z"]);
    assert.deepEqual(names(store.list("pods", { labelSelector: "app=web" })), ["a/z", "b/x"]);
    assert.deepEqual(names(store.list("pods", { fieldSelector: "spec.nodeName=n2" })), ["a/y", "b/x"]);
    assert.deepEqual(names(store.list("pods", { fieldSelector: "metadata.namespace!=a,spec.nodeName=n2" })), [
      "b/x",
    ]);
    assert.deepEqual(
      code(() => store.list("pods", { fieldSelector: "spec.bogus=1" })),
      [400, "BadRequest"],
    );
    assert.equal(store.list("pods").items[0]?.kind, undefined);
    const p1 = store.list("pods", { limit: 2 });
    assert.deepEqual(names(p1), ["a/y", "a/z"]);
    assert.equal(p1.remainingItemCount, 1);
    const p2 = store.list("pods", { limit: 2, continue: p1.continue });
    assert.deepEqual(names(p2), ["b/x"]);
    assert.equal(p2.continue, undefined);
    assert.deepEqual(
      code(() => store.list("pods", { continue: "garbage!" })),
      [400, "BadRequest"],
    );
  });

  it("watch: initial ADDED events, then live changes, with selector transitions", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    store.create("pods", pod("a", { app: "web" }));
    store.create("pods", pod("b", { app: "db" }));
    const all = collect(store, "pods");
    const web = collect(store, "pods", { labelSelector: "app=web" });
    assert.deepEqual(
      all.events.map((e) => e.slice(0, 2)),
      [
        ["ADDED", "a"],
        ["ADDED", "b"],
      ],
    );
    assert.deepEqual(
      web.events.map((e) => e.slice(0, 2)),
      [["ADDED", "a"]],
    );
    store.patch("pods", "b", { metadata: { labels: { app: "web" } } }, "merge");
    store.patch("pods", "a", { metadata: { labels: { app: "gone" } } }, "merge");
    store.patch("pods", "b", { metadata: { annotations: { x: "y" } } }, "merge");
    store.delete("pods", "b");
    assert.deepEqual(
      web.events.slice(1).map((e) => e.slice(0, 2)),
      [
        ["ADDED", "b"],
        ["DELETED", "a"],
        ["MODIFIED", "b"],
        ["DELETED", "b"],
      ],
    );
    assert.equal(
      web.events[2]?.[2],
      String(Number(store.resourceVersion) - 2),
      "DELETED-by-transition carries the event's resourceVersion",
    );
    assert.deepEqual(
      all.events.slice(2).map((e) => e[0]),
      ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"],
    );
    all.close();
    web.close();
    assert.equal(store.watchCount, 0);
  });

  it("watch: resumes from a resourceVersion and answers 410 once history is gone", () => {
    const store = new LabStore({ history: 3, builtinNamespaces: ["default"] });
    const start = store.resourceVersion;
    store.create("pods", pod("a"));
    const afterA = store.resourceVersion;
    store.create("pods", pod("b"));
    store.create("pods", pod("c"));
    const resumed = collect(store, "pods", { resourceVersion: afterA });
    assert.deepEqual(
      resumed.events.map((e) => e.slice(0, 2)),
      [
        ["ADDED", "b"],
        ["ADDED", "c"],
      ],
    );
    resumed.close();
    const fromStart = collect(store, "pods", { resourceVersion: start });
    assert.equal(fromStart.events.length, 3, "3 events retained: all since start");
    fromStart.close();
    store.create("pods", pod("d"));
    const err = caught(() => store.watch("pods", { resourceVersion: start }, () => undefined));
    assert.equal(err.code, 410);
    assert.equal(err.reason, "Expired");
    assert.match(err.message, /^too old resource version: \d+ \(\d+\)$/);
    assert.deepEqual(
      code(() =>
        store.watch("pods", { resourceVersion: String(Number(store.resourceVersion) + 10) }, () => undefined),
      ),
      [410, "Expired"],
    );
    assert.deepEqual(
      code(() => store.watch("pods", { resourceVersion: "abc" }, () => undefined)),
      [400, "BadRequest"],
    );
    // History is per resource type: node churn does not expire pod watches.
    const podRv = store.resourceVersion;
    for (let i = 0; i < 10; i++) store.create("nodes", { metadata: { name: `n${i}` } });
    const stillOk = collect(store, "pods", { resourceVersion: podRv });
    assert.equal(stillOk.events.length, 0);
    stillOk.close();
  });

  it("watch: a throwing consumer loses its watch, not the write", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const w = store.watch("pods", { resourceVersion: store.resourceVersion }, () => {
      throw new Error("consumer bug");
    });
    store.create("pods", pod("a"));
    assert.equal(w.closed, true);
    assert.ok(store.get("pods", "a"));
  });

  it("upsert creates or replaces including status", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    store.upsert({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1" },
      status: { addresses: [{ type: "InternalIP", address: "192.0.2.1" }] },
    });
    const n = store.upsert({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1", resourceVersion: "1" },
      spec: { podCIDR: "10.0.0.0/24" },
      status: {},
    });
    assert.deepEqual(n.spec, { podCIDR: "10.0.0.0/24" });
    assert.deepEqual(n.status, {});
    assert.deepEqual(
      code(() => store.upsert({ kind: "ConfigMap", metadata: { name: "s" } })),
      [400, "BadRequest"],
    );
  });

  it("returns copies: callers cannot corrupt the store", () => {
    const store = new LabStore({ builtinNamespaces: ["default"] });
    const p = store.create("pods", pod("a", { app: "web" }));
    ((p.metadata as JsonObject).labels as JsonObject).app = "changed";
    assert.deepEqual((store.getOrThrow("pods", "a").metadata as JsonObject).labels, { app: "web" });
  });
});
