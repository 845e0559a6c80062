/**
 * The full resync repairs drift while events keep flowing: the agent (in process, the real pinned
 * datapath and maps under a unique bpffs root; overlay, routes and nftables faked, so nothing
 * leaves this process's namespace) against the lab API server seeded with 2,000 pods and 200
 * policies, resyncing every second. Behind its back bpftool alters, deletes and adds entries of
 * skn_ipcache and skn_policy; meanwhile pods are created through the API. The audit
 * finds exactly the drift, the next pass rewrites it, and every event lands in the kernel.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { Agent } from "../../agent/agent.js";
import { createLogger } from "../../agent/log.js";
import type { DatapathMaps, MovedAttachment } from "../../agent/node-datapath.js";
import { KernelDatapath } from "../../agent/node/kernel-datapath.js";
import { scalePod, scaleSeed, podIp } from "../../bench/scale-seed.js";
import { kubeconfigYaml } from "../../lab/apiserver/kubeconfig.js";
import { startLabApiServer, type LabApiServer } from "../../lab/apiserver/server.js";
import type { PinnedLoadReport } from "../../maps/datapath/pinned.js";
import { unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { IPCACHE_MAP, IpcacheMap, ipcacheCodec, ipcacheKeyString } from "../../maps/ipcache.js";
import { parsePrefix } from "../../maps/net.js";
import { pinPath } from "../../maps/pins.js";
import { POLICY_MAP, PolicyMap, policyCodec, policyKeyString } from "../../maps/policy.js";
import { PolicyEngine } from "../../policy/engine.js";
import { FakeNodeDatapath } from "../agent/fake-node-datapath.js";
import { waitFor } from "../lab/apiserver/helpers.js";
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

const hex = (b: Buffer): string[] => [...b].map((x) => x.toString(16).padStart(2, "0"));

describe("e2e: the full resync's audit repairs drift in the pinned maps while events flow", function () {
  this.timeout(180_000);
  let server: LabApiServer | undefined;

  before(async function () {
    requireRoot(this);
    server = await startLabApiServer({
      log: () => undefined,
      seedObjects: scaleSeed({ pods: 2_000, nodes: 20, policies: 200, node0Ip: NODE0_IP }),
    });
  });

  after(async function () {
    await server?.close();
  });

  it("finds what bpftool altered, deleted and added, rewrites only that, and programs every event meanwhile", async function () {
    const root = `/sys/fs/bpf/${uniqueName("skaud")}`;
    const confDir = mkdtempSync(join(tmpdir(), "sks-audit-"));
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml(server!.url));
    const kernel = new KernelDatapath({
      bpffsRoot: root,
      datapath: { policyMapEntries: 65536 },
      cniConfDir: confDir,
    });
    const datapath = new RealMapsDatapath(kernel);
    const logs: string[] = [];
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
      datapath: { policyMapEntries: 65536 },
      verdictEvents: false,
      resyncIntervalMs: 1_000,
      debounceMs: 5,
      policy: new PolicyEngine({ nodeName: "node-0" }),
      log: createLogger("info", (l) => logs.push(l)),
      nodeDatapath: datapath,
    });
    datapath.ready = () => agent.ready;
    let ipcache: IpcacheMap | undefined;
    let policy: PolicyMap | undefined;
    try {
      await agent.start();
      await agent.whenReady();
      ipcache = IpcacheMap.openPinned(root);
      policy = PolicyMap.openPinned(root);
      const ipcachePin = pinPath(root, IPCACHE_MAP);
      const policyPin = pinPath(root, POLICY_MAP);
      const bpftool = (...args: string[]) => execFileSync("bpftool", ["map", ...args], { stdio: "pipe" });

      // What the agent wrote, to compare with after the repair.
      const before = {
        ipcache: new Map([...ipcache.entries()].map(([k, v]) => [ipcacheKeyString(k), v])),
        policy: new Map([...policy.entries()].map(([k, v]) => [policyKeyString(k), v])),
      };
      assert.ok(
        before.ipcache.size > 2_000 && before.policy.size > 100,
        `${before.ipcache.size} / ${before.policy.size}`,
      );
      const seedPodIp = podIp(3, 5);
      const alteredIp = podIp(4, 6);
      const ipKey = (ip: string) => ipcacheCodec.key.encode(parsePrefix(ip));
      const [policyAltered, policyDeleted] = [...policy.entries()].slice(0, 2);
      assert.ok(policyAltered !== undefined && policyDeleted !== undefined);
      const auditedBefore = logs.filter((l) => l.includes("map drift found")).length;

      // Events flowing the whole time: pods created through the API, one every 20 ms.
      const flow = { on: true };
      const created: string[] = [];
      const pods = (async () => {
        for (let i = 0; flow.on; i++) {
          const ip = podIp(7, 1500 + i);
          const r = await fetch(`${server!.url}/api/v1/namespaces/ns-${i % 50}/pods`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(scalePod(`audit-${i}`, 200_000 + i, 7, ip, i % 200)),
          });
          assert.equal(r.status, 201, await r.text());
          created.push(ip);
          await new Promise((res) => setTimeout(res, 20));
        }
      })();

      // Behind the agent's back.
      bpftool(
        "update",
        "pinned",
        ipcachePin,
        "key",
        "hex",
        ...hex(ipKey(alteredIp)),
        "value",
        "hex",
        ...hex(ipcacheCodec.value.encode({ identity: 2, tunnelIp: null, cidrIdentity: 0, flags: 0 })),
      );
      bpftool("delete", "pinned", ipcachePin, "key", "hex", ...hex(ipKey(seedPodIp)));
      bpftool(
        "update",
        "pinned",
        ipcachePin,
        "key",
        "hex",
        ...hex(ipKey("10.250.0.9")),
        "value",
        "hex",
        ...hex(ipcacheCodec.value.encode({ identity: 9999, tunnelIp: null, cidrIdentity: 0, flags: 0 })),
      );
      bpftool(
        "update",
        "pinned",
        policyPin,
        "key",
        "hex",
        ...hex(policyCodec.key.encode(policyAltered[0])),
        "value",
        "hex",
        ...hex(policyCodec.value.encode({ ...policyAltered[1], ruleId: policyAltered[1].ruleId ^ 0x7fff })),
      );
      bpftool("delete", "pinned", policyPin, "key", "hex", ...hex(policyCodec.key.encode(policyDeleted[0])));

      // What the audits found (the drift may straddle two of them), summed per map and kind.
      const found = (map: string): string => {
        const sum = { altered: 0, extra: 0, missing: 0 };
        for (const l of logs
          .slice(0)
          .filter((x) => x.includes("map drift found") && x.includes(`map=${map}`)))
          for (const k of ["altered", "extra", "missing"] as const)
            sum[k] += Number(new RegExp(`${k}=(\\d+)`).exec(l)?.[1] ?? 0);
        return `altered=${sum.altered} extra=${sum.extra} missing=${sum.missing}`;
      };
      assert.equal(auditedBefore, 0, "nothing drifted before");
      await waitFor(
        () =>
          found("skn_ipcache") === "altered=1 extra=1 missing=1" &&
          found("skn_policy") === "altered=1 extra=0 missing=1",
        "the audits to find the drift",
        30_000,
      ).catch(() => assert.fail(`found: ipcache ${found("skn_ipcache")}, policy ${found("skn_policy")}`));

      // Repaired: the kernel holds what the agent wrote, the foreign entry is gone.
      const ipcacheNow = () => new Map([...ipcache!.entries()].map(([k, v]) => [ipcacheKeyString(k), v]));
      const ipEntry = (ip: string) => ipcacheNow().get(`${ip}/32`);
      await waitFor(
        () => {
          const a = ipEntry(alteredIp);
          const d = ipEntry(seedPodIp);
          return (
            a !== undefined &&
            a.identity === before.ipcache.get(`${alteredIp}/32`)?.identity &&
            d !== undefined &&
            d.identity === before.ipcache.get(`${seedPodIp}/32`)?.identity &&
            ipEntry("10.250.0.9") === undefined
          );
        },
        "the ipcache repaired",
        10_000,
      );
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
      await waitFor(
        () => {
          const pol = new Map([...policy!.entries()].map(([k, v]) => [policyKeyString(k), v]));
          return (
            same(pol.get(policyKeyString(policyAltered[0])), policyAltered[1]) &&
            same(pol.get(policyKeyString(policyDeleted[0])), policyDeleted[1])
          );
        },
        "the policy map repaired",
        10_000,
      );

      // Past the next resync's audit too.
      const n = created.length;
      await waitFor(() => created.length >= n + 60, "more pods created", 30_000);
      flow.on = false;
      await pods;
      // Every pod created meanwhile is in the kernel.
      await waitFor(
        () => {
          const now = ipcacheNow();
          return created.every((ip) => now.has(`${ip}/32`));
        },
        "every created pod in the ipcache",
        10_000,
      );
      assert.equal(agent.metrics.registry.getSingleMetric("skein_map_drift_total") !== undefined, true);
    } finally {
      ipcache?.close();
      policy?.close();
      await agent.stop();
      unloadPinnedDatapath(root);
      rmSync(root, { recursive: true, force: true });
      rmSync(confDir, { recursive: true, force: true });
    }
  });
});
