/**
 * Native routing on the lab with real packets (one underlay bridge): nodes n1 and n2 run
 * `--routing native`, n3 stays in vxlan mode (a mixed cluster, as while nodes switch). A capture on
 * the underlay (tcpdump on the bridge port of n1) shows pod addresses and no VXLAN between the
 * native nodes, and VXLAN from the vxlan node; the agent's routes carry protocol 94; pods get the
 * uplink's MTU; policy holds; a packet claiming n1's pod but sent from another MAC is dropped on n2;
 * switching n3 to native under held connections keeps them.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ip, ipJson, listRoutes } from "../../loader/index.js";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { netnsName } from "../../lab/topology.js";
import { exchange, holdConnection, release } from "../../lab/workload/workload-client.js";
import type { AgentStatus } from "../../maps/agent-api.js";
import { MetricsMap } from "../../maps/metrics.js";
import { hooksIn } from "../helpers/hooks.js";
import { eventually, useLab } from "../helpers/lab.js";

/** tcpdump on interface `ifname` of namespace `netns`, lines collected until stop(). */
class Capture {
  readonly lines: string[] = [];
  readonly #proc: ChildProcess;
  #buf = "";

  constructor(netns: string, ifname: string, filter: string) {
    this.#proc = spawn(
      "nsenter",
      [`--net=/var/run/netns/${netns}`, "tcpdump", "-nn", "-l", "-i", ifname, filter],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    this.#proc.stdout?.on("data", (d: Buffer) => {
      this.#buf += d.toString();
      const parts = this.#buf.split("\n");
      this.#buf = parts.pop() ?? "";
      this.lines.push(...parts);
    });
  }

  /** Resolves once tcpdump listens (it has no ready signal: a short pause). */
  static async start(netns: string, ifname: string, filter: string): Promise<Capture> {
    const c = new Capture(netns, ifname, filter);
    await sleep(800);
    return c;
  }

  async stop(): Promise<string[]> {
    await sleep(300);
    if (this.#proc.exitCode === null) {
      const done = new Promise((r) => this.#proc.once("close", r));
      this.#proc.kill("SIGTERM");
      await done;
    }
    return this.lines;
  }
}

async function status(node: LabNode): Promise<AgentStatus> {
  const res = await fetch(`http://${node.ip}:9879/v1/status`);
  return (await res.json()) as AgentStatus;
}

function spoofDrops(node: LabNode): bigint {
  using m = MetricsMap.openPinned(node.bpffsRoot);
  return m.get("drop_spoofed", "ingress").packets;
}

describe("e2e: native routing (no encapsulation) on one L2 segment, beside a vxlan node", function () {
  this.timeout(300000);
  const fx = useLab(0);
  let n1: LabNode;
  let n2: LabNode;
  let n3: LabNode;
  let a: LabPod;
  let b: LabPod;
  let c: LabPod;

  before(async function () {
    this.timeout(180000);
    n1 = await fx.lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
    n2 = await fx.lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
    n3 = await fx.lab.addNode({ waitReady: false, agentArgs: ["--routing=vxlan"] });
    await Promise.all([n1, n2, n3].map((n) => fx.lab.waitAgentReady(n, 60000)));
    a = await fx.lab.addPod({ namespace: "nat", name: "a", node: n1, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "nat", name: "b", node: n2, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: "nat", name: "c", node: n3, labels: { app: "c" } });
    for (const [x, y] of [
      [a, b],
      [b, a],
      [a, c],
      [c, a],
    ] as const)
      await eventually(
        `${x.name} reaches ${y.name}`,
        async () => (await fx.lab.probe(x, "TCP", y.ip, 8080, 300)).ok,
        20000,
      );
  });

  it("routes each other native node's pod CIDR via its address (proto 94), reports it as direct, and keeps the uplink's programs", async function () {
    const routes = await listRoutes({ netns: `/var/run/netns/${n1.netns}` });
    for (const other of [n2, n3]) {
      const r = routes.find((x) => x.dst === other.podCidr);
      assert.deepEqual(
        r && { gateway: r.gateway, dev: r.dev, protocol: r.protocol },
        { gateway: other.ip, dev: "eth0", protocol: "94" },
        `n1's route to ${other.name}'s pods`,
      );
    }
    const routes3 = await listRoutes({ netns: `/var/run/netns/${n3.netns}` });
    assert.equal(
      routes3.find((x) => x.dst === n1.podCidr)?.dev,
      "skn_vxlan",
      "the vxlan node still uses the overlay",
    );
    const s = await status(n1);
    assert.equal(s.routing, "native");
    assert.deepEqual(
      s.nodeRoutes.map((r) => `${r.node} ${r.source} ${r.via ?? "-"}`),
      [`${n2.name} direct ${n2.ip}`, `${n3.name} direct ${n3.ip}`],
    );
    const hooks = hooksIn(n1.netns);
    assert.equal(hooks.get("eth0 ingress")?.program, "skn_from_uplink");
    assert.equal(hooks.get("eth0 egress")?.program, "skn_to_uplink");
    assert.equal(hooksIn(n3.netns).get("eth0 egress"), undefined, "no egress program in vxlan mode");
  });

  it("gives pods the uplink's MTU (the conflist the agent wrote, and the pod's eth0)", async function () {
    const mtuOf = async (netns: string, dev: string) =>
      (await ipJson<{ mtu: number }[]>(["link", "show", dev], { netns: `/var/run/netns/${netns}` }))[0]?.mtu;
    const uplinkMtu = await mtuOf(n1.netns, "eth0");
    const conf = JSON.parse(readFileSync(join(n1.confDir, "10-skein.conflist"), "utf8")) as {
      plugins: { mtu: number }[];
    };
    assert.equal(conf.plugins[0]?.mtu, uplinkMtu);
    assert.equal(await mtuOf(a.netns, "eth0"), uplinkMtu);
    assert.equal(await mtuOf(c.netns, "eth0"), (uplinkMtu ?? 0) - 50, "the vxlan node's pods: 50 less");
    // A full-size packet crosses unfragmented (DF): 1472 bytes of ICMP payload at MTU 1500.
    const big = await new Promise<number | null>((resolve) => {
      const p = spawn("nsenter", [
        `--net=/var/run/netns/${a.netns}`,
        "ping",
        "-c",
        "2",
        "-M",
        "do",
        "-s",
        String((uplinkMtu ?? 1500) - 28),
        "-W",
        "2",
        b.ip,
      ]);
      p.on("close", resolve);
    });
    assert.equal(big, 0, "a full-MTU ping with DF crosses nodes");
  });

  it("carries TCP, UDP and ICMP both ways with pod addresses on the wire and no VXLAN between native nodes", async function () {
    const cap = await Capture.start(netnsName(fx.lab.id, "u"), `n${n1.index}`, "ip");
    try {
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        assert.ok((await fx.lab.probe(from, "ICMP", to.ip, 0)).ok, `ping ${from.name} → ${to.name}`);
        const tcp = await fx.lab.probe(from, "TCP", to.ip, 8080);
        assert.ok(tcp.ok, tcp.error);
        assert.equal(tcp.reply?.peer, from.ip, "the server sees the pod's own address");
        assert.ok((await fx.lab.probe(from, "UDP", to.ip, 5353)).ok, `udp ${from.name} → ${to.name}`);
      }
      const t = await fx.lab.transfer(a, b.ip, 8080, 4 * 1024 * 1024, 1400);
      assert.ok(t.ok, t.error);
    } finally {
      await cap.stop();
    }
    const between = (x: string, y: string) =>
      cap.lines
        .filter((l) => l.includes(` ${x}.`) || l.includes(` ${x} >`))
        .filter((l) => l.includes(`> ${y}`));
    assert.ok(
      between(a.ip, b.ip).length > 0,
      `a → b with pod addresses on the wire:\n${cap.lines.slice(0, 5).join("\n")}`,
    );
    assert.ok(between(b.ip, a.ip).length > 0, "b → a with pod addresses on the wire");
    assert.ok(cap.lines.some((l) => l.includes(`${a.ip} > ${b.ip}: ICMP echo request`)));
    const vxlan = cap.lines.filter((l) => /\.(4789|8472)[: ]/.test(l) || /VXLAN/i.test(l));
    assert.deepEqual(vxlan, [], "no VXLAN between the native nodes");
  });

  it("the vxlan node and the native nodes reach each other (mixed cluster); the vxlan node still encapsulates", async function () {
    const cap = await Capture.start(netnsName(fx.lab.id, "u"), `n${n1.index}`, "ip");
    try {
      for (const [from, to] of [
        [a, c],
        [c, a],
        [b, c],
        [c, b],
      ] as const) {
        const tcp = await fx.lab.probe(from, "TCP", to.ip, 8080);
        assert.ok(tcp.ok, `${from.name} → ${to.name}: ${tcp.error ?? ""}`);
        assert.equal(tcp.reply?.peer, from.ip);
      }
    } finally {
      await cap.stop();
    }
    assert.ok(
      cap.lines.some((l) => l.includes(`${n3.ip}.`) && l.includes(`> ${n1.ip}.4789`)),
      "n3 sends VXLAN to n1 as before",
    );
  });

  it("enforces NetworkPolicy across nodes: deny-all on b, then allow from app=a only", async function () {
    const policy = (name: string, from: Record<string, string>[] | null) => ({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { namespace: "nat", name },
      spec: {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ...(from === null
          ? {}
          : { ingress: [{ _from: from.map((l) => ({ podSelector: { matchLabels: l } })) }] }),
      },
    });
    await fx.lab.applyPolicy(policy("deny-b", null));
    try {
      await eventually("a → b denied", async () => !(await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 8000);
      assert.ok(!(await fx.lab.probe(a, "UDP", b.ip, 5353, 500)).ok, "UDP denied too");
      assert.ok(!(await fx.lab.probe(c, "TCP", b.ip, 8080, 500)).ok, "from the vxlan node too");
      assert.ok((await fx.lab.probe(b, "TCP", a.ip, 8080)).ok, "b's egress is not restricted");
      await fx.lab.applyPolicy(policy("allow-a", [{ app: "a" }]));
      await eventually("a → b allowed", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 8000);
      assert.ok(!(await fx.lab.probe(c, "TCP", b.ip, 8080, 500)).ok, "c is still denied");
    } finally {
      await fx.lab.deletePolicy("nat", "deny-b").catch(() => undefined);
      await fx.lab.deletePolicy("nat", "allow-a").catch(() => undefined);
    }
    await eventually(
      "c → b allowed again",
      async () => (await fx.lab.probe(c, "TCP", b.ip, 8080, 300)).ok,
      8000,
    );
  });

  it("drops on n2 a packet claiming a's address (n1's pod) sent from another MAC, and counts it", async function () {
    // The world namespace sits on the same bridge: it pings b with a's address as its source.
    const world = fx.lab.state.world!.netns;
    const w = { netns: `/var/run/netns/${world}` };
    const before = spoofDrops(n2);
    await ip(["addr", "add", `${a.ip}/32`, "dev", "lo"], w);
    await ip(["route", "add", n2.podCidr, "via", n2.ip], w);
    try {
      const code = await new Promise<number | null>((resolve) => {
        const p = spawn("nsenter", [
          `--net=${w.netns}`,
          "ping",
          "-c",
          "3",
          "-i",
          "0.2",
          "-W",
          "1",
          "-I",
          a.ip,
          b.ip,
        ]);
        p.on("close", resolve);
      });
      assert.notEqual(code, 0, "no answer to the spoofed pings");
      assert.ok(spoofDrops(n2) >= before + 3n, `drop_spoofed on n2: ${spoofDrops(n2)} (before ${before})`);
    } finally {
      await ip(["route", "del", n2.podCidr, "via", n2.ip], w).catch(() => undefined);
      await ip(["addr", "del", `${a.ip}/32`, "dev", "lo"], w).catch(() => undefined);
    }
    assert.ok((await fx.lab.probe(a, "ICMP", b.ip, 0)).ok, "the real a still reaches b");
  });

  it("switching n3 from vxlan to native and back (agent restart) keeps held connections of every node's pods", async function () {
    const held: { from: LabPod; to: LabPod; id: number }[] = [];
    for (const [from, to] of [
      [a, b],
      [b, a],
      [a, c],
      [c, a],
      [b, c],
    ] as const) {
      const h = await holdConnection(from.control, to.ip, 8080);
      assert.ok(h.ok && h.id !== undefined, h.error);
      held.push({ from, to, id: h.id });
    }
    const exchangeAll = async (when: string) => {
      for (const h of held) {
        const r = await exchange(h.from.control, h.id, 3000);
        assert.ok(r.ok, `held ${h.from.name} → ${h.to.name} ${when}: ${r.error ?? ""}`);
      }
    };
    try {
      await exchangeAll("before the switch");
      for (const mode of ["native", "vxlan"] as const) {
        await fx.lab.signalAgent(n3, "SIGTERM");
        fx.lab.startAgent(n3, [`--routing=${mode}`]);
        await fx.lab.waitAgentReady(n3, 60000);
        await eventually(
          `n3's route to n1's pods is ${mode}'s`,
          async () => {
            const r = (await listRoutes({ netns: `/var/run/netns/${n3.netns}` })).find(
              (x) => x.dst === n1.podCidr,
            );
            return mode === "native" ? r?.protocol === "94" : r?.dev === "skn_vxlan";
          },
          10000,
        );
        await exchangeAll(`after switching n3 to ${mode}`);
        for (const [from, to] of [
          [c, a],
          [a, c],
        ] as const)
          assert.ok(
            (await fx.lab.probe(from, "TCP", to.ip, 8080)).ok,
            `new ${from.name} → ${to.name} in ${mode}`,
          );
      }
    } finally {
      for (const h of held) await release(h.from.control, h.id);
    }
  });
});
