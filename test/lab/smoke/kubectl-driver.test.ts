/**
 * KubectlDriver's command lines and its reading of kubectl's answers, with a fake exec (no cluster):
 * the flags every call carries, the pods it applies (image, workload command, node pinning,
 * unprivileged), how a probe is built and judged (a kubectl failure is an error, never a denial),
 * the policy on the wire (`from`, not `_from`), and the namespace deletion.
 */
import assert from "node:assert/strict";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import {
  KubectlDriver,
  CONTROL_SOCKET,
  wireNetworkPolicy,
  type Exec,
  type ExecResult,
} from "../../../lab/smoke/kubectl-driver.js";
import { SMOKE_PORTS, smokePolicy } from "../../../lab/smoke/smoke.js";

interface Call {
  file: string;
  args: string[];
  input?: string;
  timeoutMs: number;
}

/** Records calls; answers with the first responder whose pattern matches the joined args. */
function fakeExec(responders: [RegExp, ExecResult | ((c: Call) => ExecResult)][]): {
  exec: Exec;
  calls: Call[];
} {
  const calls: Call[] = [];
  const exec: Exec = (file, args, options) => {
    const call: Call = {
      file,
      args,
      timeoutMs: options.timeoutMs,
      ...(options.input === undefined ? {} : { input: options.input }),
    };
    calls.push(call);
    const hit = responders.find(([re]) => re.test(args.join(" ")));
    if (hit === undefined)
      return Promise.resolve({ code: 1, stdout: "", stderr: `unexpected: ${args.join(" ")}` });
    return Promise.resolve(typeof hit[1] === "function" ? hit[1](call) : hit[1]);
  };
  return { exec, calls };
}

const ok = (stdout = ""): ExecResult => ({ code: 0, stdout, stderr: "" });

/** The parts of an applied Pod this test reads. */
interface AppliedPod {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    nodeName: string;
    securityContext: { runAsNonRoot: boolean };
    volumes: { emptyDir: { medium: string } }[];
    containers: {
      image: string;
      imagePullPolicy: string;
      command: string[];
      readinessProbe: { tcpSocket: unknown };
      securityContext: { capabilities: unknown };
      volumeMounts: { mountPath: string }[];
    }[];
  };
}

function node(name: string, ready: boolean, taint?: string): object {
  return {
    metadata: { name },
    spec: taint === undefined ? {} : { taints: [{ key: taint, effect: "NoSchedule" }] },
    status: { conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  };
}

describe("smoke: KubectlDriver command construction (fake exec)", function () {
  it("every call carries --kubeconfig and --context, and runs the configured kubectl", async function () {
    const { exec, calls } = fakeExec([[/get nodes/, ok(JSON.stringify({ items: [] }))]]);
    const d = new KubectlDriver({
      image: "img",
      kubectl: "/opt/k/kubectl",
      kubeconfig: "/etc/kc",
      context: "lab",
      exec,
    });
    await d.nodes();
    assert.deepEqual(
      calls.map((c) => [c.file, ...c.args]),
      [["/opt/k/kubectl", "--kubeconfig", "/etc/kc", "--context", "lab", "get", "nodes", "-o", "json"]],
    );
    const bare = fakeExec([[/get nodes/, ok(JSON.stringify({ items: [] }))]]);
    await new KubectlDriver({ image: "img", exec: bare.exec }).nodes();
    assert.deepEqual(bare.calls[0]?.args, ["get", "nodes", "-o", "json"]);
    assert.equal(bare.calls[0].file, "kubectl");
  });

  it("nodes(): ready and schedulable only, untainted (workers) before tainted (control plane)", async function () {
    const items = [
      node("cp", true, "node-role.kubernetes.io/control-plane"),
      node("w2", true),
      node("down", false),
      node("w1", true),
      { ...node("cordoned", true), spec: { unschedulable: true } },
    ];
    const { exec } = fakeExec([[/get nodes/, ok(JSON.stringify({ items }))]]);
    assert.deepEqual(await new KubectlDriver({ image: "img", exec }).nodes(), ["w1", "w2", "cp"]);
  });

  it("createPods(): one apply of Namespace + Pods, a wait, then the IPs from kubectl get", async function () {
    const got = {
      items: [
        { metadata: { name: "server" }, spec: { nodeName: "w1" }, status: { podIP: "10.244.1.7" } },
        { metadata: { name: "client" }, spec: { nodeName: "w2" }, status: { podIP: "10.244.2.9" } },
      ],
    };
    const { exec, calls } = fakeExec([
      [/^apply -f -$/, ok("applied")],
      [/^wait /, ok()],
      [/^get pods -n smk -o json$/, ok(JSON.stringify(got))],
    ]);
    const d = new KubectlDriver({
      image: "localhost/skein:0.1.0",
      imagePullPolicy: "Never",
      podReadyTimeoutMs: 60000,
      exec,
    });
    const pods = await d.createPods("smk", [
      { name: "server", node: "w1", labels: { app: "s" } },
      { name: "client", node: "w2", labels: { app: "c" } },
    ]);
    assert.deepEqual(pods, [
      { name: "server", ip: "10.244.1.7", node: "w1" },
      { name: "client", ip: "10.244.2.9", node: "w2" },
    ]);
    assert.deepEqual(
      calls.map((c) => c.args.join(" ")),
      ["apply -f -", "wait --for=condition=Ready pod --all -n smk --timeout=60s", "get pods -n smk -o json"],
    );
    const list = JSON.parse(calls[0]?.input ?? "") as { kind: string; items: AppliedPod[] };
    assert.equal(list.kind, "List");
    assert.deepEqual(
      list.items.map((i) => `${i.kind}/${i.metadata.name}`),
      ["Namespace/smk", "Pod/server", "Pod/client"],
    );
    const server = list.items[1]!;
    assert.equal(server.metadata.namespace, "smk");
    assert.equal(server.metadata.labels?.app, "s");
    assert.equal(server.metadata.labels["app.kubernetes.io/part-of"], "skein-smoke");
    const spec = server.spec!;
    assert.equal(spec.nodeName, "w1");
    const c = spec.containers[0]!;
    assert.equal(c.image, "localhost/skein:0.1.0");
    assert.equal(c.imagePullPolicy, "Never");
    // The lab workload, from the image, serving the smoke ports, with its control socket on the emptyDir.
    assert.deepEqual(c.command, [
      "node",
      "/opt/skein/dist/lab/workload/workload.js",
      "--name",
      "smk/server",
      "--control",
      CONTROL_SOCKET,
      "--tcp",
      String(SMOKE_PORTS.tcp),
      "--udp",
      String(SMOKE_PORTS.udp),
    ]);
    assert.deepEqual(c.readinessProbe.tcpSocket, { port: SMOKE_PORTS.tcp });
    assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.volumes[0]?.emptyDir.medium, "Memory");
    assert.equal(c.volumeMounts[0]?.mountPath, "/tmp");
    assert.ok(CONTROL_SOCKET.startsWith("/tmp/"));
  });

  it("createPods(): a pod that never gets ready fails with kubectl's view of the pods", async function () {
    const { exec } = fakeExec([
      [/^apply/, ok()],
      [
        /^wait /,
        { code: 1, stdout: "", stderr: "error: timed out waiting for the condition on pods/server" },
      ],
      [
        /^get pods -n smk -o wide$/,
        ok("NAME     READY   STATUS              NODE\nserver   0/1     ContainerCreating   w1"),
      ],
    ]);
    await assert.rejects(
      new KubectlDriver({ image: "i", exec }).createPods("smk", [{ name: "server", node: "w1", labels: {} }]),
      /not ready within 180 s: error: timed out.*\n.*ContainerCreating/s,
    );
  });

  it("probe(): kubectl exec of the probe CLI in the source pod's workload container", async function () {
    const { exec, calls } = fakeExec([
      [/(^| )exec /, ok('{"ok":true,"reply":{"name":"smk/server","peer":"10.244.2.9"},"ms":3}\n')],
    ]);
    const d = new KubectlDriver({ image: "i", kubeconfig: "/kc", exec });
    assert.equal(await d.probe("smk/client", "10.244.1.7", 8080, "UDP", 1500), true);
    assert.deepEqual(calls[0]?.args, [
      "--kubeconfig",
      "/kc",
      "exec",
      "-n",
      "smk",
      "client",
      "-c",
      "workload",
      "--",
      "node",
      "/opt/skein/dist/lab/workload/probe-cli.js",
      "--control",
      CONTROL_SOCKET,
      "--protocol",
      "UDP",
      "--host",
      "10.244.1.7",
      "--port",
      "8080",
      "--timeout-ms",
      "1500",
    ]);
    assert.ok(calls[0].timeoutMs > 1500, "kubectl gets more time than the probe itself");
  });

  it("probe(): false only for the CLI's own 'not reached' (exit 1, ok:false); kubectl failures throw", async function () {
    const answers: ExecResult[] = [
      {
        code: 1,
        stdout: '{"ok":false,"error":"timeout","ms":1500}\n',
        stderr: "command terminated with exit code 1",
      },
      { code: 1, stdout: "", stderr: 'Error from server (NotFound): pods "client" not found' },
      { code: 2, stdout: "", stderr: "probe-cli: workload /tmp/skein-workload.sock: connect ENOENT" },
      { code: 0, stdout: "garbage", stderr: "" },
    ];
    let i = 0;
    const { exec } = fakeExec([[/^exec /, () => answers[i++]!]]);
    const d = new KubectlDriver({ image: "i", exec });
    assert.equal(await d.probe("smk/client", "10.0.0.1", 80, "TCP", 100), false);
    await assert.rejects(d.probe("smk/client", "10.0.0.1", 80, "TCP", 100), /NotFound/);
    await assert.rejects(d.probe("smk/client", "10.0.0.1", 80, "TCP", 100), /ENOENT/);
    await assert.rejects(d.probe("smk/client", "10.0.0.1", 80, "TCP", 100), /exit 0/);
    assert.throws(() => d.probeArgs("no-namespace", "10.0.0.1", 80, "TCP", 100), /namespace\/pod/);
  });

  it("applyPolicy(): kubectl apply of the policy as the API server's JSON (`from`, never `_from`)", async function () {
    const { exec, calls } = fakeExec([[/^apply -f -$/, ok()]]);
    await new KubectlDriver({ image: "i", exec }).applyPolicy(smokePolicy("smk"));
    const sent = JSON.parse(calls[0]?.input ?? "") as {
      apiVersion: string;
      kind: string;
      metadata: unknown;
      spec: { ingress: { from: unknown }[] };
    };
    assert.equal(sent.apiVersion, "networking.k8s.io/v1");
    assert.equal(sent.kind, "NetworkPolicy");
    assert.deepEqual(sent.metadata, { name: "smoke-server-ingress", namespace: "smk" });
    assert.ok(!(calls[0]?.input ?? "").includes("_from"));
    assert.deepEqual(sent.spec.ingress[0]?.from, [{ podSelector: { matchLabels: { app: "smoke-client" } } }]);
    const noPeers = JSON.parse(
      '{"spec":{"podSelector":{},"ingress":[{"ports":[{"port":1}]}]}}',
    ) as V1NetworkPolicy;
    assert.deepEqual(wireNetworkPolicy(noPeers).spec, {
      podSelector: {},
      ingress: [{ ports: [{ port: 1 }] }],
    });
  });

  it("createService(): kubectl apply of a ClusterIP Service on the smoke ports; pods reach it as name.namespace", async function () {
    const { exec, calls } = fakeExec([[/^apply -f -$/, ok()]]);
    const host = await new KubectlDriver({ image: "i", exec }).createService("smk", "smoke-server", {
      app: "smoke-server",
    });
    assert.equal(host, "smoke-server.smk");
    assert.deepEqual(JSON.parse(calls[0]?.input ?? ""), {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "smoke-server", namespace: "smk" },
      spec: {
        type: "ClusterIP",
        selector: { app: "smoke-server" },
        ports: [
          { name: "tcp", protocol: "TCP", port: SMOKE_PORTS.tcp, targetPort: SMOKE_PORTS.tcp },
          { name: "udp", protocol: "UDP", port: SMOKE_PORTS.udp, targetPort: SMOKE_PORTS.udp },
        ],
      },
    });
  });

  it("deleteNamespace(): waits for the namespace to be gone, tolerates it being gone already", async function () {
    const { exec, calls } = fakeExec([[/^delete namespace/, ok()]]);
    await new KubectlDriver({ image: "i", exec }).deleteNamespace("smk");
    assert.deepEqual(calls[0]?.args, [
      "delete",
      "namespace",
      "smk",
      "--ignore-not-found",
      "--wait=true",
      "--timeout=180s",
    ]);
    const failing = fakeExec([[/^delete/, { code: 1, stdout: "", stderr: "error: timed out waiting" }]]);
    await assert.rejects(
      new KubectlDriver({ image: "i", exec: failing.exec }).deleteNamespace("smk"),
      /timed out/,
    );
  });
});
