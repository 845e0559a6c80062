/**
 * Debian's kubectl 1.20 (scripts/ensure-kubectl.sh) against the lab API server, with a
 * kubeconfig from writeKubeconfig(). Client-side validation stays on: kubectl downloads the
 * protobuf OpenAPI document and checks every object before sending it.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { access, constants, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKubeconfig } from "../../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../../lab/apiserver/json.js";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import { debianKubectl } from "./helpers.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runKubectl(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { env, timeout: timeoutMs, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const SEED = `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: node-a, labels: {node-role.kubernetes.io/control-plane: ""}}
  spec: {podCIDR: 10.244.0.0/24}
  status:
    conditions: [{type: Ready, status: "True"}]
    addresses: [{type: InternalIP, address: 192.0.2.10}]
    nodeInfo: {kubeletVersion: v1.30.0}
- apiVersion: v1
  kind: Node
  metadata: {name: node-b}
  spec: {podCIDR: 10.244.1.0/24}
---
apiVersion: v1
kind: Namespace
metadata: {name: team, labels: {tier: apps}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: nginx, image: nginx, ports: [{name: http, containerPort: 80}]}]
status: {phase: Running, podIP: 10.244.0.5, podIPs: [{ip: 10.244.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: team, labels: {app: db}}
spec: {nodeName: node-b, containers: [{name: pg, image: postgres}]}
status: {phase: Running, podIP: 10.244.1.7}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: team}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
`;

const CREATE = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
`;

const CREATE_IN_DEFAULT = `
apiVersion: v1
kind: Pod
metadata: {name: one, labels: {batch: x}}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: two, labels: {batch: x}}
spec: {containers: [{name: c, image: busybox}]}
`;

const UNKNOWN_FIELD = `
apiVersion: v1
kind: Pod
metadata: {name: typo, labelz: {a: b}}
spec: {containers: [{name: c, image: busybox}]}
`;

const TOP_LEVEL_TYPO = `
apiVersion: v1
kind: Pod
metadata: {name: toplevel}
sepc: {containers: [{name: c, image: busybox}]}
`;

const MISTYPED_SPEC = `
apiVersion: v1
kind: Pod
metadata: {name: typed}
spec: {nodeName: 5, containers: [{name: c, image: busybox}]}
`;

describe("lab apiserver: Debian's kubectl", function () {
  this.timeout(120_000);
  let kubectl: string;
  let server: LabApiServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const requests: string[] = [];

  const k = (...args: string[]): Promise<Run> => runKubectl(kubectl, args, env);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await k(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout;
  };
  const file = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  before(async function () {
    kubectl = await debianKubectl(this);
  });

  beforeEach(async () => {
    requests.length = 0;
    dir = await mkdtemp(join(tmpdir(), "skein-kubectl-"));
    const seed = await file("seed.yaml", SEED);
    server = await startLabApiServer({ seed, logRequests: true, log: (l) => requests.push(l) });
    await writeKubeconfig(join(dir, "kubeconfig"), server.url);
    // A private HOME: kubectl's discovery cache must not outlive this server (ports get reused).
    env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, KUBECONFIG: join(dir, "kubeconfig") };
  });

  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("is Debian's 1.20 client", async () => {
    const out = await ok("version", "--client", "--short");
    assert.match(out, /Client Version: v1\.20\./);
  });

  it("get nodes / ns / pods -A / netpol -A prints server-side tables", async () => {
    const nodes = await ok("get", "nodes");
    assert.match(nodes, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+POD-CIDR\n/);
    assert.match(nodes, /\nnode-a\s+Ready\s+control-plane\s+\d+s\s+v1\.30\.0\s+10\.244\.0\.0\/24\n/);
    assert.match(nodes, /\nnode-b\s+Unknown\s+<none>\s+\d+s\s+10\.244\.1\.0\/24\n/);
    const wide = await ok("get", "no", "-o", "wide");
    assert.match(wide, /INTERNAL-IP/);
    assert.match(wide, /192\.0\.2\.10/);
    const ns = await ok("get", "ns");
    assert.match(ns, /^NAME\s+STATUS\s+AGE\n/);
    for (const n of ["default", "kube-system", "team"]) assert.match(ns, new RegExp(`\\n${n}\\s+Active\\s`));
    const pods = await ok("get", "pods", "-A");
    assert.match(pods, /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\n/);
    assert.match(pods, /\nteam\s+db\s+0\/1\s+Running\s+0\s+\d+s\s+10\.244\.1\.7\s+node-b\n/);
    assert.match(pods, /\nteam\s+web\s+0\/1\s+Running\s+0\s+\d+s\s+10\.244\.0\.5\s+node-a\n/);
    const netpol = await ok("get", "netpol", "-A");
    assert.match(netpol, /^NAMESPACE\s+NAME\s+POD-SELECTOR\s+AGE\n/);
    assert.match(netpol, /\nteam\s+db-from-web\s+app=db\s+\d+s\n/);
    assert.ok(
      requests.some((l) => l.includes("/api/v1/pods?limit=500")),
      "kubectl listed all namespaces in one request",
    );
  });

  it("get -o json, -l, -n, single objects and jsonpath", async () => {
    const list = JSON.parse(await ok("get", "po", "-n", "team", "-o", "json")) as JsonObject;
    assert.equal(list.kind, "List");
    const items = list.items as JsonObject[];
    assert.deepEqual(
      items.map((i) => [i.kind, (i.metadata as JsonObject).name]),
      [
        ["Pod", "db"],
        ["Pod", "web"],
      ],
    );
    const sel = await ok("get", "pods", "-A", "-l", "app in (web),app!=db", "-o", "name");
    assert.equal(sel, "pod/web\n");
    const fsel = await ok("get", "pods", "-A", "--field-selector", "spec.nodeName=node-b", "-o", "name");
    assert.equal(fsel, "pod/db\n");
    assert.equal(await ok("get", "pod", "web", "-n", "team", "-o", "jsonpath={.status.podIP}"), "10.244.0.5");
    const node = JSON.parse(await ok("get", "node", "node-a", "-o", "json")) as JsonObject;
    assert.equal((node.spec as JsonObject).podCIDR, "10.244.0.0/24");
    const labels = await ok("get", "ns", "team", "--show-labels");
    assert.match(labels, /kubernetes\.io\/metadata\.name=team/);
    const missing = await k("get", "pod", "ghost", "-n", "team");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "ghost" not found/);
  });

  it("create -f a multi-document YAML with validation on", async () => {
    const path = await file("create.yaml", CREATE);
    const out = await ok("create", "-f", path);
    assert.equal(
      out,
      "namespace/shop created\npod/cart created\nnetworkpolicy.networking.k8s.io/deny-all created\n",
    );
    assert.ok(
      requests.some((l) => l.includes("/openapi/v2")),
      "kubectl fetched the OpenAPI document to validate",
    );
    assert.ok(server.store.get("pods", "cart", { namespace: "shop" }));
    assert.ok(server.store.get("networkpolicies", "deny-all", { namespace: "shop" }));
    const again = await k("create", "-f", path);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /AlreadyExists/);
  });

  it("client-side validation rejects unknown and mistyped fields, as against a real cluster", async () => {
    const typo = await k("create", "-f", await file("typo.yaml", UNKNOWN_FIELD));
    assert.equal(typo.code, 1);
    assert.match(
      typo.stderr,
      /unknown field "labelz" in io\.k8s\.apimachinery\.pkg\.apis\.meta\.v1\.ObjectMeta/,
    );
    const top = await k("create", "-f", await file("top.yaml", TOP_LEVEL_TYPO));
    assert.equal(top.code, 1);
    assert.match(top.stderr, /ValidationError\(Pod\): unknown field "sepc" in io\.k8s\.api\.core\.v1\.Pod/);
    assert.equal(server.store.get("pods", "typo", { namespace: "default" }), undefined);
    // spec is not described in the lab's OpenAPI: the server's own structural check answers 400.
    const typed = await k("create", "-f", await file("typed.yaml", MISTYPED_SPEC));
    assert.equal(typed.code, 1);
    assert.match(typed.stderr, /Error from server \(BadRequest\).*spec\.nodeName/);
  });

  it("delete -f, delete pod -n, delete ns (cascades)", async () => {
    const path = await file("default.yaml", CREATE_IN_DEFAULT);
    await ok("create", "-f", path);
    assert.equal(await ok("delete", "-f", path), 'pod "one" deleted\npod "two" deleted\n');
    assert.equal(server.store.list("pods", { namespace: "default" }).items.length, 0);
    assert.equal(await ok("delete", "pod", "web", "-n", "team"), 'pod "web" deleted\n');
    assert.equal(server.store.get("pods", "web", { namespace: "team" }), undefined);
    assert.equal(await ok("delete", "ns", "team"), 'namespace "team" deleted\n');
    assert.equal(server.store.list("pods", { namespace: "team" }).items.length, 0);
    assert.equal(server.store.list("networkpolicies").items.length, 0);
    const missing = await k("delete", "pod", "ghost");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NotFound/);
  });

  it("apply creates, then patches (strategic merge) what changed", async () => {
    const v1 = `apiVersion: v1
kind: Pod
metadata: {name: applied, labels: {v: "1"}}
spec: {containers: [{name: a, image: one}, {name: b, image: two}]}
`;
    const path = await file("apply.yaml", v1);
    assert.equal(await ok("apply", "-f", path), "pod/applied created\n");
    await writeFile(path, v1.replace('v: "1"', 'v: "2"').replace("image: two", "image: three"));
    assert.equal(await ok("apply", "-f", path), "pod/applied configured\n");
    const pod = server.store.getOrThrow("pods", "applied", { namespace: "default" });
    assert.deepEqual((pod.metadata as JsonObject).labels, { v: "2" });
    const containers = (pod.spec as JsonObject).containers as JsonObject[];
    assert.deepEqual(
      containers.map((c) => [c.name, c.image]),
      [
        ["a", "one"],
        ["b", "three"],
      ],
    );
    assert.ok(requests.some((l) => l.includes("method=PATCH")));
    assert.equal(await ok("apply", "-f", path), "pod/applied unchanged\n");
  });

  it("the preinstalled /usr/bin/kubectl (1.32 dispatcher) works too, when it runs offline", async function () {
    const dispatcher = "/usr/bin/kubectl";
    try {
      await access(dispatcher, constants.X_OK);
    } catch {
      this.skip();
    }
    const probe = await runKubectl(dispatcher, ["get", "ns", "-o", "name"], env, 60_000);
    if (probe.code !== 0 && !/namespace\//.test(probe.stdout)) {
      // Not Skein's required client: only note why it could not run here.
      this.skip();
    }
    assert.match(probe.stdout, /namespace\/team/);
    const pods = await runKubectl(dispatcher, ["get", "pods", "-A"], env);
    assert.equal(pods.code, 0, pods.stderr);
    assert.match(pods.stdout, /team\s+web\s+0\/1\s+Running/);
    const created = await runKubectl(dispatcher, ["create", "-f", await file("d.yaml", CREATE)], env);
    assert.equal(created.code, 0, created.stderr);
    const typo = await runKubectl(dispatcher, ["create", "-f", await file("d2.yaml", UNKNOWN_FIELD)], env);
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /labelz/);
    assert.ok(
      requests.some((l) => l.includes("/openapi/v3") && l.includes("code=404")),
      "asked for OpenAPI v3, got 404, fell back to v2",
    );
  });
});
