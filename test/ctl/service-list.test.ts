/**
 * skeinctl service list against a real pinned map set: the datapath loaded under its own bpffs
 * root, the Service maps filled by the agent's own writer (agent/services.ts through the pinned
 * maps), then the command in process, in both output forms. A slot pointing to no backend is
 * reported (exit 1).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { ServiceLbState } from "../../agent/services.js";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { PinnedLbMaps } from "../../maps/lb-apply.js";
import { serviceRows } from "../../ctl/commands/service.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";
import { ctlInProcess } from "./ctl-helpers.js";

describe("skeinctl service list (real pinned maps)", function () {
  this.timeout(60000);
  let root = "";

  before(function () {
    requireRoot(this);
    root = `/sys/fs/bpf/${uniqueName("skn-svcls-")}`;
    loadPinnedDatapath(root);
    using maps = PinnedLbMaps.open(root);
    const state = new ServiceLbState("n1", maps);
    state.adopt(maps);
    state.setNode("n1", ["198.18.0.11"]);
    state.upsertService({
      namespace: "demo",
      name: "web",
      type: "NodePort",
      clusterIPs: ["10.96.0.10"],
      ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }],
      sessionAffinity: "ClientIP",
      affinityTimeoutS: 60,
    });
    state.upsertSlice("web-1", {
      namespace: "demo",
      serviceName: "web",
      addressType: "IPv4",
      endpoints: [
        { addresses: ["10.244.1.2"], nodeName: "n2" },
        { addresses: ["10.244.0.2"], nodeName: "n1" },
      ],
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    });
    state.upsertService({
      namespace: "kube-system",
      name: "dns",
      clusterIPs: ["10.96.0.53"],
      ports: [{ name: "dns", port: 53, protocol: "UDP" }],
    });
    const r = state.apply();
    assert.equal(r.failed, 0);
  });

  after(function () {
    if (root !== "" && existsSync(root)) unloadPinnedDatapath(root);
  });

  it("--json: every frontend with its backends in slot order, local first, with state", async function () {
    const run = await ctlInProcess(["service", "list", "--bpffs-root", root, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as {
      frontend: string;
      type: string;
      flags: string[];
      count: number;
      backends: { address: string; state: string; local: boolean }[];
    }[];
    assert.deepEqual(
      rows.map((r) => r.frontend),
      ["10.96.0.10:80/TCP", "10.96.0.53:53/UDP", "198.18.0.11:30080/TCP"],
    );
    const cip = rows[0]!;
    assert.equal(cip.type, "ClusterIP");
    assert.deepEqual(cip.flags, ["affinity"]);
    assert.deepEqual(
      cip.backends.map((b) => [b.address, b.state, b.local]),
      [
        ["10.244.0.2:8080", "active", true],
        ["10.244.1.2:8080", "active", false],
      ],
    );
    assert.equal(rows[1]!.count, 0, "no endpoints: the frontend rejects");
    assert.equal(rows[2]!.type, "NodePort");
    assert.ok(rows[2]!.flags.includes("maglev"));
  });

  it("table: one line per backend, a Service without endpoints says it rejects", async function () {
    const run = await ctlInProcess(["service", "list", "--bpffs-root", root]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^ID\s+FRONTEND\s+TYPE\s+FLAGS\s+#\s+BACKEND$/m);
    assert.match(
      run.stdout,
      /10\.96\.0\.10:80\/TCP\s+ClusterIP\s+affinity \(60s\)\s+1\s+10\.244\.0\.2:8080 \(active, local\)/,
    );
    assert.match(run.stdout, /^\s+2\s+10\.244\.1\.2:8080 \(active\)$/m);
    assert.match(run.stdout, /10\.96\.0\.53:53\/UDP\s+ClusterIP\s+\(no backend: rejects\)/);
  });

  it("a datapath not loaded: the usual fix message", async function () {
    const run = await ctlInProcess(["service", "list", "--bpffs-root", `${root}-absent`]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /not loaded under .*-absent/);
  });

  it("a slot pointing to no backend is flagged (pure join)", function () {
    const rows = serviceRows(
      [
        [
          { addr: "10.96.0.1", port: 443, proto: 6 },
          { svcId: 3, count: 2, localCount: 0, flags: 0, affinityTimeoutS: 0 },
        ],
      ],
      new Map([["3#0", 9]]),
      new Map([[9, { addr: "10.0.0.1", port: 6443, proto: 6, flags: 1 }]]),
    );
    assert.deepEqual(
      rows[0]!.backends.map((b) => b.state),
      ["terminating", "missing"],
    );
  });
});
