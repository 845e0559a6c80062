/**
 * The agent is not in the packet path: SIGTERM and SIGKILL leave forwarding, policy and established
 * flows alone; a restart adopts what is pinned; an upgrade to a changed object swaps programs in
 * place (BPF_TC_F_REPLACE) without an interface ever being without one; skein-cni keeps wiring pods
 * while the agent is down.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { exchange, holdConnection, release } from "../../lab/workload/workload-client.js";
import { Program } from "../../loader/index.js";
import { PROGRAM_NAMES, pinPath } from "../../maps/pins.js";
import { hooksIn } from "../helpers/hooks.js";
import { eventually, useLab } from "../helpers/lab.js";

interface Traffic {
  stop(): Promise<{ probes: number; failed: number; broken: number; exchanges: number }>;
}

/** Held connections exchanging every 50 ms plus new connections every 20 ms, counting failures. */
async function startTraffic(
  lab: ReturnType<typeof useLab>["lab"],
  pairs: [LabPod, LabPod][],
): Promise<Traffic> {
  const held: { from: LabPod; id: number }[] = [];
  for (const [from, to] of pairs)
    for (let i = 0; i < 2; i++) {
      const h = await holdConnection(from.control, to.ip, 8080);
      assert.ok(h.ok && h.id !== undefined, h.error);
      held.push({ from, id: h.id });
    }
  const state = { running: true };
  let probes = 0;
  let failed = 0;
  let exchanges = 0;
  const broken = new Set<number>();
  const loops = [
    (async () => {
      while (state.running) {
        for (const h of held) {
          const r = await exchange(h.from.control, h.id, 2000);
          exchanges++;
          if (!r.ok) broken.add(h.id);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })(),
    (async () => {
      while (state.running) {
        for (const [from, to] of pairs) {
          const r = await lab.probe(from, "TCP", to.ip, 8080, 1000);
          probes++;
          if (!r.ok) failed++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
  ];
  return {
    async stop() {
      state.running = false;
      await Promise.all(loops);
      for (const h of held) await release(h.from.control, h.id);
      return { probes, failed, broken: broken.size, exchanges };
    },
  };
}

function filterIds(node: LabNode): Map<string, number> {
  return new Map([...hooksIn(node.netns)].map(([slot, h]) => [slot, h.progId]));
}

describe("e2e: agent restarts and upgrades under traffic", function () {
  this.timeout(180000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;
  let c: LabPod;
  let variantDir: string | undefined;

  before(async function () {
    a = await fx.lab.addPod({ namespace: "rst", name: "a", node: fx.nodes[0]!, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "rst", name: "b", node: fx.nodes[1]!, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: "rst", name: "c", node: fx.nodes[0]!, labels: { app: "c" } });
    // Policy in force throughout, so enforcement is part of what must survive.
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "only-a", namespace: "rst" },
      spec: {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: "a" } } }] }],
      },
    });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 15000);
    await eventually("c is denied b", async () => !(await fx.lab.probe(c, "TCP", b.ip, 8080, 300)).ok, 15000);
    variantDir = mkdtempSync(join(tmpdir(), "skein-variant-"));
  });

  after(function () {
    if (variantDir !== undefined) rmSync(variantDir, { recursive: true, force: true });
  });

  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    it(`${sig}: no established flow breaks, new flows keep working, policy stays enforced, the restart adopts`, async function () {
      const traffic = await startTraffic(fx.lab, [
        [a, b],
        [a, c],
        [c, a],
      ]);
      await new Promise((r) => setTimeout(r, 500));
      for (const n of fx.nodes) await fx.lab.signalAgent(n, sig);
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(
        !(await fx.lab.probe(c, "TCP", b.ip, 8080, 500)).ok,
        "policy enforced while the agents are down",
      );
      for (const n of fx.nodes) fx.lab.startAgent(n);
      await Promise.all(fx.nodes.map((n) => fx.lab.waitAgentReady(n)));
      await new Promise((r) => setTimeout(r, 500));
      const t = await traffic.stop();
      this.test!.title += ` (${t.exchanges} exchanges on 6 held connections, ${t.probes} new connections: ${t.broken} broken, ${t.failed} failed)`;
      assert.equal(t.broken, 0, "established connections broken");
      assert.equal(t.failed, 0, "new connections failed");
      assert.ok(t.probes > 20 && t.exchanges > 20);
      for (const n of fx.nodes)
        assert.match(
          readFileSync(n.agent!.log, "utf8"),
          /datapath ready .*skn_from_pod:adopted.*maps=.*skn_ipcache:reused/,
        );
    });
  }

  it("skein-cni wires a pod while its node's agent is down; it is reachable across nodes", async function () {
    const n1 = fx.nodes[0]!;
    await fx.lab.signalAgent(n1, "SIGKILL");
    try {
      const d = await fx.lab.addPod({ namespace: "rst", name: "d", node: n1, labels: { app: "d" } });
      assert.ok((await fx.lab.probe(d, "TCP", a.ip, 8080, 1000)).ok, "same node");
      await eventually(
        "d ↔ remote pod",
        async () =>
          (await fx.lab.probe(d, "TCP", fx.lab.state.nodes[1]!.ip, 8080, 500)).ok &&
          (await fx.lab.probe(b, "ICMP", d.ip, 0, 1000)).ok,
        5000,
      );
    } finally {
      fx.lab.startAgent(n1);
      await fx.lab.waitAgentReady(n1);
    }
  });

  it("upgrades to a changed object with traffic running: programs replaced in place on every interface", async function () {
    const variant = join(variantDir!, "skein-variant.bpf.o");
    // Same source, different code generation: a build whose instructions differ.
    execFileSync("clang-16", [
      "-g",
      "-O3",
      "-target",
      "bpf",
      "-mcpu=v3",
      "-Wall",
      "-Werror",
      "-D__TARGET_ARCH_x86",
      "-I/usr/include/x86_64-linux-gnu",
      "-Ibpf",
      "-c",
      "bpf/skein.bpf.c",
      "-o",
      variant,
    ]);
    const before = fx.nodes.map(filterIds);
    const oldIds = new Set(before.flatMap((m) => [...m.values()]));
    assert.ok(
      before.every((m) => m.size >= 4),
      "veths and the VXLAN device have filters",
    );
    const traffic = await startTraffic(fx.lab, [
      [a, b],
      [a, c],
      [c, a],
    ]);
    for (const n of fx.nodes) {
      await fx.lab.signalAgent(n, "SIGTERM");
      fx.lab.startAgent(n, [`--bpf-object=${variant}`]);
      await fx.lab.waitAgentReady(n);
    }
    await new Promise((r) => setTimeout(r, 500));
    const t = await traffic.stop();
    this.test!.title += ` (${t.exchanges} exchanges, ${t.probes} new connections: ${t.broken} broken, ${t.failed} failed)`;
    const after = fx.nodes.map(filterIds);
    for (const [i, m] of after.entries()) {
      assert.deepEqual(
        [...m.keys()].sort(),
        [...before[i]!.keys()].sort(),
        "the same interfaces carry filters",
      );
      const pinned = new Map(
        PROGRAM_NAMES.map((p) => {
          using prog = Program.openPinned(pinPath(fx.nodes[i]!.bpffsRoot, p));
          return [p, prog.info().id] as const;
        }),
      );
      const pinnedIds = new Set(pinned.values());
      for (const [slot, id] of m) assert.ok(pinnedIds.has(id), `${slot} runs a pinned program (${id})`);
      assert.ok(
        [...m.values()].some((id) => !oldIds.has(id)),
        "some filters moved to new programs",
      );
      assert.match(readFileSync(fx.nodes[i]!.agent!.log, "utf8"), /program replaced in place/);
    }
    assert.equal(t.broken, 0, "established connections broken during the upgrade");
    assert.equal(t.failed, 0, "new connections failed during the upgrade");
  });
});
