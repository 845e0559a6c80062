/**
 * Ready means programmed, at 10,000 pods: the agent (in process, the real pinned datapath and maps
 * under a unique bpffs root; overlay, routes and nftables faked, so nothing leaves this process's
 * namespace) against the lab API server seeded with 50 nodes, 10,000 pods and 1,000 policies. At
 * the moment ready turns true (no macrotask in between: no map write can land first), skn_ipcache
 * and skn_policy must equal what the cluster's initial state compiles to, computed independently
 * from the untrimmed seed objects. Repeated, since the bug this guards against was a race.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { Agent } from "../../agent/agent.js";
import { nodeView, podView } from "../../agent/k8s/views.js";
import { createLogger } from "../../agent/log.js";
import type { DatapathMaps, MovedAttachment } from "../../agent/node-datapath.js";
import { KernelDatapath } from "../../agent/node/kernel-datapath.js";
import { scaleSeed } from "../../bench/scale-seed.js";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import type { PinnedLoadReport } from "../../maps/datapath/pinned.js";
import { unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { ipcacheCodec, ipcacheKeyString } from "../../maps/ipcache.js";
import { policyKeyString, type PolicyEntry, type PolicyKey } from "../../maps/policy.js";
import { PolicyEngine } from "../../policy/engine.js";
import { buildIpcache } from "../../policy/ipcache-builder.js";
import { FakeNodeDatapath } from "../agent/fake-node-datapath.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const NODE0_IP = "198.19.0.2";

/** The fake's plumbing, the kernel's datapath and maps. */
class RealMapsDatapath extends FakeNodeDatapath {
  readonly #kernel: KernelDatapath;

  constructor(kernel: KernelDatapath) {
    super({ addresses: [NODE0_IP] });
    this.#kernel = kernel;
  }

  override load(): PinnedLoadReport {
    return this.#kernel.load();
  }

  override moveAttachments(report: PinnedLoadReport): Promise<MovedAttachment[]> {
    return this.#kernel.moveAttachments(report);
  }

  override openMaps(): DatapathMaps {
    return this.#kernel.openMaps();
  }
}

/** skn_policy as key → the rule an entry names (rule ids depend on the order policies arrived). */
function policyEntries(
  entries: Iterable<[PolicyKey, PolicyEntry]>,
  engine: PolicyEngine,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of entries) {
    const r = engine.rule(v.ruleId);
    out.set(policyKeyString(k), `${JSON.stringify(r)}|${v.flags}`);
  }
  return out;
}

function hexEntries<K, V>(
  entries: Iterable<[K, V]>,
  keyString: (k: K) => string,
  encode: (v: V) => Buffer,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of entries) out.set(keyString(k), encode(v).toString("hex"));
  return out;
}

function firstDifference(got: Map<string, string>, want: Map<string, string>): string {
  for (const [k, v] of want) if (got.get(k) !== v) return `${k}: ${got.get(k) ?? "missing"} ≠ ${v}`;
  for (const k of got.keys()) if (!want.has(k)) return `${k}: not expected`;
  return "none";
}

describe("e2e: ready only when programmed, at 10,000 pods and 1,000 policies", function () {
  this.timeout(300_000);
  const shape = { pods: 10_000, nodes: 50, policies: 1_000, node0Ip: NODE0_IP };
  const seed = scaleSeed(shape);
  let server: LabApiServer | undefined;
  let want: { ipcache: Map<string, string>; policy: Map<string, string> };

  before(async function () {
    requireRoot(this);
    server = await startLabApiServer({ log: () => undefined, seedObjects: seed });
    // The cluster's initial state, compiled from the whole objects (the agent sees trimmed ones).
    const engine = new PolicyEngine({ nodeName: "node-0" });
    const nodes = [];
    const pods = [];
    for (const o of seed) {
      if (o.kind === "Namespace") engine.upsertNamespace(o);
      if (o.kind === "NetworkPolicy") engine.upsertPolicy(o);
    }
    for (const o of seed) {
      if (o.kind === "Node") {
        const v = nodeView(o);
        if (v.ok) nodes.push(v.value);
      }
      if (o.kind === "Pod") {
        engine.upsertPod(o);
        const v = podView(o);
        if (v.ok) pods.push(v.value);
      }
    }
    const ipcache = buildIpcache({
      localNodeName: "node-0",
      localAddresses: [NODE0_IP],
      nodes,
      pods: pods.map((p) => ({
        ip: p.ip,
        nodeName: p.nodeName,
        identity: engine.podIdentity(p.namespace, p.name) ?? 4,
        flags: p.nodeName === "node-0" ? engine.localFlags(p.ip) : 0,
      })),
      cidrs: engine.cidrPrefixes(),
    });
    want = {
      ipcache: new Map(
        [...ipcache].map(([k, { entry }]) => [k, ipcacheCodec.value.encode(entry).toString("hex")]),
      ),
      policy: policyEntries(
        [...engine.desiredPolicy().values()].map(({ key, entry }) => [key, entry]),
        engine,
      ),
    };
    assert.ok(want.policy.size > 5_000, `a policy map worth the name (${want.policy.size} entries)`);
  });

  after(async function () {
    await server?.close();
  });

  for (const run of [1, 2, 3])
    it(`start ${run}: at the moment ready turns true, the maps equal the cluster's initial state`, async function () {
      const root = `/sys/fs/bpf/${uniqueName("sksr")}`;
      const confDir = mkdtempSync(join(tmpdir(), "sks-ready-"));
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml(server!.url));
      const kernel = new KernelDatapath({
        bpffsRoot: root,
        datapath: { policyMapEntries: 262144 },
        cniConfDir: confDir,
      });
      const datapath = new RealMapsDatapath(kernel);
      const agentEngine = new PolicyEngine({ nodeName: "node-0" });
      const agent = new Agent({
        nodeName: "node-0",
        kubeconfig: kc,
        bpffsRoot: root,
        cniConfDir: confDir,
        vxlanDevice: "skn_vxlan",
        vxlanPort: 4789,
        encap: "bpf",
        routing: "vxlan",
        clusterCidrs: [],
        datapath: { policyMapEntries: 262144 },
        verdictEvents: false,
        resyncIntervalMs: 3_600_000,
        debounceMs: 5,
        policy: agentEngine,
        log: createLogger("warn", () => undefined),
        nodeDatapath: datapath,
      });
      datapath.ready = () => agent.ready;
      try {
        const started = performance.now();
        const atReady = agent.whenReady().then(() => {
          // Synchronously, in the continuation of the ready transition.
          const maps = datapath.openMaps();
          try {
            return {
              ms: performance.now() - started,
              conflists: datapath.conflists.length,
              ipcache: hexEntries(maps.ipcache.entries(), ipcacheKeyString, (v) =>
                ipcacheCodec.value.encode(v),
              ),
              policy: policyEntries(maps.policy.entries(), agentEngine),
            };
          } finally {
            maps.close();
          }
        });
        await agent.start();
        const got = await atReady;
        assert.equal(
          got.ipcache.size,
          want.ipcache.size,
          `ipcache entries at ready (${got.ms.toFixed(0)} ms)`,
        );
        assert.equal(firstDifference(got.ipcache, want.ipcache), "none", "ipcache at ready");
        assert.equal(got.policy.size, want.policy.size, "policy entries at ready");
        assert.equal(firstDifference(got.policy, want.policy), "none", "policy at ready");
        assert.equal(got.conflists, 1, "the conflist is written with ready, not before");
        // Writes before ready: every one of them recorded while ready was false.
        assert.ok(datapath.conflists.length === 1);
      } finally {
        await agent.stop();
        unloadPinnedDatapath(root);
        rmSync(root, { recursive: true, force: true });
        rmSync(confDir, { recursive: true, force: true });
      }
    });
});
