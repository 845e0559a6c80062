/**
 * Native routing across racks on the lab (`npm run lab -- --routing native --racks 2`): two
 * underlay subnets joined by a router namespace whose BIRD reflects routes, three nodes alternating
 * racks, each agent running BIRD. Real packets through Skein's native datapath: same-rack nodes
 * use direct routes (proto 94), the other rack BGP's (proto bird); skeinctl shows where each route
 * came from and the sessions; a SIGKILLed BIRD under traffic loses no route and no packet and the
 * agent restarts it; a prefix the router announces that is no node's pod CIDR is refused and
 * logged, never routed.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ip } from "../../loader/index.js";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { DIST } from "../../lab/lab.js";
import { renderRouterConfig } from "../../lab/bgp-router.js";
import { routerAddr } from "../../lab/topology.js";
import type { AgentStatus } from "../../maps/agent-api.js";
import { eventually, useLab } from "../helpers/lab.js";

const BOGUS = "10.99.0.0/24";

function run(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, out: stdout + stderr });
    });
  });
}

function pingFor(
  netns: string,
  to: string,
  count: number,
  intervalS: number,
): Promise<{ sent: number; received: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "nsenter",
      [
        `--net=/var/run/netns/${netns}`,
        "ping",
        "-n",
        "-q",
        "-i",
        String(intervalS),
        "-W",
        "1",
        "-c",
        String(count),
        to,
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (m === null) reject(new Error(`ping output: ${out}`));
      else resolve({ sent: Number(m[1]), received: Number(m[2]) });
    });
  });
}

describe("e2e: native routing across two racks, BGP through BIRD (lab --racks 2)", function () {
  this.timeout(240000);
  const fx = useLab(3, { racks: 2, agentArgs: ["--routing=native"] });
  let a: LabPod; // n1, rack 0
  let b: LabPod; // n2, rack 1
  let c: LabPod; // n3, rack 0

  const status = async (n: LabNode): Promise<AgentStatus> =>
    (await (await fetch(fx.lab.agentUrl(n, "/v1/status"))).json()) as AgentStatus;
  const ctl = (n: LabNode, args: string[]) =>
    run("nsenter", [
      `--net=/var/run/netns/${n.netns}`,
      process.execPath,
      join(DIST, "ctl", "main.js"),
      ...args,
      `--agent=${fx.lab.agentUrl(n, "")}`,
      `--bpffs-root=${n.bpffsRoot}`,
    ]);

  before(async function () {
    const [n1, n2, n3] = fx.nodes;
    a = await fx.lab.addPod({ namespace: "racks", name: "a", node: n1!, labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "racks", name: "b", node: n2!, labels: { app: "b" } });
    c = await fx.lab.addPod({ namespace: "racks", name: "c", node: n3!, labels: { app: "c" } });
    for (const n of fx.nodes)
      await eventually(
        `${n.name} has a route to every other node's pods`,
        async () => (await status(n)).nodeRoutes.every((r) => r.node === n.name || r.source !== "none"),
        60000,
        250,
      );
  });

  it("routes same-rack nodes directly and the other rack through BGP, as skeinctl node list and status show", async function () {
    const racks = fx.lab.state.racks!;
    for (const n of fx.nodes) {
      const s = await status(n);
      assert.equal(s.bgp?.sessions.length, 1);
      assert.equal(s.bgp.sessions[0]!.state, "Established");
      assert.equal(s.bgp.sessions[0]!.peer, routerAddr(racks.subnets[n.rack!]!));
      for (const r of s.nodeRoutes.filter((x) => x.node !== n.name)) {
        const other = fx.nodes.find((x) => x.name === r.node)!;
        if (other.rack === n.rack) assert.equal(r.source, "direct", `${n.name} → ${r.node}`);
        else {
          assert.equal(r.source, "bgp", `${n.name} → ${r.node}`);
          assert.equal(r.protocol, "bird");
          assert.equal(r.via, routerAddr(racks.subnets[n.rack!]!));
          assert.equal(r.peer, routerAddr(racks.subnets[n.rack!]!));
        }
      }
    }
    const list = await ctl(fx.nodes[0]!, ["node", "list"]);
    assert.equal(list.code, 0, list.out);
    assert.match(
      list.out,
      new RegExp(`lab-n2 .* bgp \\(${routerAddr(racks.subnets[0]!).replaceAll(".", "\\.")}\\)`),
    );
    assert.match(list.out, /lab-n3 .* direct/);
    const st = await ctl(fx.nodes[0]!, ["status"]);
    assert.match(st.out, /BGP: +AS 64512, router id /);
    assert.match(st.out, /Established/);
  });

  it("carries pod traffic across the racks both ways, and within a rack", async function () {
    for (const [from, to] of [
      [a, b],
      [b, a],
      [b, c],
      [a, c],
    ] as const) {
      const r = await fx.lab.probe(from, "TCP", to.ip, 8080);
      assert.ok(r.ok, `${from.name} → ${to.name}: ${r.error}`);
      assert.equal(r.reply?.peer, from.ip, "no masquerade between pods");
      assert.ok((await fx.lab.probe(from, "ICMP", to.ip, 0)).ok, `ping ${from.name} → ${to.name}`);
    }
  });

  it("keeps routes and traffic when BIRD is SIGKILLed under traffic; the agent restarts it", async function () {
    const n2 = fx.nodes[1]!;
    const before = await status(n2);
    const pid = before.bgp?.bird.pid;
    assert.ok(typeof pid === "number");
    const routeOf = async () =>
      (await ip(["-n", n2.netns, "route", "show", fx.nodes[0]!.podCidr, "proto", "bird"])).trim();
    assert.notEqual(await routeOf(), "");
    const traffic = pingFor(b.netns, a.ip, 100, 0.05);
    await sleep(500);
    process.kill(pid, "SIGKILL");
    let missing = 0;
    for (let i = 0; i < 25; i++) {
      if ((await routeOf()) === "") missing++;
      await sleep(100);
    }
    const r = await traffic;
    assert.equal(missing, 0, "the BGP route went away while BIRD was down");
    assert.ok(r.received >= r.sent - 1, `lost ${r.sent - r.received} of ${r.sent} pings`);
    await eventually(
      "BIRD restarted by the agent, session back",
      async () => {
        const s = await status(n2);
        return (
          s.bgp?.bird.restarts === 1 && s.bgp.bird.pid !== pid && s.bgp.sessions[0]?.state === "Established"
        );
      },
      30000,
      250,
    );
    assert.ok((await fx.lab.probe(b, "TCP", a.ip, 8080)).ok);
  });

  it("keeps routes and traffic across an agent restart (BIRD stopped for graceful restart, then started with -R)", async function () {
    const n2 = fx.nodes[1]!;
    // The previous test's restart must be over on the router too (End-of-RIB): a session that
    // drops again while its peer still holds stale routes loses them (RFC 4724).
    await eventually(
      "n2's session established",
      async () => (await status(n2)).bgp?.sessions[0]?.state === "Established",
      30000,
      250,
    );
    await sleep(5000);
    const traffic = pingFor(a.netns, b.ip, 120, 0.05);
    await sleep(300);
    await fx.lab.signalAgent(n2, "SIGTERM");
    // Neither side lost the route: n2's to n1's pods, and the router's to n2's pods (kept stale).
    assert.notEqual(
      (await ip(["-n", n2.netns, "route", "show", fx.nodes[0]!.podCidr, "proto", "bird"])).trim(),
      "",
    );
    const router = fx.lab.state.racks!.router!;
    assert.notEqual((await ip(["-n", router, "route", "show", n2.podCidr])).trim(), "");
    fx.lab.startAgent(n2, ["--routing=native"]);
    await fx.lab.waitAgentReady(n2, 60000);
    const r = await traffic;
    assert.ok(r.received >= r.sent - 1, `lost ${r.sent - r.received} of ${r.sent} pings`);
    await eventually(
      "session back after the restart",
      async () => (await status(n2)).bgp?.sessions[0]?.state === "Established",
      30000,
      250,
    );
  });

  it("refuses and logs a prefix the router announces that is no node's pod CIDR; it is never routed", async function () {
    const racks = fx.lab.state.racks!;
    const config = join(racks.birdDir, "bird.conf");
    const original = readFileSync(config, "utf8");
    writeFileSync(
      config,
      renderRouterConfig({
        routerId: routerAddr(racks.subnets[0]!),
        asn: racks.asn,
        clients: [],
        ranges: racks.subnets.map((sn) => ({ prefix: sn, local: routerAddr(sn) })),
        extraPrefixes: [BOGUS],
      }),
    );
    try {
      const r = await run("birdc", ["-s", join(racks.birdDir, "bird.ctl"), "configure"]);
      assert.match(r.out, /Reconfigured/);
      for (const n of fx.nodes) {
        await eventually(
          `${n.name} refused ${BOGUS}`,
          async () => (await status(n)).bgp?.rejected.some((x) => x.prefix === BOGUS) === true,
          20000,
          250,
        );
        assert.equal((await ip(["-n", n.netns, "route", "show", BOGUS])).trim(), "");
        assert.match(readFileSync(n.agent!.log, "utf8"), /BGP route rejected.*10\.99\.0\.0\/24/);
      }
      const st = await ctl(fx.nodes[0]!, ["status"]);
      assert.match(st.out, /announced 10\.99\.0\.0\/24, no node's pod CIDR: refused/);
    } finally {
      writeFileSync(config, original);
      await run("birdc", ["-s", join(racks.birdDir, "bird.ctl"), "configure"]);
    }
  });
});
