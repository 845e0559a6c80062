/**
 * deploy/skein.yaml against the Kubernetes OpenAPI schemas (kubernetes-models' generated
 * validators), and against the code it deploys: RBAC verbs and resources equal what
 * agent/k8s/watch.ts watches, settings keys are agent flags, probes hit the paths agent/http.ts
 * serves on the port the settings give, the privileges are exactly the reviewed set, the mounts the
 * agent and its init containers use are there, and `kubectl kustomize deploy/` yields the same
 * objects as skein.yaml.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, ServiceAccount } from "kubernetes-models/v1";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { parse as parseYaml } from "yaml";
import { CNI_SERVER_BUNDLE, CNI_SERVER_SOCKET } from "../../maps/cni-server.js";
import {
  REPO,
  agentDaemonSet,
  agentSettings,
  exec,
  have,
  readManifests,
  the,
  type KubeObject,
} from "./helpers.js";

/** The schema-validating model class for each kind skein.yaml may hold. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
};

/** `flags` keys of agent/main.ts, read from its source: the settings file takes their camelCase. */
function agentFlags(): string[] {
  const src = readFileSync(join(REPO, "agent", "main.ts"), "utf8");
  const block = /const flags = \{([\s\S]*?)\} as const;/.exec(src)?.[1];
  if (block === undefined) throw new Error("agent/main.ts: no `const flags = {...} as const`");
  return [...block.matchAll(/^\s*"?([a-z][a-z-]*)"?\s*:\s*\{\s*type:/gm)].map((m) => m[1]!);
}

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** API paths agent/k8s/watch.ts lists and watches, as [apiGroup, resource]. */
function watchedResources(): [string, string][] {
  const src = readFileSync(join(REPO, "agent", "k8s", "watch.ts"), "utf8");
  return [...src.matchAll(/"\/(api\/v1|apis\/([a-z0-9.]+)\/v1)\/([a-z]+)"/g)].map((m) => [m[2] ?? "", m[3]!]);
}

function mountPath(c: IContainer, volume: string): string | undefined {
  return c.volumeMounts?.find((m) => m.name === volume)?.mountPath;
}

describe("deploy: skein.yaml", function () {
  const objects = readManifests();
  const { ds, agent, init } = agentDaemonSet(objects);
  const podSpec = ds.spec!.template.spec!;
  const settings = agentSettings(objects).values;
  const volume = (name: string) => podSpec.volumes?.find((v) => v.name === name);

  it("every object validates against its Kubernetes OpenAPI schema (kubernetes-models)", function () {
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "Namespace/skein-system",
        "ServiceAccount/skein-agent",
        "ClusterRole/skein-agent",
        "ClusterRoleBinding/skein-agent",
        "ConfigMap/skein-agent-config",
        "DaemonSet/skein-agent",
      ],
    );
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model !== undefined, `no schema for ${o.apiVersion} ${o.kind}`);
      new Model(o as never).validate();
    }
  });

  it("the validator does reject a broken object (so the check above means something)", function () {
    const broken = structuredClone(ds);
    (broken.spec!.template.spec!.containers[0]!.ports![0] as { containerPort: unknown }).containerPort =
      "9878";
    assert.throws(() => {
      new DaemonSet(broken).validate();
    }, /containerPort must be integer/);
    const noCaps = structuredClone(ds);
    (noCaps.spec!.template.spec!.containers[0]!.securityContext!.capabilities as { add: unknown }).add =
      "NET_ADMIN";
    assert.throws(() => {
      new DaemonSet(noCaps).validate();
    }, /capabilities\/add must be array/);
  });

  it("namespaced objects live in skein-system, which admits privileged pods (Pod Security)", function () {
    for (const o of objects.filter(
      (x) => !["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(x.kind),
    ))
      assert.equal(o.metadata.namespace, "skein-system", `${o.kind}/${o.metadata.name}`);
    assert.equal(
      the(objects, "Namespace").metadata.labels?.["pod-security.kubernetes.io/enforce"],
      "privileged",
    );
  });

  it("RBAC: exactly get/list/watch on exactly the resources agent/k8s/watch.ts watches", function () {
    const watched = watchedResources();
    assert.deepEqual(watched.map(([g, r]) => `${g}/${r}`).sort(), [
      "/namespaces",
      "/nodes",
      "/pods",
      "/services",
      "discovery.k8s.io/endpointslices",
      "networking.k8s.io/networkpolicies",
    ]);
    const role = the<IClusterRole>(objects, "ClusterRole", "skein-agent");
    const granted: string[] = [];
    for (const rule of role.rules ?? []) {
      assert.deepEqual([...rule.verbs].sort(), ["get", "list", "watch"], `verbs of ${JSON.stringify(rule)}`);
      assert.equal(rule.resourceNames, undefined);
      assert.equal(rule.nonResourceURLs, undefined);
      for (const g of rule.apiGroups ?? []) for (const r of rule.resources ?? []) granted.push(`${g}/${r}`);
    }
    assert.deepEqual(granted.sort(), watched.map(([g, r]) => `${g}/${r}`).sort());
    const binding = the<IClusterRoleBinding>(objects, "ClusterRoleBinding", "skein-agent");
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "skein-agent",
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: podSpec.serviceAccountName, namespace: "skein-system" },
    ]);
    the(objects, "ServiceAccount", podSpec.serviceAccountName);
  });

  it("settings: every key is an agent flag, and the agent reads them from the mounted ConfigMap", function () {
    const flags = agentFlags();
    assert.ok(
      flags.includes("health-addr") && flags.includes("bpffs-root"),
      `flags parsed: ${flags.join(",")}`,
    );
    const known = new Set(flags.map(camel));
    for (const key of Object.keys(settings))
      assert.ok(known.has(key), `agent.yaml key ${key} is no agent flag (${[...known].join(", ")})`);
    for (const key of [
      "bpffsRoot",
      "cniConfDir",
      "vxlanPort",
      "clusterCidr",
      "serviceCidr",
      "serviceLb",
      "policyMapEntries",
      "verdictEvents",
      "logLevel",
      "healthAddr",
      "metricsAddr",
    ])
      assert.ok(key in settings, `agent.yaml sets ${key}`);
    // No per-node value in a cluster-wide file: the node name comes from the downward API.
    assert.ok(!("nodeName" in settings) && !("kubeconfig" in settings));
    const script = (agent.command ?? []).join(" ");
    const configDir = mountPath(agent, "config");
    assert.equal(configDir, "/etc/skein");
    assert.match(script, /exec skein-agent --config \/etc\/skein\/agent\.yaml\s*$/);
    assert.equal(volume("config")?.configMap?.name, "skein-agent-config");
  });

  it("NODE_NAME comes from the downward API (spec.nodeName); hostNetwork", function () {
    assert.equal(podSpec.hostNetwork, true);
    const env = agent.env?.find((e) => e.name === "NODE_NAME");
    assert.deepEqual(env?.valueFrom?.fieldRef, { fieldPath: "spec.nodeName" });
    assert.match(readFileSync(join(REPO, "agent", "main.ts"), "utf8"), /process\.env\.NODE_NAME/);
  });

  it("probes: /healthz (startup, liveness) and /readyz (readiness) on the loopback port of healthAddr, paths agent/http.ts serves", function () {
    const healthAddr = String(settings.healthAddr);
    const m = /^(.*):(\d+)$/.exec(healthAddr);
    assert.ok(m !== null, healthAddr);
    assert.equal(m[1], "127.0.0.1", "health endpoints stay on loopback: /v1 is not for the network");
    const port = Number(m[2]);
    const http = readFileSync(join(REPO, "agent", "http.ts"), "utf8");
    for (const [probe, path] of [
      [agent.startupProbe, "/healthz"],
      [agent.livenessProbe, "/healthz"],
      [agent.readinessProbe, "/readyz"],
    ] as const) {
      assert.ok(probe?.httpGet !== undefined, `${path} probe is an httpGet`);
      assert.equal(probe.httpGet.path, path);
      assert.equal(probe.httpGet.port, port);
      // hostNetwork: the kubelet shares the node's network namespace, so it reaches the loopback listener.
      assert.equal(probe.httpGet.host, "127.0.0.1");
      assert.ok(http.includes(`case "${path}"`), `agent/http.ts serves ${path}`);
    }
    assert.ok(
      (agent.startupProbe?.failureThreshold ?? 0) * (agent.startupProbe?.periodSeconds ?? 0) >= 60,
      "a minute for the datapath to load",
    );
    const metricsPort = Number(/:(\d+)$/.exec(String(settings.metricsAddr))?.[1]);
    assert.deepEqual(agent.ports?.map((p) => p.containerPort).sort(), [metricsPort, port].sort());
  });

  it("privileges: the agent adds exactly NET_ADMIN, SYS_ADMIN, BPF, PERFMON, NET_BIND_SERVICE (BIRD's port 179) after dropping ALL; only mount-bpffs is privileged", function () {
    const sc = agent.securityContext!;
    assert.equal(sc.privileged, false);
    assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
    assert.deepEqual([...(sc.capabilities.add ?? [])].sort(), [
      "BPF",
      "NET_ADMIN",
      "NET_BIND_SERVICE",
      "PERFMON",
      "SYS_ADMIN",
    ]);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.appArmorProfile?.type, "Unconfined");
    assert.equal(sc.seccompProfile?.type, "RuntimeDefault");
    // The remount that lets the agent write net.* sysctls, before the agent starts.
    assert.match(
      (agent.command ?? []).join(" "),
      /mount -o remount,bind,rw \/proc\/sys\n\s*exec skein-agent/,
    );
    const names = init.map((c) => c.name);
    assert.deepEqual(names, ["mount-bpffs", "install-cni"]);
    assert.equal(init[0]!.securityContext?.privileged, true);
    const installCni = init[1]!;
    assert.equal(installCni.securityContext?.privileged, false);
    assert.deepEqual(installCni.securityContext.capabilities, { drop: ["ALL"] });
    assert.equal(installCni.securityContext.allowPrivilegeEscalation, false);
  });

  it("mounts: bpffs (Bidirectional for mount-bpffs, HostToContainer for the agent), CNI conf and bin dirs, matching the settings", function () {
    assert.equal(volume("bpffs")?.hostPath?.path, "/sys/fs/bpf");
    const bpffsOf = (c: IContainer) => c.volumeMounts?.find((m) => m.name === "bpffs");
    assert.deepEqual(
      [bpffsOf(init[0]!)?.mountPath, bpffsOf(init[0]!)?.mountPropagation],
      ["/sys/fs/bpf", "Bidirectional"],
    );
    assert.deepEqual(
      [bpffsOf(agent)?.mountPath, bpffsOf(agent)?.mountPropagation],
      ["/sys/fs/bpf", "HostToContainer"],
    );
    assert.ok(String(settings.bpffsRoot).startsWith("/sys/fs/bpf/"), "pins under the mounted bpffs");
    assert.equal(volume("cni-conf")?.hostPath?.path, "/etc/cni/net.d");
    assert.equal(mountPath(agent, "cni-conf"), settings.cniConfDir);
    assert.equal(volume("cni-bin")?.hostPath?.path, "/opt/cni/bin");
    const installCni = init[1]!;
    assert.deepEqual(installCni.command, [
      "/opt/skein/scripts/install-cni.sh",
      mountPath(installCni, "cni-bin"),
    ]);
    // readOnlyRootFilesystem: a writable /tmp for whatever needs one.
    assert.equal(mountPath(agent, "tmp"), "/tmp");
    assert.ok(volume("tmp")?.emptyDir !== undefined);
    // BIRD's directory (birdDir) is writable too.
    assert.equal(mountPath(agent, "bird"), "/run/skein");
    assert.ok(volume("bird")?.emptyDir !== undefined);
    // What the agent does not touch is not mounted in its container (see the DaemonSet's comment).
    const hostPathOf = (name: string) => volume(name)?.hostPath?.path;
    const agentHostPaths = (agent.volumeMounts ?? []).map((m) => hostPathOf(m.name));
    for (const path of ["/var/run/netns", "/var/lib/cni", "/run/xtables.lock", "/proc/sys/net", "/proc"])
      assert.ok(
        !agentHostPaths.some((p) => p !== undefined && (p === path || p.startsWith(`${path}/`))),
        `${path} is not mounted in the agent`,
      );
    for (const path of ["/run/xtables.lock", "/proc/sys/net"])
      assert.ok(!(podSpec.volumes ?? []).some((v) => v.hostPath?.path === path), `${path} is not mounted`);
  });

  it("cni-server: the protocol's entry on the default socket, the plugin's host paths, exactly NET_ADMIN, SYS_ADMIN, BPF, SYS_PTRACE", function () {
    const server = podSpec.containers.find((c) => c.name === "cni-server");
    assert.ok(server !== undefined, "a cni-server container");
    assert.equal(server.image, agent.image);
    const payload = "/opt/skein/dist/cni-install/skein-cni.d";
    assert.deepEqual(server.command, [
      `${payload}/node`,
      `${payload}/${CNI_SERVER_BUNDLE}`,
      "--socket",
      CNI_SERVER_SOCKET,
      "--host-proc",
      mountPath(server, "host-proc"),
    ]);
    const hostPath = (name: string) => podSpec.volumes?.find((v) => v.name === name)?.hostPath?.path;
    const mount = (name: string) => server.volumeMounts?.find((m) => m.name === name);
    // The socket's directory is the host's, where the shim connects.
    assert.equal(mountPath(server, "cni-run"), dirname(CNI_SERVER_SOCKET));
    assert.equal(hostPath("cni-run"), dirname(CNI_SERVER_SOCKET));
    assert.deepEqual(
      [mount("netns")?.mountPath, hostPath("netns"), mount("netns")?.mountPropagation],
      ["/var/run/netns", "/var/run/netns", "HostToContainer"],
    );
    assert.deepEqual([hostPath("host-proc"), mount("host-proc")?.readOnly], ["/proc", true]);
    // IPAM state at the same path as on the host: the fallback plugin and the server share it.
    assert.equal(mountPath(server, "cni-data"), settings.cniDataDir);
    assert.equal(hostPath("cni-data"), settings.cniDataDir);
    assert.deepEqual(
      [mount("bpffs")?.mountPath, mount("bpffs")?.mountPropagation],
      ["/sys/fs/bpf", "HostToContainer"],
    );
    const sc = server.securityContext!;
    assert.equal(sc.privileged, false);
    assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
    assert.deepEqual([...(sc.capabilities.add ?? [])].sort(), [
      "BPF",
      "NET_ADMIN",
      "SYS_ADMIN",
      "SYS_PTRACE",
    ]);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.ok(
      server.resources?.requests?.cpu !== undefined && server.resources.requests.memory !== undefined,
    );
  });

  it("scheduling: every node and taint, node-critical priority, one node at a time, requests on every container", function () {
    assert.deepEqual(podSpec.tolerations, [{ operator: "Exists" }]);
    assert.equal(podSpec.priorityClassName, "system-node-critical");
    assert.equal(ds.spec?.updateStrategy?.type, "RollingUpdate");
    assert.equal(ds.spec.updateStrategy.rollingUpdate?.maxUnavailable, 1);
    assert.ok((podSpec.terminationGracePeriodSeconds ?? 0) > 0);
    for (const c of [...init, agent]) {
      assert.ok(
        c.resources?.requests?.cpu !== undefined && c.resources.requests.memory !== undefined,
        `${c.name} has requests`,
      );
      assert.equal(c.image, agent.image, `${c.name} runs the Skein image`);
    }
    assert.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata?.labels);
  });

  it("kubectl kustomize deploy/ renders the same objects, with the image the DaemonSet names", async function () {
    const kustomization = parseYaml(readFileSync(join(REPO, "deploy", "kustomization.yaml"), "utf8")) as {
      resources: string[];
      images: { name: string; newTag: string }[];
    };
    assert.deepEqual(kustomization.resources, ["skein.yaml"]);
    assert.equal(`${kustomization.images[0]?.name}:${kustomization.images[0]?.newTag}`, agent.image);
    if (!(await have("kubectl"))) this.skip();
    const r = await exec("kubectl", ["kustomize", join(REPO, "deploy")]);
    assert.equal(r.code, 0, r.stderr);
    const rendered = r.stdout
      .split(/^---$/m)
      .map((d) => parseYaml(d) as KubeObject | null)
      .filter((d): d is KubeObject => d !== null);
    const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    const sorted = (list: KubeObject[]) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
    assert.deepEqual(sorted(rendered), sorted(objects));
  });
});
