/**
 * The first lists, paged: objects reach the hooks a page at a time while the next page is on its
 * way, each exactly once (the informer's own add events for them are skipped); a list that fails
 * part way takes back what it delivered, and the retry delivers the whole list again.
 */
import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { ClusterWatch, type WatchEventType } from "../../agent/k8s/watch.js";
import { createLogger } from "../../agent/log.js";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../lab/apiserver/json.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import { waitFor } from "../lab/apiserver/helpers.js";

const PODS = 23;

function pod(i: number): JsonObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `p-${String(i).padStart(2, "0")}`, namespace: "default", labels: { app: "a" } },
    spec: { nodeName: "n1" },
    status: { podIP: `10.0.0.${i + 2}` },
  };
}

/** Forwards to the API server; logs each request, and fails those `fail` picks with a 500. */
function proxy(target: string, log: string[], fail: (path: string) => boolean): Promise<Server> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    log.push(`request ${path}`);
    if (fail(path)) {
      res.writeHead(500, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          message: "injected",
          code: 500,
        }),
      );
      return;
    }
    const up = request(
      { host: upstream.hostname, port: upstream.port, path, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        // A watch sends its headers before any event.
        res.flushHeaders();
        r.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve(server);
    });
  });
}

describe("agent: the first lists, paged and delivered a page at a time", function () {
  let api: LabApiServer;
  let front: Server | undefined;
  let watch: ClusterWatch | undefined;

  beforeEach(async function () {
    api = await startLabApiServer({
      host: "127.0.0.1",
      port: 0,
      log: () => undefined,
      seedObjects: Array.from({ length: PODS }, (_v, i) => pod(i)),
    });
  });

  afterEach(async function () {
    await watch?.stop();
    watch = undefined;
    front?.closeAllConnections();
    const closing = front;
    if (closing !== undefined)
      await new Promise((r) => {
        closing.close(r);
      });
    front = undefined;
    await api.close();
  });

  async function run(fail: (path: string) => boolean): Promise<{
    log: string[];
    state: Map<string, KubernetesObject>;
    events: [WatchEventType, string][];
  }> {
    const log: string[] = [];
    front = await proxy(api.url, log, fail);
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(`http://127.0.0.1:${(front.address() as AddressInfo).port}`));
    const state = new Map<string, KubernetesObject>();
    const events: [WatchEventType, string][] = [];
    watch = new ClusterWatch(
      kc,
      {
        onEvent(_kind, type, obj) {
          const name = obj.metadata?.name ?? "";
          log.push(`${type} ${name}`);
          events.push([type, name]);
          if (type === "delete") state.delete(name);
          else state.set(name, obj);
        },
      },
      createLogger("error"),
      { kinds: ["Pod"], pageSize: 5, minBackoffMs: 20, maxBackoffMs: 50 },
    );
    await watch.start();
    return { log, state, events };
  }

  it("delivers each object once, a page before the last page is asked for", async function () {
    const { log, state, events } = await run(() => false);
    assert.equal(state.size, PODS);
    assert.equal(events.length, PODS);
    assert.ok(events.every(([t]) => t === "add"));
    assert.equal(new Set(events.map(([, n]) => n)).size, PODS);
    const pages = log.filter((l) => l.startsWith("request /api/v1/pods?limit=5"));
    assert.equal(pages.length, Math.ceil(PODS / 5));
    // The first page's objects were with the hooks before the last page was asked for.
    assert.ok(log.indexOf("add p-00") < log.lastIndexOf(pages.at(-1) ?? ""), log.join("\n"));
    // Watch events after the list still arrive.
    api.store.create("pods", pod(40), { namespace: "default" });
    await waitFor(() => state.has("p-40"), "the watch event of p-40");
    assert.equal(events.length, PODS + 1);
  });

  it("a list failing part way takes back what it delivered; the retry delivers everything once", async function () {
    let failed = 0;
    let continued = 0;
    const { state, events } = await run((path) => {
      // The third page, the first time it is asked for.
      if (!path.includes("continue=")) return false;
      continued++;
      if (continued === 2) {
        failed++;
        return true;
      }
      return false;
    });
    assert.equal(failed, 1);
    assert.equal(state.size, PODS);
    const deletes = events.filter(([t]) => t === "delete").map(([, n]) => n);
    assert.ok(deletes.length >= 5, `deletes: ${deletes.join(",")}`);
    // Net: every object present once.
    assert.deepEqual(
      [...state.keys()].sort(),
      Array.from({ length: PODS }, (_v, i) => pod(i).metadata).map((m) => (m as { name: string }).name),
    );
  });
});
