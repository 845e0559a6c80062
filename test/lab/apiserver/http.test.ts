/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unnecessary-condition -- JSON from the wire is untyped; the assertions check its shape */
import { strict as assert } from "node:assert";
import { decodeFields } from "../../../lab/apiserver/protobuf.js";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import { http, waitFor, WatchStream } from "./helpers.js";

const TABLE_ACCEPT =
  "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

describe("lab apiserver: HTTP", () => {
  let server: LabApiServer;
  let url: string;
  const logs: string[] = [];
  const streams: WatchStream[] = [];

  function watch(path: string, headers?: Record<string, string>): WatchStream {
    const w = new WatchStream(url, path, headers);
    streams.push(w);
    return w;
  }

  beforeEach(async () => {
    logs.length = 0;
    server = await startLabApiServer({
      host: "127.0.0.1",
      port: 0,
      history: 5,
      bookmarkIntervalMs: 200,
      log: (l) => logs.push(l),
      seedObjects: [
        {
          apiVersion: "v1",
          kind: "Node",
          metadata: { name: "n1", labels: { "node-role.kubernetes.io/control-plane": "" } },
          spec: { podCIDR: "10.0.1.0/24" },
        },
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "web", namespace: "default", labels: { app: "web" } },
          spec: { nodeName: "n1" },
          status: { podIP: "10.0.1.5" },
        },
      ],
    });
    url = server.url;
  });

  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await server.close();
    assert.equal(server.store.watchCount, 0, "every store watch released");
  });

  describe("discovery", () => {
    it("serves /version, /api, /apis and the resource lists", async () => {
      const v = await http(url, "GET", "/version");
      assert.equal(v.status, 200);
      assert.equal(v.json.major, "1");
      const api = await http(url, "GET", "/api");
      assert.deepEqual(api.json.versions, ["v1"]);
      assert.equal(api.json.kind, "APIVersions");
      const v1 = await http(url, "GET", "/api/v1");
      assert.equal(v1.json.kind, "APIResourceList");
      assert.equal(v1.json.groupVersion, "v1");
      const byName = new Map<string, any>(v1.json.resources.map((r: any) => [r.name, r]));
      assert.deepEqual([...byName.keys()].sort(), [
        "namespaces",
        "nodes",
        "nodes/status",
        "pods",
        "pods/status",
        "services",
        "services/status",
      ]);
      assert.deepEqual(byName.get("pods").shortNames, ["po"]);
      assert.equal(byName.get("pods").singularName, "pod");
      assert.equal(byName.get("pods").namespaced, true);
      assert.equal(byName.get("pods").kind, "Pod");
      assert.ok(byName.get("pods").verbs.includes("watch"));
      assert.deepEqual(byName.get("nodes").shortNames, ["no"]);
      assert.deepEqual(byName.get("namespaces").shortNames, ["ns"]);
      assert.deepEqual(byName.get("pods/status").verbs, ["get", "patch", "update"]);
      const apis = await http(url, "GET", "/apis");
      assert.equal(apis.json.kind, "APIGroupList");
      assert.deepEqual(
        apis.json.groups.map((g: any) => g.name),
        ["networking.k8s.io", "discovery.k8s.io"],
      );
      const group = await http(url, "GET", "/apis/networking.k8s.io");
      assert.equal(group.json.preferredVersion.groupVersion, "networking.k8s.io/v1");
      const net = await http(url, "GET", "/apis/networking.k8s.io/v1");
      assert.deepEqual(
        net.json.resources.map((r: any) => [r.name, r.shortNames, r.namespaced]),
        [["networkpolicies", ["netpol"], true]],
      );
      assert.equal((await http(url, "GET", "/apis/apps/v1")).status, 404);
      assert.equal((await http(url, "GET", "/apis/apps")).status, 404);
    });

    it("answers aggregated-discovery requests with the classic format (clients fall back)", async () => {
      const accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
      const r = await http(url, "GET", "/apis", { headers: { Accept: accept } });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-type"], "application/json");
      assert.equal(r.json.kind, "APIGroupList");
    });

    it("serves OpenAPI v2 as JSON and as gnostic protobuf; v3 is 404", async () => {
      const j = await http(url, "GET", "/openapi/v2");
      assert.equal(j.json.swagger, "2.0");
      const pod = j.json.definitions["io.k8s.api.core.v1.Pod"];
      assert.deepEqual(pod["x-kubernetes-group-version-kind"], [{ group: "", kind: "Pod", version: "v1" }]);
      assert.equal(
        pod.properties.metadata.$ref,
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
      );
      assert.ok(j.json.definitions["io.k8s.api.networking.v1.NetworkPolicy"]);

      const p = await http(url, "GET", "/openapi/v2?timeout=32s", {
        headers: { Accept: "application/com.github.proto-openapi.spec.v2@v1.0+protobuf" },
      });
      assert.equal(p.status, 200);
      assert.equal(p.headers["content-type"], "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
      const doc = decodeFields(p.body);
      assert.equal((doc.find((f) => f.field === 1)?.value as Buffer).toString(), "2.0");
      const info = decodeFields(doc.find((f) => f.field === 2)?.value as Buffer);
      assert.equal((info.find((f) => f.field === 1)?.value as Buffer).toString(), "Kubernetes");
      const defs = decodeFields(doc.find((f) => f.field === 9)?.value as Buffer);
      const names = defs.map((d) =>
        (decodeFields(d.value as Buffer).find((f) => f.field === 1)?.value as Buffer).toString(),
      );
      assert.ok(names.includes("io.k8s.api.core.v1.Pod"));
      assert.ok(names.includes("io.k8s.api.core.v1.Node"));
      assert.ok(names.includes("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
      // The Pod schema: type (22) = object, vendor extension (31) = the GVK as YAML.
      const podDef = defs.find(
        (d) => (decodeFields(d.value as Buffer)[0]?.value as Buffer).toString() === "io.k8s.api.core.v1.Pod",
      );
      const podSchema = decodeFields(decodeFields(podDef?.value as Buffer)[1]?.value as Buffer);
      const type = decodeFields(podSchema.find((f) => f.field === 22)?.value as Buffer);
      assert.equal((type[0]?.value as Buffer).toString(), "object");
      const ext = decodeFields(podSchema.find((f) => f.field === 31)?.value as Buffer);
      assert.equal((ext[0]?.value as Buffer).toString(), "x-kubernetes-group-version-kind");
      const yaml = (
        decodeFields(ext[1]?.value as Buffer).find((f) => f.field === 2)?.value as Buffer
      ).toString();
      assert.match(yaml, /kind: Pod/);

      assert.equal((await http(url, "GET", "/openapi/v3")).status, 404);
      assert.equal((await http(url, "GET", "/healthz")).text, "ok");
    });
  });

  describe("errors are Status objects", () => {
    const status = (r: { status: number; json: any }, code: number, reason: string): void => {
      assert.equal(r.status, code, JSON.stringify(r.json));
      assert.equal(r.json.kind, "Status");
      assert.equal(r.json.apiVersion, "v1");
      assert.equal(r.json.status, "Failure");
      assert.equal(r.json.code, code);
      assert.equal(r.json.reason, reason);
      assert.equal(typeof r.json.message, "string");
    };

    it("400 for malformed JSON and YAML bodies", async () => {
      status(await http(url, "POST", "/api/v1/nodes", { body: "{not json" }), 400, "BadRequest");
      status(
        await http(url, "POST", "/api/v1/nodes", {
          body: "a: [unclosed",
          headers: { "Content-Type": "application/yaml" },
        }),
        400,
        "BadRequest",
      );
      status(await http(url, "POST", "/api/v1/nodes", { body: "" }), 400, "BadRequest");
      status(await http(url, "POST", "/api/v1/nodes", { body: "[1,2]" }), 400, "BadRequest");
      status(await http(url, "GET", "/api/v1/pods?labelSelector=a%20in%20b"), 400, "BadRequest");
      status(await http(url, "GET", "/api/v1/pods?fieldSelector=spec.unknown%3Dx"), 400, "BadRequest");
      status(await http(url, "GET", "/api/v1/pods?watch=1&labelSelector=%3D%3D"), 400, "BadRequest");
    });

    it("accepts YAML bodies", async () => {
      const r = await http(url, "POST", "/api/v1/nodes", {
        body: "metadata:\n  name: n2\n",
        headers: { "Content-Type": "application/yaml" },
      });
      assert.equal(r.status, 201);
      assert.equal(r.json.metadata.name, "n2");
    });

    it("404 for unknown resources, paths and objects", async () => {
      status(await http(url, "GET", "/api/v1/configmaps"), 404, "NotFound");
      status(await http(url, "GET", "/api/v2/pods"), 404, "NotFound");
      status(await http(url, "GET", "/nope"), 404, "NotFound");
      status(await http(url, "GET", "/api/v1/pods/web"), 404, "NotFound");
      status(await http(url, "GET", "/api/v1/namespaces/default/nodes"), 404, "NotFound");
      status(await http(url, "GET", "/api/v1/nodes/n1/finalize"), 404, "NotFound");
      const missing = await http(url, "GET", "/api/v1/namespaces/default/pods/ghost");
      status(missing, 404, "NotFound");
      assert.equal(missing.json.message, 'pods "ghost" not found');
      assert.deepEqual(missing.json.details, { name: "ghost", kind: "pods" });
      const np = await http(
        url,
        "GET",
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/ghost",
      );
      assert.equal(np.json.message, 'networkpolicies.networking.k8s.io "ghost" not found');
      const noNs = await http(url, "POST", "/api/v1/namespaces/ghost/pods", {
        body: JSON.stringify({ metadata: { name: "p" } }),
      });
      status(noNs, 404, "NotFound");
      assert.equal(noNs.json.message, 'namespaces "ghost" not found');
    });

    it("405 for methods a path does not take", async () => {
      status(await http(url, "PUT", "/api/v1/nodes", { body: "{}" }), 405, "MethodNotAllowed");
      status(await http(url, "POST", "/api/v1/nodes/n1", { body: "{}" }), 405, "MethodNotAllowed");
      status(await http(url, "POST", "/api/v1/pods", { body: "{}" }), 405, "MethodNotAllowed");
      status(
        await http(url, "DELETE", "/api/v1/namespaces/default/pods/web/status"),
        405,
        "MethodNotAllowed",
      );
      status(await http(url, "DELETE", "/api/v1/namespaces"), 405, "MethodNotAllowed");
      status(await http(url, "POST", "/api"), 405, "MethodNotAllowed");
    });

    it("400/422 for objects that do not fit the path", async () => {
      const wrongNs = await http(url, "POST", "/api/v1/namespaces/default/pods", {
        body: JSON.stringify({ metadata: { name: "p", namespace: "kube-system" } }),
      });
      status(wrongNs, 400, "BadRequest");
      assert.match(wrongNs.json.message, /namespace of the provided object does not match/);
      status(
        await http(url, "POST", "/api/v1/namespaces/default/pods", {
          body: JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "p" } }),
        }),
        422,
        "Invalid",
      );
      const noName = await http(url, "POST", "/api/v1/namespaces/default/pods", {
        body: JSON.stringify({ kind: "Pod", metadata: {} }),
      });
      status(noName, 422, "Invalid");
      assert.equal(noName.json.details.causes[0].field, "metadata.name");
      status(
        await http(url, "POST", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies", {
          body: JSON.stringify({ apiVersion: "v1", kind: "NetworkPolicy", metadata: { name: "x" } }),
        }),
        422,
        "Invalid",
      );
      status(
        await http(url, "PUT", "/api/v1/nodes/n1", { body: JSON.stringify({ metadata: { name: "other" } }) }),
        400,
        "BadRequest",
      );
      status(
        await http(url, "POST", "/api/v1/nodes", {
          body: JSON.stringify({ metadata: { name: "n9" }, spec: { podCIDR: 42 } }),
        }),
        400,
        "BadRequest",
      );
      const dup = await http(url, "POST", "/api/v1/nodes", {
        body: JSON.stringify({ metadata: { name: "n1" } }),
      });
      status(dup, 409, "AlreadyExists");
      assert.equal(dup.json.message, 'nodes "n1" already exists');
    });

    it("415 for unknown body types and 413 for huge bodies", async () => {
      status(
        await http(url, "PATCH", "/api/v1/nodes/n1", {
          body: "{}",
          headers: { "Content-Type": "application/json" },
        }),
        415,
        "UnsupportedMediaType",
      );
      status(
        await http(url, "POST", "/api/v1/nodes", {
          body: "x",
          headers: { "Content-Type": "application/vnd.kubernetes.protobuf" },
        }),
        415,
        "UnsupportedMediaType",
      );
      const huge = JSON.stringify({
        metadata: { name: "big", annotations: { a: "x".repeat(4 * 1024 * 1024) } },
      });
      const r = await http(url, "POST", "/api/v1/nodes", { body: huge }).catch((err: unknown) => err);
      if (!(r instanceof Error)) status(r as { status: number; json: any }, 413, "RequestEntityTooLarge");
    });
  });

  describe("CRUD", () => {
    it("creates, reads, replaces, patches (3 types) and deletes", async () => {
      const body = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "p1", labels: { a: "1" } },
        spec: { containers: [{ name: "c", image: "i" }] },
      };
      const created = await http(url, "POST", "/api/v1/namespaces/default/pods", {
        body: JSON.stringify(body),
      });
      assert.equal(created.status, 201);
      assert.equal(created.json.metadata.namespace, "default");
      const got = await http(url, "GET", "/api/v1/namespaces/default/pods/p1");
      assert.deepEqual(got.json, created.json);

      const stale = structuredClone(got.json);
      got.json.metadata.labels.b = "2";
      const put = await http(url, "PUT", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify(got.json),
      });
      assert.equal(put.status, 200);
      assert.equal(put.json.metadata.labels.b, "2");
      const conflict = await http(url, "PUT", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify(stale),
      });
      assert.equal(conflict.status, 409);
      assert.equal(conflict.json.reason, "Conflict");
      assert.match(
        conflict.json.message,
        /^Operation cannot be fulfilled on pods "p1": the object has been modified/,
      );

      const merge = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify({ metadata: { labels: { a: null } } }),
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      assert.deepEqual(merge.json.metadata.labels, { b: "2" });
      const smp = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify({ spec: { containers: [{ name: "c", image: "j" }] } }),
        headers: { "Content-Type": "application/strategic-merge-patch+json" },
      });
      assert.equal(smp.json.spec.containers[0].image, "j");
      const jp = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify([{ op: "replace", path: "/spec/nodeName", value: "n1" }]),
        headers: { "Content-Type": "application/json-patch+json" },
      });
      assert.equal(jp.status, 422, "replace of a missing path fails");
      const jp2 = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify([{ op: "add", path: "/spec/nodeName", value: "n1" }]),
        headers: { "Content-Type": "application/json-patch+json" },
      });
      assert.equal(jp2.json.spec.nodeName, "n1");
      assert.equal(jp2.json.metadata.generation, 3);
      const badPatch = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1", {
        body: "{",
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      assert.equal(badPatch.status, 400);

      const st = await http(url, "PATCH", "/api/v1/namespaces/default/pods/p1/status", {
        body: JSON.stringify({ status: { phase: "Running", podIP: "10.0.1.9" } }),
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      assert.equal(st.json.status.podIP, "10.0.1.9");
      const stGet = await http(url, "GET", "/api/v1/namespaces/default/pods/p1/status");
      assert.equal(stGet.json.status.phase, "Running");
      stGet.json.status.phase = "Succeeded";
      const stPut = await http(url, "PUT", "/api/v1/namespaces/default/pods/p1/status", {
        body: JSON.stringify(stGet.json),
      });
      assert.equal(stPut.json.status.phase, "Succeeded");

      const precond = await http(url, "DELETE", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify({ kind: "DeleteOptions", apiVersion: "v1", preconditions: { uid: "nope" } }),
      });
      assert.equal(precond.status, 409);
      const del = await http(url, "DELETE", "/api/v1/namespaces/default/pods/p1", {
        body: JSON.stringify({ propagationPolicy: "Background" }),
      });
      assert.equal(del.status, 200);
      assert.equal(del.json.kind, "Pod");
      assert.equal((await http(url, "GET", "/api/v1/namespaces/default/pods/p1")).status, 404);
    });

    it("lists with selectors and pagination; items carry no kind", async () => {
      for (const n of ["a", "b", "c"]) {
        await http(url, "POST", "/api/v1/namespaces/default/pods", {
          body: JSON.stringify({
            metadata: { name: n, labels: { tier: n === "b" ? "db" : "fe" } },
            spec: { nodeName: "n2" },
          }),
        });
      }
      const all = await http(url, "GET", "/api/v1/pods");
      assert.equal(all.json.kind, "PodList");
      assert.equal(all.json.apiVersion, "v1");
      assert.match(all.json.metadata.resourceVersion, /^\d+$/);
      assert.deepEqual(
        all.json.items.map((p: any) => p.metadata.name),
        ["a", "b", "c", "web"],
      );
      assert.equal(all.json.items[0].kind, undefined);
      const sel = await http(
        url,
        "GET",
        "/api/v1/namespaces/default/pods?labelSelector=" +
          encodeURIComponent("tier in (fe),tier!=db") +
          "&fieldSelector=spec.nodeName%3Dn2",
      );
      assert.deepEqual(
        sel.json.items.map((p: any) => p.metadata.name),
        ["a", "c"],
      );
      const page1 = await http(url, "GET", "/api/v1/pods?limit=3");
      assert.equal(page1.json.items.length, 3);
      assert.equal(page1.json.metadata.remainingItemCount, 1);
      const page2 = await http(
        url,
        "GET",
        `/api/v1/pods?limit=3&continue=${encodeURIComponent(page1.json.metadata.continue)}`,
      );
      assert.deepEqual(
        page2.json.items.map((p: any) => p.metadata.name),
        ["web"],
      );
      const dc = await http(url, "DELETE", "/api/v1/namespaces/default/pods?labelSelector=tier%3Dfe");
      assert.deepEqual(
        dc.json.items.map((p: any) => p.metadata.name),
        ["a", "c"],
      );
    });

    it("serves a list as the text JSON.stringify makes of it, from item texts that follow every change", async () => {
      const path = "/api/v1/namespaces/default/pods";
      await http(url, "POST", path, {
        body: JSON.stringify({ metadata: { name: "a", labels: { v: "1" } } }),
      });
      const first = await http(url, "GET", "/api/v1/pods");
      assert.equal(first.text, JSON.stringify(first.json) + "\n");
      assert.deepEqual(
        first.json.items.map((p: any) => [p.metadata.name, p.metadata.labels]),
        [
          ["a", { v: "1" }],
          ["web", { app: "web" }],
        ],
      );
      // A changed object is a new stored object: its new text is served, never the cached old one.
      await http(url, "PATCH", `${path}/a`, {
        body: JSON.stringify({ metadata: { labels: { v: "2" } } }),
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      const second = await http(url, "GET", "/api/v1/pods?limit=1");
      assert.equal(second.text, JSON.stringify(second.json) + "\n");
      assert.deepEqual(second.json.items[0].metadata.labels, { v: "2" });
      assert.equal(second.json.metadata.remainingItemCount, 1);
      const pretty = await http(url, "GET", "/api/v1/pods?pretty=true");
      assert.deepEqual(pretty.json.items, (await http(url, "GET", "/api/v1/pods")).json.items);
      assert.equal(pretty.text, JSON.stringify(pretty.json, null, 2) + "\n");
    });

    it("serves meta.k8s.io/v1 Tables to kubectl's Accept header", async () => {
      const t = await http(url, "GET", "/api/v1/pods?limit=500", { headers: { Accept: TABLE_ACCEPT } });
      assert.equal(t.json.kind, "Table");
      assert.equal(t.json.apiVersion, "meta.k8s.io/v1");
      assert.deepEqual(
        t.json.columnDefinitions.filter((c: any) => c.priority === 0).map((c: any) => c.name),
        ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"],
      );
      assert.deepEqual(t.json.rows[0].cells.slice(0, 3), ["web", "0/0", "Pending"]);
      assert.deepEqual(t.json.rows[0].cells.slice(5, 7), ["10.0.1.5", "n1"]);
      assert.equal(t.json.rows[0].object.kind, "PartialObjectMetadata");
      assert.equal(t.json.rows[0].object.metadata.namespace, "default");
      const one = await http(url, "GET", "/api/v1/nodes/n1?includeObject=Object", {
        headers: { Accept: TABLE_ACCEPT },
      });
      assert.deepEqual(one.json.rows[0].cells.slice(0, 3), ["n1", "Unknown", "control-plane"]);
      assert.equal(one.json.rows[0].object.kind, "Node");
      const beta = await http(url, "GET", "/api/v1/namespaces", {
        headers: { Accept: "application/json;as=Table;v=v1beta1;g=meta.k8s.io" },
      });
      assert.equal(beta.json.apiVersion, "meta.k8s.io/v1beta1");
    });
  });

  describe("watch", () => {
    it("streams JSON lines: initial ADDED, then changes, on /watch paths too", async () => {
      const w = watch("/api/v1/namespaces/default/pods?watch=true");
      const legacy = watch("/api/v1/watch/namespaces/default/pods");
      await w.until(() => w.events.length === 1);
      await legacy.until(() => legacy.events.length === 1);
      assert.equal(w.status, 200);
      assert.equal(w.events[0]?.type, "ADDED");
      assert.equal(w.events[0]?.object.kind, "Pod");
      assert.equal(w.events[0]?.object.apiVersion, "v1");
      server.store.patch("pods", "web", { metadata: { labels: { v: "2" } } }, "merge", {
        namespace: "default",
      });
      server.store.delete("pods", "web", { namespace: "default" });
      await w.until(() => w.events.length === 3);
      assert.deepEqual(
        w.events.map((e) => e.type),
        ["ADDED", "MODIFIED", "DELETED"],
      );
      await legacy.until(() => legacy.events.length === 3);
      await waitFor(() => server.store.watchCount === 2, "two store watches");
    });

    it("resumes from a resourceVersion; expired history is an ERROR event with a 410 Status, then EOF", async () => {
      const rv = server.store.resourceVersion;
      server.store.create("pods", { metadata: { name: "x" } }, { namespace: "default" });
      const resumed = watch(`/api/v1/pods?watch=1&resourceVersion=${rv}`);
      await resumed.until(() => resumed.events.length === 1);
      assert.equal(resumed.events[0]?.object.metadata.name, "x");
      for (let i = 0; i < 6; i++)
        server.store.create("pods", { metadata: { name: `y${i}` } }, { namespace: "default" });
      const old = watch(`/api/v1/pods?watch=1&resourceVersion=${rv}`);
      await old.until(() => old.ended);
      assert.equal(old.status, 200);
      assert.equal(old.events.length, 1);
      assert.equal(old.events[0]?.type, "ERROR");
      assert.deepEqual(
        {
          kind: old.events[0]?.object.kind,
          code: old.events[0]?.object.code,
          reason: old.events[0]?.object.reason,
          status: old.events[0]?.object.status,
        },
        { kind: "Status", code: 410, reason: "Expired", status: "Failure" },
      );
      assert.match(old.events[0]?.object.message, /^too old resource version: \d+ \(\d+\)$/);
      assert.ok(logs.some((l) => l.includes("watch expired")));
    });

    it("filters by label and field selectors, turning selector exits into DELETED", async () => {
      const w = watch("/api/v1/pods?watch=1&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1");
      await w.until(() => w.events.length === 1);
      server.store.patch("pods", "web", { spec: { nodeName: "n2" } }, "merge", { namespace: "default" });
      server.store.patch("pods", "web", { spec: { nodeName: "n1" } }, "merge", { namespace: "default" });
      await w.until(() => w.events.length === 3);
      assert.deepEqual(
        w.events.map((e) => e.type),
        ["ADDED", "DELETED", "ADDED"],
      );
    });

    it("honours timeoutSeconds and sends BOOKMARKs when allowed", async () => {
      const w = watch(
        `/api/v1/nodes?watch=1&resourceVersion=${server.store.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=1`,
      );
      await w.until(() => w.ended, 3000);
      assert.ok(w.events.length >= 2, "periodic bookmarks (200 ms) and one at the end");
      for (const e of w.events) {
        assert.equal(e.type, "BOOKMARK");
        assert.equal(e.object.kind, "Node");
        assert.equal(e.object.metadata.resourceVersion, server.store.resourceVersion);
      }
      const init = watch(
        "/api/v1/nodes?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5",
      );
      await init.until(() => init.events.length === 2);
      assert.equal(init.events[0]?.type, "ADDED");
      assert.equal(init.events[1]?.type, "BOOKMARK");
      assert.deepEqual(init.events[1]?.object.metadata.annotations, { "k8s.io/initial-events-end": "true" });
    });

    it("releases the store watch when the client disconnects", async () => {
      const w = watch("/api/v1/pods?watch=1");
      await w.until(() => w.events.length === 1);
      await waitFor(() => server.store.watchCount === 1, "one store watch");
      w.close();
      await waitFor(() => server.store.watchCount === 0, "watch released after disconnect");
    });

    it("closeWatches() ends every stream, and close() ends them too", async () => {
      const a = watch("/api/v1/pods?watch=1");
      const b = watch("/api/v1/nodes?watch=1");
      await a.until(() => a.events.length === 1);
      await b.until(() => b.events.length === 1);
      assert.equal(server.closeWatches(), 2);
      await a.until(() => a.ended);
      await b.until(() => b.ended);
      const c = watch("/api/v1/namespaces?watch=1");
      await c.until(() => c.events.length === 4);
      await server.close();
      await c.until(() => c.ended);
    });

    it("streams Tables for kubectl get -w", async () => {
      const w = watch("/api/v1/pods?watch=1", { Accept: TABLE_ACCEPT });
      await w.until(() => w.events.length === 1);
      assert.equal(w.events[0]?.object.kind, "Table");
      assert.equal(w.events[0]?.object.rows[0].cells[0], "web");
    });
  });
});
