/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call -- JSON from the wire is untyped; the assertions check its shape */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import type { JsonObject } from "../../../lab/apiserver/json.js";
import { applySeed, parseSeedText, readSeed } from "../../../lab/apiserver/seed.js";
import { startLabApiServer } from "../../../lab/apiserver/server.js";
import { LabStore } from "../../../lab/apiserver/store.js";
import { http, waitFor } from "./helpers.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "../../../lab/apiserver/main.js");

describe("lab apiserver: seeding", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skein-seed-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads multi-document YAML, List and XxxList, JSON, and directories recursively", async () => {
    await mkdir(join(dir, "sub"));
    // Pods first on purpose: namespaces are created before them whatever the file order.
    await writeFile(
      join(dir, "a-pods.yaml"),
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: late}\n---\n# empty doc\n---\n",
    );
    await writeFile(
      join(dir, "sub", "b.json"),
      JSON.stringify({
        apiVersion: "v1",
        kind: "NamespaceList",
        items: [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "late" } }],
      }),
    );
    await writeFile(
      join(dir, "c.yml"),
      "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Node, metadata: {name: n1}, spec: {podCIDR: not-a-cidr}}\n",
    );
    await writeFile(join(dir, "ignored.txt"), "not yaml: [");
    const objects = await readSeed([dir]);
    assert.deepEqual(
      objects.map((o) => o.object.kind),
      ["Pod", "Node", "Namespace"],
    );
    const store = new LabStore({ builtinNamespaces: [] });
    assert.equal(applySeed(store, objects), 3);
    assert.ok(store.get("pods", "p", { namespace: "late" }));
    assert.equal((store.getOrThrow("nodes", "n1").spec as JsonObject).podCIDR, "not-a-cidr");
  });

  it("names the file and document of a bad seed", async () => {
    assert.throws(() => parseSeedText("a: [", "x.yaml"), /x\.yaml document 1/);
    assert.throws(
      () => parseSeedText("- 1\n- 2\n", "y.yaml"),
      /y\.yaml document 1: expected a Kubernetes object/,
    );
    const store = new LabStore({ builtinNamespaces: [] });
    assert.throws(
      () =>
        applySeed(
          store,
          parseSeedText("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\n", "z.yaml"),
        ),
      /seed z\.yaml document 1: 404 NotFound/,
    );
    assert.throws(
      () => applySeed(store, parseSeedText("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "s.yaml")),
      /no served resource has kind Service/,
    );
    await assert.rejects(
      startLabApiServer({ seed: join(dir, "missing.yaml"), log: () => undefined }),
      /ENOENT/,
    );
  });
});

describe("lab apiserver: CLI (main.js)", function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skein-cli-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function launch(args: string[]): {
    child: ReturnType<typeof spawn>;
    stdout: () => string;
    stderr: () => string;
    exited: Promise<number | null>;
  } {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => {
        resolve(code);
      }),
    );
    return { child, stdout: () => out, stderr: () => err, exited };
  }

  it("listens, seeds, writes port and kubeconfig files, prints the URL, exits 0 on SIGTERM", async () => {
    await writeFile(join(dir, "seed.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: cli-node}\n");
    const portFile = join(dir, "port");
    const kubeconfig = join(dir, "kubeconfig");
    const p = launch([
      "--listen",
      "127.0.0.1:0",
      "--seed",
      join(dir, "seed.yaml"),
      "--seed",
      dir,
      "--history",
      "10",
      "--port-file",
      portFile,
      "--kubeconfig",
      kubeconfig,
    ]);
    try {
      await waitFor(() => p.stdout().includes("\n"), "the URL on stdout", 10_000);
      const url = p.stdout().trim();
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(`http://127.0.0.1:${(await readFile(portFile, "utf8")).trim()}`, url);
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfig);
      assert.equal(kc.getCurrentContext(), "skein-lab");
      assert.equal(kc.getCurrentCluster()?.server, url);
      const nodes = await http(url, "GET", "/api/v1/nodes");
      assert.deepEqual(
        nodes.json.items.map((n: { metadata: { name: string } }) => n.metadata.name),
        ["cli-node"],
      );
      // An open watch must not keep the process alive after SIGTERM.
      const watch = http(url, "GET", "/api/v1/nodes?watch=1");
      await waitFor(() => p.stderr().includes("listening"), "log line");
      await new Promise((r) => setTimeout(r, 100));
      p.child.kill("SIGTERM");
      assert.equal(await p.exited, 0);
      const w = await watch;
      assert.equal(w.status, 200);
      assert.match(w.text, /"ADDED"/);
      assert.match(p.stderr(), /SIGTERM, closing/);
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("exits 2 on bad usage and 1 when it cannot start", async () => {
    const bad = launch(["--listen", "nonsense"]);
    assert.equal(await bad.exited, 2);
    assert.match(bad.stderr(), /--listen wants HOST:PORT/);
    const unknown = launch(["--frobnicate"]);
    assert.equal(await unknown.exited, 2);
    const history = launch(["--history", "0"]);
    assert.equal(await history.exited, 2);
    const seed = launch(["--seed", join(dir, "missing.yaml")]);
    assert.equal(await seed.exited, 1);
    assert.match(seed.stderr(), /cannot start/);
  });
});
