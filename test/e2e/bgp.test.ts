/**
 * BGP through BIRD with real BIRD processes and real packets: two racks (two subnets) joined by a
 * router namespace whose BIRD is the route reflector, a node namespace in each rack running BIRD
 * with the configuration the agent renders (agent/routing/bird-config.ts) under the agent's
 * supervisor (BirdDaemon), and a "pod" namespace behind each node. Only kernel routing forwards
 * here (no Skein datapath): this proves the control plane: each node learns the other's pod CIDR,
 * installs it in its kernel table, pods ping across; a reload keeps the session; a SIGKILLed BIRD
 * leaves its routes in place under traffic and comes back; a prefix that is no node's is refused.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ip, ipBatch } from "../../loader/index.js";
import { createLogger } from "../../agent/log.js";
import { BirdDaemon } from "../../agent/routing/bird.js";
import { BGP_ROUTE_METRIC, renderBirdConfig, type BirdNode } from "../../agent/routing/bird-config.js";
import type { BgpSettings } from "../../agent/routing/bgp-settings.js";
import { renderRouterConfig } from "../../lab/bgp-router.js";
import { eventually } from "../helpers/lab.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const ASN = 64512;
const RACK_A = { router: "192.0.2.1", node: "192.0.2.11" };
const RACK_B = { router: "198.51.100.1", node: "198.51.100.12" };
const BOGUS = "10.99.0.0/24";

interface Node {
  view: BirdNode;
  netns: string;
  pod: string;
  podIp: string;
  bird: BirdDaemon;
  logs: string[];
}

function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

/** The kernel's routes of `netns` for `prefix` with BIRD's protocol. */
async function birdRoutes(netns: string): Promise<{ dst: string; gateway?: string; metric?: number }[]> {
  const out = await ip(["-n", netns, "-j", "-4", "route", "show", "proto", "bird"]);
  return JSON.parse(out === "" ? "[]" : out) as { dst: string; gateway?: string; metric?: number }[];
}

/** Runs `ping` in `netns` for a while; resolves with sent/received counts. */
function pingFor(
  netns: string,
  to: string,
  count: number,
  intervalS: number,
): Promise<{ sent: number; received: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        netns,
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

describe("e2e: BGP through BIRD across two racks (real BIRD, kernel routing)", function () {
  this.timeout(180000);
  const suffix = uniqueName("");
  const router = `sbr-${suffix}`;
  const dir = mkdtempSync(join(tmpdir(), "skein-bgp-"));
  const created: string[] = [];
  const daemons: BirdDaemon[] = [];
  let routerBird: BirdDaemon;
  const nodes: Node[] = [];
  const settings: BgpSettings = { asn: ASN, peers: [], mesh: false };

  const views: BirdNode[] = [
    { name: "bgp-n1", internalIp: RACK_A.node, podCidr: "10.201.1.0/24" },
    { name: "bgp-n2", internalIp: RACK_B.node, podCidr: "10.201.2.0/24" },
  ];

  function nodeConfig(n: BirdNode, peer: string, all: readonly BirdNode[]): string {
    return renderBirdConfig({
      own: n,
      nodes: all,
      bgp: { ...settings, peers: [{ address: peer, asn: ASN }] },
      uplink: "eth0",
      scanTimeS: 2,
      connectRetryS: 1,
    });
  }

  before(async function () {
    requireRoot(this);
    await ip(["netns", "add", router]);
    created.push(router);
    await ipBatch(["link set lo up"], { netns: netnsPath(router) });
    await ip(["netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    const racks = [RACK_A, RACK_B];
    for (const [i, view] of views.entries()) {
      const rack = racks[i]!;
      const netns = `sbn${i + 1}-${suffix}`;
      const pod = `sbp${i + 1}-${suffix}`;
      for (const ns of [netns, pod]) {
        await ip(["netns", "add", ns]);
        created.push(ns);
      }
      await ip([
        "-n",
        router,
        "link",
        "add",
        `r${i}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        netns,
      ]);
      await ipBatch([`addr add ${rack.router}/24 dev r${i}`, `link set r${i} up`], {
        netns: netnsPath(router),
      });
      const gw = view.podCidr.replace(/0\/24$/, "1");
      const podIp = view.podCidr.replace(/0\/24$/, "10");
      await ip(["-n", netns, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", pod]);
      await ipBatch(
        [
          "link set lo up",
          `addr add ${rack.node}/24 dev eth0`,
          "link set eth0 up",
          `route add default via ${rack.router}`,
          `addr add ${gw}/24 dev pod0`,
          "link set pod0 up",
        ],
        { netns: netnsPath(netns) },
      );
      await ip(["netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      await ipBatch(
        [
          "link set lo up",
          `addr add ${podIp}/24 dev eth0`,
          "link set eth0 up",
          `route add default via ${gw}`,
        ],
        {
          netns: netnsPath(pod),
        },
      );
      const logs: string[] = [];
      const bird = new BirdDaemon({
        dir: join(dir, view.name),
        netns: netnsPath(netns),
        log: createLogger("debug", (l) => logs.push(l)),
        backoffMs: 500,
      });
      daemons.push(bird);
      nodes.push({ view, netns, pod, podIp, bird, logs });
    }
    routerBird = new BirdDaemon({
      dir: join(dir, "router"),
      netns: netnsPath(router),
      log: createLogger("warn", () => {}),
    });
    daemons.push(routerBird);
    await routerBird.apply(
      renderRouterConfig({
        routerId: RACK_A.router,
        asn: ASN,
        clients: [
          { address: RACK_A.node, local: RACK_A.router },
          { address: RACK_B.node, local: RACK_B.router },
        ],
        extraPrefixes: [BOGUS],
      }),
    );
    for (const [i, n] of nodes.entries())
      assert.equal(await n.bird.apply(nodeConfig(n.view, racks[i]!.router, views)), "started");
  });

  after(async function () {
    for (const d of daemons) await d.stop();
    for (const ns of created.reverse()) await ip(["netns", "del", ns]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it("establishes each node's session with the router and installs the other rack's pod CIDR (proto bird, metric 200)", async function () {
    for (const n of nodes)
      await eventually(
        `${n.view.name} established`,
        async () => (await n.bird.protocols()).some((p) => p.proto === "BGP" && p.bgpState === "Established"),
        30000,
      );
    for (const [i, n] of nodes.entries()) {
      const other = nodes[1 - i]!;
      await eventually(
        `${n.view.name} has ${other.view.podCidr}`,
        async () => (await birdRoutes(n.netns)).some((r) => r.dst === other.view.podCidr),
        30000,
      );
      const r = (await birdRoutes(n.netns)).find((x) => x.dst === other.view.podCidr);
      assert.equal(r?.metric, BGP_ROUTE_METRIC);
      // Learned with the other node as next hop, resolved through the router (`learn`).
      assert.equal(r.gateway, i === 0 ? RACK_A.router : RACK_B.router);
      const bgp = (await n.bird.protocols()).find((p) => p.proto === "BGP");
      assert.ok(bgp !== undefined);
      assert.equal(bgp.neighborAs, ASN);
      assert.ok((bgp.imported ?? 0) >= 1, `imported ${String(bgp.imported)}`);
      assert.equal(bgp.exported, 1);
    }
  });

  it("forwards pod to pod across the racks over those routes", async function () {
    const r = await pingFor(nodes[0]!.pod, nodes[1]!.podIp, 3, 0.2);
    assert.equal(r.received, 3);
    const back = await pingFor(nodes[1]!.pod, nodes[0]!.podIp, 3, 0.2);
    assert.equal(back.received, 3);
  });

  it("refuses and logs a prefix that is no node's pod CIDR, announced by the router", async function () {
    for (const n of nodes) {
      await eventually(
        `${n.view.name} logged the refusal`,
        () => Promise.resolve(n.bird.rejected.some((x) => x.prefix === BOGUS)),
        10000,
      );
      assert.ok(!(await birdRoutes(n.netns)).some((r) => r.dst === BOGUS));
      const main = await ip(["-n", n.netns, "route", "show", BOGUS]);
      assert.equal(main.trim(), "");
      assert.ok(n.logs.some((l) => l.includes("BGP route rejected") && l.includes(BOGUS)));
    }
  });

  it("reloads a changed configuration in place: the session's uptime survives, the new node's prefix is accepted", async function () {
    const n = nodes[0]!;
    const before = (await n.bird.protocols()).find((p) => p.proto === "BGP");
    assert.ok(before !== undefined);
    await sleep(1100); // `since` has second resolution: a restart now would show a later one
    const more = [...views, { name: "bgp-n3", internalIp: "198.51.100.13", podCidr: "10.201.3.0/24" }];
    assert.equal(await n.bird.apply(nodeConfig(n.view, RACK_A.router, more)), "reconfigured");
    assert.equal(await n.bird.apply(nodeConfig(n.view, RACK_A.router, more)), "unchanged");
    await sleep(500);
    const after = (await n.bird.protocols()).find((p) => p.proto === "BGP");
    assert.equal(after?.bgpState, "Established");
    assert.equal(after.since, before.since, "the session was not restarted");
    assert.equal(n.bird.restarts, 0);
  });

  it("keeps the kernel routes of a SIGKILLed BIRD under traffic until the supervisor has it back (graceful restart)", async function () {
    const n = nodes[0]!;
    const other = nodes[1]!;
    const pid = n.bird.pid;
    assert.ok(pid !== null);
    const traffic = pingFor(n.pod, other.podIp, 80, 0.05); // 4 s of pings, both directions' routes needed
    await sleep(500);
    process.kill(pid, "SIGKILL");
    let missing = 0;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      if (!(await birdRoutes(n.netns)).some((r) => r.dst === other.view.podCidr)) missing++;
      await sleep(100);
    }
    const r = await traffic;
    assert.equal(missing, 0, "the route disappeared while BIRD was down");
    assert.ok(r.received >= r.sent - 1, `ping lost ${r.sent - r.received} of ${r.sent}`);
    await eventually(
      "BIRD restarted",
      () => Promise.resolve(n.bird.pid !== null && n.bird.pid !== pid && n.bird.running),
      10000,
    );
    assert.equal(n.bird.restarts, 1);
    await eventually(
      "session back",
      async () => (await n.bird.protocols()).some((p) => p.proto === "BGP" && p.bgpState === "Established"),
      30000,
    );
    // Recovery over: the route is BIRD's again, and still there.
    await sleep(2500);
    assert.ok((await birdRoutes(n.netns)).some((x) => x.dst === other.view.podCidr));
    assert.equal((await pingFor(n.pod, other.podIp, 3, 0.2)).received, 3);
  });

  it("keeps the routes on both sides while the agent restarts BIRD (graceful stop, then a new BIRD on the same directory)", async function () {
    const n = nodes[0]!;
    const other = nodes[1]!;
    const dir0 = join(dir, n.view.name);
    await n.bird.stop();
    assert.equal(n.bird.running, false);
    // The router keeps the stopped node's pod CIDR (graceful restart), the node keeps the other's.
    const routerRoutes = await birdRoutes(router);
    assert.ok(
      routerRoutes.some((r) => r.dst === n.view.podCidr),
      JSON.stringify(routerRoutes),
    );
    assert.ok((await birdRoutes(n.netns)).some((r) => r.dst === other.view.podCidr));
    assert.equal((await pingFor(n.pod, other.podIp, 5, 0.2)).received, 5);
    const logs: string[] = [];
    const again = new BirdDaemon({
      dir: dir0,
      netns: netnsPath(n.netns),
      log: createLogger("debug", (l) => logs.push(l)),
    });
    daemons.push(again);
    assert.equal(await again.apply(nodeConfig(n.view, RACK_A.router, views)), "started");
    await eventually(
      "session back",
      async () => (await again.protocols()).some((p) => p.proto === "BGP" && p.bgpState === "Established"),
      30000,
    );
    assert.equal((await pingFor(n.pod, other.podIp, 3, 0.2)).received, 3);
  });

  it("meshes the nodes with each other (iBGP across the router) when reconfigured to bgp.mesh without peers", async function () {
    const daemon = (i: number) => (i === 0 ? daemons.at(-1)! : nodes[i]!.bird);
    for (const [i, n] of nodes.entries()) {
      const text = renderBirdConfig({
        own: n.view,
        nodes: views,
        bgp: { asn: ASN, peers: [], mesh: true },
        uplink: "eth0",
        scanTimeS: 2,
        connectRetryS: 1,
      });
      assert.equal(await daemon(i).apply(text), "reconfigured");
    }
    for (const [i, n] of nodes.entries()) {
      const other = nodes[1 - i]!;
      await eventually(
        `${n.view.name} meshed with ${other.view.name}`,
        async () =>
          (await daemon(i).protocols()).some(
            (p) =>
              p.name === `skn_node_${other.view.internalIp.replaceAll(".", "_")}` &&
              p.bgpState === "Established",
          ),
        30000,
      );
      assert.ok(!(await daemon(i).protocols()).some((p) => p.name.startsWith("skn_peer_")));
      await eventually(
        `${n.view.name} has ${other.view.podCidr} from the mesh`,
        async () => (await birdRoutes(n.netns)).some((r) => r.dst === other.view.podCidr),
        30000,
      );
    }
    // Forwarding across the router would need the router to know the pod CIDRs too: a mesh alone
    // suits nodes on one segment (or routers that also peer); docs/deploy.md says so.
  });

  it("ends a BIRD left behind by a killed agent (found by its pid file) before starting its own", async function () {
    const n = nodes[1]!;
    await n.bird.stop();
    // What a SIGKILLed agent leaves: its BIRD, still running the node's configuration.
    const stale = spawn(
      "nsenter",
      [
        `--net=${netnsPath(n.netns)}`,
        "bird",
        "-f",
        "-c",
        n.bird.config,
        "-s",
        n.bird.socket,
        "-P",
        n.bird.pidFile,
      ],
      { stdio: "ignore" },
    );
    const exited = new Promise((r) => stale.once("exit", r));
    await eventually(
      "stale BIRD up",
      () => existsSync(n.bird.pidFile) && readFileSync(n.bird.pidFile, "utf8").trim() === String(stale.pid),
      10000,
    );
    const again = new BirdDaemon({
      dir: join(dir, n.view.name),
      netns: netnsPath(n.netns),
      log: createLogger("warn", () => {}),
    });
    daemons.push(again);
    assert.equal(await again.apply(readFileSync(n.bird.config, "utf8")), "started");
    await exited;
    assert.notEqual(again.pid, stale.pid);
    assert.ok(again.running);
  });
});
