/**
 * Debian's kubectl 1.20 against Services and EndpointSlices on the lab API server (with the
 * EndpointSlice controller running, as lab-apiserver's main does): `create service clusterip|
 * nodeport` (their exact request shapes), `get` tables, `create -f` with validation on, `apply`
 * (strategic merge on ports by port), `delete`, and the server's 422s as kubectl prints them.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKubeconfig } from "../../../lab/apiserver/kubeconfig.js";
import type { JsonObject } from "../../../lab/apiserver/json.js";
import { startLabApiServer, type LabApiServer } from "../../../lab/apiserver/server.js";
import {
  startEndpointSliceController,
  type EndpointSliceController,
} from "../../../lab/endpointslice-controller.js";
import { debianKubectl } from "./helpers.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runKubectl(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { env, timeout: 60_000, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const SEED = `
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIP: 10.244.0.5, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec:
  nodeName: node-b
  containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIP: 10.244.1.6, conditions: [{type: Ready, status: "True"}]}
`;

const SERVICES = `
apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  clusterIP: 10.96.0.10
  selector: {app: dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels: {kubernetes.io/service-name: manual}
addressType: IPv4
endpoints:
- addresses: [192.0.2.10]
  conditions: {ready: true}
ports: [{name: https, port: 443, protocol: TCP}]
`;

describe("lab apiserver: kubectl on Services and EndpointSlices", function () {
  this.timeout(120_000);
  let kubectl: string;
  let server: LabApiServer;
  let controller: EndpointSliceController;
  let dir: string;
  let env: NodeJS.ProcessEnv;

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
  const svc = (name: string): JsonObject =>
    server.store.getOrThrow("services", name, { namespace: "default" });

  before(async function () {
    kubectl = await debianKubectl(this);
  });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skein-kubectl-svc-"));
    server = await startLabApiServer({ seed: await file("seed.yaml", SEED), log: () => undefined });
    controller = startEndpointSliceController(server.store, { log: (l) => assert.fail(l) });
    await writeKubeconfig(join(dir, "kubeconfig"), server.url);
    env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, KUBECONFIG: join(dir, "kubeconfig") };
  });

  afterEach(async () => {
    controller.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("create service clusterip / nodeport, get svc and endpointslices", async () => {
    assert.equal(await ok("create", "service", "clusterip", "web", "--tcp=80:http"), "service/web created\n");
    assert.equal(
      await ok("create", "service", "nodeport", "web-np", "--tcp=8080:8080"),
      "service/web-np created\n",
    );
    assert.equal(
      await ok("create", "service", "clusterip", "web-hl", "--clusterip=None"),
      "service/web-hl created\n",
    );
    const web = svc("web").spec as JsonObject;
    assert.match(web.clusterIP as string, /^10\.96\./);
    const np = ((svc("web-np").spec as JsonObject).ports as JsonObject[])[0];
    assert.ok(np);
    assert.ok((np.nodePort as number) >= 30000 && (np.nodePort as number) <= 32767);

    const out = await ok("get", "svc");
    assert.match(out, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
    assert.match(
      out,
      new RegExp(
        `\\nweb\\s+ClusterIP\\s+${(web.clusterIP as string).replaceAll(".", "\\.")}\\s+<none>\\s+80/TCP\\s+\\d+s\\n`,
      ),
    );
    assert.match(
      out,
      new RegExp(
        `\\nweb-np\\s+NodePort\\s+10\\.96\\.\\S+\\s+<none>\\s+8080:${JSON.stringify(np.nodePort)}/TCP\\s+\\d+s\\n`,
      ),
    );
    assert.match(out, /\nweb-hl\s+ClusterIP\s+None\s+<none>\s+<none>\s+\d+s\n/);
    assert.match(await ok("get", "svc", "-o", "wide"), /SELECTOR\n[\s\S]*app=web-np/);
    assert.match(await ok("get", "all"), /service\/web\s+ClusterIP/);

    await controller.idle();
    const slices = await ok("get", "endpointslices", "-l", "kubernetes.io/service-name=web");
    assert.match(slices, /^NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE\n/);
    assert.match(slices, /\nweb-[0-9a-f]{5}\s+IPv4\s+8080\s+10\.244\.0\.5,10\.244\.1\.6\s+\d+s\n/);
    const json = JSON.parse(
      await ok("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json"),
    ) as JsonObject;
    const item = (json.items as JsonObject[])[0];
    assert.ok(item);
    assert.equal(item.kind, "EndpointSlice");
    assert.deepEqual(item.ports, [{ name: "80-http", port: 8080, protocol: "TCP" }]);
  });

  it("create -f with validation on, errors as kubectl prints them, delete", async () => {
    const path = await file("svc.yaml", SERVICES);
    assert.equal(
      await ok("create", "-f", path),
      "service/dns created\nservice/ext created\nendpointslice.discovery.k8s.io/manual-1 created\n",
    );
    assert.match(
      await ok("get", "svc", "ext"),
      /\next\s+ExternalName\s+<none>\s+db\.example\.com\s+<none>\s+\d+s\n/,
    );
    assert.match(
      await ok("get", "svc", "dns"),
      /\ndns\s+ClusterIP\s+10\.96\.0\.10\s+<none>\s+53\/UDP,53\/TCP\s+\d+s\n/,
    );
    const taken = await k("create", "service", "clusterip", "dns2", "--clusterip=10.96.0.10", "--tcp=53:53");
    assert.equal(taken.code, 1);
    assert.match(
      taken.stderr,
      /failed to create ClusterIP service: Service "dns2" is invalid: spec\.clusterIPs: Invalid value: \[\]string\{"10\.96\.0\.10"\}: failed to allocate IP 10\.96\.0\.10: provided IP is already allocated/,
    );
    const outOfRange = await k("create", "service", "nodeport", "np", "--tcp=80:80", "--node-port=80");
    assert.equal(outOfRange.code, 1);
    assert.match(
      outOfRange.stderr,
      /spec\.ports\[0\]\.nodePort: Invalid value: 80: provided port is not in the valid range\. The range of valid ports is 30000-32767/,
    );
    const typo = await k(
      "create",
      "-f",
      await file(
        "typo.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec: {prots: [{port: 80}]}\n",
      ),
    );
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /unknown field "prots" in io\.k8s\.api\.core\.v1\.ServiceSpec/);
    const badSlice = await k(
      "create",
      "-f",
      await file(
        "slice.yaml",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: [{addresses: [not-an-ip]}]\n",
      ),
    );
    assert.equal(badSlice.code, 1);
    assert.match(
      badSlice.stderr,
      /The EndpointSlice "s" is invalid: endpoints\[0\]\.addresses\[0\]: Invalid value: "not-an-ip": must be a valid IPv4 address/,
    );
    assert.equal(
      await ok("delete", "-f", path),
      'service "dns" deleted\nservice "ext" deleted\nendpointslice.discovery.k8s.io "manual-1" deleted\n',
    );
    assert.deepEqual(server.store.serviceAllocations, {
      clusterIPs: 0,
      nodePorts: 0,
      serviceCidr: "10.96.0.0/16",
    });
    assert.equal(
      await ok("create", "service", "clusterip", "dns2", "--clusterip=10.96.0.10", "--tcp=53:53"),
      "service/dns2 created\n",
    );
  });

  it("apply creates, then patches ports by port (a removed port goes), unchanged is unchanged", async () => {
    const v1 = `apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: metrics, port: 9100}
`;
    const path = await file("apply.yaml", v1);
    assert.equal(await ok("apply", "-f", path), "service/app created\n");
    const before = svc("app").spec as JsonObject;
    const httpNodePort = ((before.ports as JsonObject[])[0] as JsonObject).nodePort;
    await writeFile(path, v1.replace("{name: metrics, port: 9100}", "{name: admin, port: 9200}"));
    assert.equal(await ok("apply", "-f", path), "service/app configured\n");
    const after = svc("app").spec as JsonObject;
    assert.equal(after.clusterIP, before.clusterIP, "the ClusterIP stays");
    const ports = after.ports as JsonObject[];
    assert.deepEqual(
      ports.map((p) => [p.name, p.port]),
      [
        ["http", 80],
        ["admin", 9200],
      ],
    );
    assert.equal(ports[0]?.nodePort, httpNodePort, "the NodePort of a kept port stays");
    assert.equal(server.store.serviceAllocations.nodePorts, 2, "the removed port's NodePort was released");
    assert.equal(await ok("apply", "-f", path), "service/app unchanged\n");
    assert.equal(await ok("delete", "svc", "app"), 'service "app" deleted\n');
    await controller.idle();
    assert.equal(
      (await ok("get", "endpointslices", "-l", "kubernetes.io/service-name=app", "-o", "name")).trim(),
      "",
    );
  });
});
