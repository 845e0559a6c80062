/**
 * Every skeinctl command against real lab nodes, run as an operator would (a process inside the
 * node's network namespace), in both output forms, checking what they say: the pods' addresses,
 * the remote pod CIDR with its tunnel endpoint, a drop with both pod names, the rule behind an
 * allowed flow; and what they say when the agent is down or nothing is pinned.
 *
 * Lab: n1 runs its agent with --verdict-events, n2 without. Namespace shop: client and api on n1,
 * web on n2. Policies: web denies all ingress; api allows TCP 8080 from client only.
 */
import assert from "node:assert/strict";
import { listLinks } from "../../loader/index.js";
import { MetricsMap } from "../../maps/metrics.js";
import { PINNED_MAPS } from "../../maps/pins.js";
import { REASONS } from "../../maps/metrics.js";
import type { LabNode } from "../../lab/lab.js";
import { eventually } from "../helpers/lab.js";
import { uniqueName } from "../helpers/names.js";
import { hookKind } from "../helpers/tcx.js";
import {
  ctl,
  ctlInProcess,
  denyAllIngress,
  jsonLines,
  nodeFlags,
  startMonitor,
  useCtlLab,
} from "./ctl-helpers.js";

type Json = Record<string, unknown>;

// The caller names the shape it expects, as with JSON.parse.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
function json<T = Json[]>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

describe("skeinctl on lab nodes (real datapath, real agent, both output forms)", function () {
  this.timeout(120000);
  const fx = useCtlLab([["--verdict-events"], []], async (fx) => {
    const [n1, n2] = fx.nodes as [LabNode, LabNode];
    const client = (fx.pods.client = await fx.lab.addPod({
      namespace: "shop",
      name: "client",
      node: n1,
      labels: { app: "client" },
    }));
    const api = (fx.pods.api = await fx.lab.addPod({
      namespace: "shop",
      name: "api",
      node: n1,
      labels: { app: "api" },
    }));
    const web = (fx.pods.web = await fx.lab.addPod({
      namespace: "shop",
      name: "web",
      node: n2,
      labels: { app: "web" },
    }));
    await eventually(
      "client reaches web across nodes",
      async () => (await fx.lab.probe(client, "TCP", web.ip, 8080, 300)).ok,
      20000,
    );
    await eventually(
      "client reaches api",
      async () => (await fx.lab.probe(client, "TCP", api.ip, 8080, 300)).ok,
      20000,
    );
    await fx.lab.applyPolicy(denyAllIngress("shop", "web-deny-all", { app: "web" }));
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "api-from-client", namespace: "shop" },
      spec: {
        podSelector: { matchLabels: { app: "api" } },
        policyTypes: ["Ingress"],
        ingress: [
          {
            _from: [{ podSelector: { matchLabels: { app: "client" } } }],
            ports: [{ protocol: "TCP", port: 8080 }],
          },
        ],
      },
    });
    await eventually(
      "web denies ingress",
      async () => !(await fx.lab.probe(client, "TCP", web.ip, 8080, 300)).ok,
      20000,
    );
    await eventually(
      "api enforces its policy (client cannot reach it on 81)",
      async () => !(await fx.lab.probe(client, "TCP", api.ip, 81, 300)).ok,
      20000,
    );
    await eventually(
      "client still reaches api on 8080",
      async () => (await fx.lab.probe(client, "TCP", api.ip, 8080, 300)).ok,
      20000,
    );
  });
  const n1 = () => fx.nodes[0]!;
  const n2 = () => fx.nodes[1]!;
  const pod = (name: string) => fx.pods[name]!;

  describe("status", function () {
    it("table: datapath loaded, our programs on the pod veths, the overlay and the uplink, agent ready, map pressure", async function () {
      const r = await ctl(n1(), ["status", ...nodeFlags(n1())]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const maps = `${PINNED_MAPS.length}/${PINNED_MAPS.length} maps pinned`;
      assert.match(r.stdout, new RegExp(`Datapath: +loaded under .* \\(5/5 programs, ${maps}\\)`));
      for (const p of ["skn_from_pod", "skn_to_pod", "skn_from_vxlan", "skn_to_vxlan", "skn_from_uplink"])
        assert.match(r.stdout, new RegExp(`${p} +\\d+ +[0-9a-f]{16}`));
      const kind = hookKind();
      assert.match(
        r.stdout,
        new RegExp(
          `ingress +${kind} +skn_from_pod +\\d+ +endpoint ${pod("client").ip.replaceAll(".", "\\.")}`,
        ),
      );
      assert.match(
        r.stdout,
        new RegExp(`egress +${kind} +skn_to_pod +\\d+ +endpoint ${pod("api").ip.replaceAll(".", "\\.")}`),
      );
      assert.match(r.stdout, new RegExp(`skn_vxlan +ingress +${kind} +skn_from_vxlan +\\d+ +overlay`));
      assert.match(r.stdout, new RegExp(`eth0 +ingress +${kind} +skn_from_uplink +\\d+ +uplink`));
      assert.match(
        r.stdout,
        new RegExp(
          `Agent: +http://${n1().ip.replaceAll(".", "\\.")}:9879: healthy, ready; node ${n1().name}`,
        ),
      );
      assert.match(r.stdout, /skn_conntrack2 +\d+ +lru_hash +16 +40 +\d+ +262144 +\d+\.\d%/);
      assert.match(r.stdout, /Problems: +none/);
    });

    it("json: program ids and tags, every attachment, agent health, maps with capacity, no problems", async function () {
      const r = await ctl(n1(), ["status", "-o", "json", ...nodeFlags(n1())]);
      assert.equal(r.code, 0, r.stderr);
      const s = json<Json>(r.stdout) as {
        datapath: {
          loaded: boolean;
          programs: { name: string; pinned: boolean; id: number; tag: string; attachedTo: number }[];
        };
        attachments: {
          ifname: string;
          direction: string;
          program: string;
          current: boolean;
          role: string | null;
        }[];
        agent: {
          reachable: boolean;
          health: { ready: boolean; datapathPinned: boolean };
          node: string;
          podCidr: string;
        };
        maps: { name: string; capacity: number; entries: number | null }[];
        problems: string[];
      };
      assert.equal(s.datapath.loaded, true);
      assert.deepEqual(s.datapath.programs.map((p) => p.name).sort(), [
        "skn_from_pod",
        "skn_from_uplink",
        "skn_from_vxlan",
        "skn_to_pod",
        "skn_to_vxlan",
      ]);
      for (const p of s.datapath.programs) {
        assert.ok(p.id > 0 && /^[0-9a-f]{16}$/.test(p.tag), JSON.stringify(p));
        assert.equal(
          p.attachedTo,
          p.name.includes("vxlan") || p.name.includes("uplink") ? 1 : 2,
          `${p.name} on the overlay or the uplink once, on each of 2 pod veths`,
        );
      }
      assert.equal(s.attachments.length, 7, "2 pods × 2 directions + the overlay × 2 + the uplink's ingress");
      assert.ok(s.attachments.every((a) => a.current));
      assert.deepEqual(
        s.attachments
          .filter((a) => a.role === `endpoint ${pod("client").ip}`)
          .map((a) => `${a.direction}:${a.program}`)
          .sort(),
        ["egress:skn_to_pod", "ingress:skn_from_pod"],
      );
      assert.equal(s.agent.reachable, true);
      assert.equal(s.agent.health.ready, true);
      assert.equal(s.agent.health.datapathPinned, true);
      assert.equal(s.agent.node, n1().name);
      assert.equal(s.agent.podCidr, n1().podCidr);
      assert.deepEqual(
        s.maps.map((m) => m.name),
        [...PINNED_MAPS],
      );
      assert.equal(s.maps.find((m) => m.name === "skn_endpoints")?.entries, 2);
      assert.deepEqual(s.problems, []);
    });
  });

  describe("endpoint list", function () {
    it("table and json: the node's pods with their IPs, names and host veths", async function () {
      const links = new Map(
        (await listLinks({ netns: `/var/run/netns/${n1().netns}` })).map((l) => [l.ifindex, l.ifname]),
      );
      const t = await ctl(n1(), ["endpoint", "list", ...nodeFlags(n1())]);
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /^IP +POD +IFINDEX +HOST-VETH +MAC +HOST-MAC$/m);
      for (const name of ["client", "api"])
        assert.match(
          t.stdout,
          new RegExp(`^${pod(name).ip.replaceAll(".", "\\.")} +shop/${name} +\\d+ +skn\\w+ `, "m"),
        );
      assert.doesNotMatch(t.stdout, new RegExp(pod("web").ip.replaceAll(".", "\\.")), "web lives on n2");
      const j = await ctl(n1(), ["endpoint", "list", "-o", "json", ...nodeFlags(n1())]);
      const rows = json<
        { ip: string; ifindex: number; ifname: string; pod: { namespace: string; name: string } }[]
      >(j.stdout);
      assert.deepEqual(rows.map((r) => r.ip).sort(), [pod("api").ip, pod("client").ip].sort());
      for (const r of rows) {
        assert.equal(r.ifname, links.get(r.ifindex), "the host veth as `ip link` names it in the node");
        assert.equal(`${r.pod.namespace}/${r.pod.name}`, r.ip === pod("api").ip ? "shop/api" : "shop/client");
      }
    });
  });

  describe("identity list", function () {
    it("table and json: reserved identities, pod identities with labels, addresses from the ipcache", async function () {
      const t = await ctl(n1(), ["identity", "list", ...nodeFlags(n1())]);
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /^1 +reserved +- +host +/m);
      assert.match(t.stdout, /^3 +reserved +- +remote-node +.*\/32/m);
      assert.match(
        t.stdout,
        new RegExp(`^\\d+ +pod +shop +app=web +${pod("web").ip.replaceAll(".", "\\.")}/32`, "m"),
      );
      const j = await ctl(n1(), ["identity", "list", "-o", "json", ...nodeFlags(n1())]);
      const rows = json<
        {
          id: number;
          kind: string;
          namespace: string | null;
          labels: Record<string, string> | null;
          addresses: string[];
          source: string;
        }[]
      >(j.stdout);
      const client = rows.find((r) => r.labels?.app === "client");
      assert.ok(client !== undefined, j.stdout);
      assert.equal(client.kind, "pod");
      assert.equal(client.namespace, "shop");
      assert.deepEqual(client.addresses, [`${pod("client").ip}/32`]);
      assert.ok(rows.every((r) => r.source === "agent"));
      assert.deepEqual(
        rows.find((r) => r.id === 4)?.addresses.sort(),
        [n1().podCidr, n2().podCidr].sort(),
        "unmanaged: the pod CIDRs",
      );
    });
  });

  describe("node list", function () {
    it("table and json: both nodes with internal IP and pod CIDR, this node marked, no skipped objects", async function () {
      const t = await ctl(n2(), ["node", "list", ...nodeFlags(n2())]);
      assert.equal(t.code, 0, t.stderr);
      assert.match(
        t.stdout,
        new RegExp(
          `^${n1().name} +${n1().ip.replaceAll(".", "\\.")} +${n1().podCidr.replaceAll(".", "\\.")}$`,
          "m",
        ),
      );
      assert.match(
        t.stdout,
        new RegExp(`^${n2().name} \\(this node\\) +${n2().ip.replaceAll(".", "\\.")} +`, "m"),
      );
      assert.match(t.stdout, /no skipped objects/);
      const j = await ctl(n2(), ["node", "list", "-o", "json", ...nodeFlags(n2())]);
      const body = json<{
        node: string;
        nodes: { name: string; internalIp: string; podCidr: string; self: boolean }[];
        skipped: unknown[];
      }>(j.stdout);
      assert.equal(body.node, n2().name);
      assert.deepEqual(
        body.nodes,
        [n1(), n2()].map((n) => ({ name: n.name, internalIp: n.ip, podCidr: n.podCidr, self: n === n2() })),
      );
      assert.deepEqual(body.skipped, []);
    });

    it("lists a Node the agent cannot use under skipped objects, with the reason", async function () {
      const name = uniqueName("bad-node-");
      await fx.lab.core().createNode({
        body: {
          metadata: { name },
          spec: {},
          status: { addresses: [{ type: "InternalIP", address: "198.18.255.1" }] },
        },
      });
      try {
        let body: { skipped: { kind: string; name: string; reason: string }[] } = { skipped: [] };
        await eventually("agent reports the node without pod CIDR", async () => {
          body = json((await ctl(n2(), ["node", "list", "-o", "json", ...nodeFlags(n2())])).stdout);
          return body.skipped.some((s) => s.name === name);
        });
        const s = body.skipped.find((x) => x.name === name)!;
        assert.equal(s.kind, "Node");
        const t = await ctl(n2(), ["node", "list", ...nodeFlags(n2())]);
        assert.match(t.stdout, new RegExp(`skipped objects \\(1\\)[^]*Node +${name} +${s.reason}`));
      } finally {
        await fx.lab.core().deleteNode({ name });
      }
    });
  });

  describe("map list", function () {
    it("table and json: every pinned map with type, sizes, entries, capacity and pressure", async function () {
      const t = await ctl(n1(), ["map", "list", ...nodeFlags(n1())]);
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /^NAME +ID +TYPE +KEY +VALUE +ENTRIES +CAPACITY +PRESSURE$/m);
      assert.match(t.stdout, /^skn_endpoints +\d+ +hash +4 +20 +2 +65536 +0\.0%$/m);
      assert.match(t.stdout, /^skn_events +\d+ +ringbuf +0 +0 +- +262144 B +-$/m);
      const j = await ctl(n1(), ["map", "list", "-o", "json", ...nodeFlags(n1())]);
      const maps = json<
        {
          name: string;
          type: string;
          keySize: number;
          valueSize: number;
          entries: number | null;
          capacity: number;
          pressurePercent: number | null;
        }[]
      >(j.stdout);
      assert.deepEqual(
        maps.map((m) => `${m.name}:${m.type}`),
        [
          "skn_endpoints:hash",
          "skn_ipcache:lpm_trie",
          "skn_policy:lpm_trie",
          "skn_conntrack2:lru_hash",
          "skn_metrics:percpu_array",
          "skn_events:ringbuf",
          "skn_config:array",
          "skn_lb_svc:hash",
          "skn_lb_slot:hash",
          "skn_lb_backend:hash",
          "skn_lb_revnat:hash",
          "skn_lb_affinity:lru_hash",
          "skn_lb_maglev:hash",
          "skn_lb_flow:lru_hash",
        ],
      );
      const policy = maps.find((m) => m.name === "skn_policy")!;
      assert.ok(policy.entries !== null && policy.entries > 0, "api's ingress rule is programmed");
      assert.equal(policy.pressurePercent, Math.round((policy.entries / policy.capacity) * 1000) / 10);
      assert.equal(
        maps.find((m) => m.name === "skn_metrics")?.pressurePercent,
        null,
        "an array is always full: no pressure",
      );
    });
  });

  describe("map dump", function () {
    it("skn_ipcache -o json: the remote pod CIDR with its tunnel IP, pods with identities and enforcement flags", async function () {
      const rows = json<{ prefix: string; identity: number; tunnelIp: string | null; flagNames: string[] }[]>(
        (await ctl(n1(), ["map", "dump", "skn_ipcache", "-o", "json", ...nodeFlags(n1())])).stdout,
      );
      assert.deepEqual(
        rows.find((r) => r.prefix === n2().podCidr),
        {
          prefix: n2().podCidr,
          identity: 4,
          identityName: "unmanaged",
          tunnelIp: n2().ip,
          cidrIdentity: 0,
          flags: 0,
          flagNames: [],
        },
      );
      assert.equal(rows.find((r) => r.prefix === `${pod("web").ip}/32`)?.tunnelIp, n2().ip);
      assert.equal(
        rows.find((r) => r.prefix === `${n2().ip}/32`)?.identity,
        3,
        "the other node: remote-node",
      );
      assert.deepEqual(rows.find((r) => r.prefix === `${pod("api").ip}/32`)?.flagNames, ["enforce-ingress"]);
      const t = await ctl(n1(), ["map", "dump", "ipcache", ...nodeFlags(n1())]);
      assert.match(
        t.stdout,
        new RegExp(
          `^${n2().podCidr.replaceAll(".", "\\.")} +4 \\(unmanaged\\) +${n2().ip.replaceAll(".", "\\.")} +- +-$`,
          "m",
        ),
      );
      assert.match(
        t.stdout,
        new RegExp(
          `^${pod("api").ip.replaceAll(".", "\\.")}/32 +\\d+ +- \\(local\\) +- +enforce-ingress$`,
          "m",
        ),
      );
    });

    it("skn_endpoints: decoded entries with interface names", async function () {
      const rows = json<{ ip: string; ifname: string; mac: string }[]>(
        (await ctl(n1(), ["map", "dump", "skn_endpoints", "-o", "json", ...nodeFlags(n1())])).stdout,
      );
      assert.deepEqual(rows.map((r) => r.ip).sort(), [pod("api").ip, pod("client").ip].sort());
      assert.ok(rows.every((r) => /^skn/.test(r.ifname) && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(r.mac)));
      const t = await ctl(n1(), ["map", "dump", "endpoints", ...nodeFlags(n1())]);
      assert.match(t.stdout, new RegExp(`^${pod("client").ip.replaceAll(".", "\\.")} +\\d+ +skn\\w+ `, "m"));
    });

    it("skn_policy: api's allow entry from client's identity on TCP 8080, with its rule id", async function () {
      const ids = json<{ id: number; labels: Record<string, string> | null }[]>(
        (await ctl(n1(), ["identity", "list", "-o", "json", ...nodeFlags(n1())])).stdout,
      );
      const clientId = ids.find((i) => i.labels?.app === "client")!.id;
      const rows = json<
        {
          endpointIp: string;
          direction: string;
          peerIdentity: number;
          protocol: string;
          port: number;
          ruleId: number;
        }[]
      >((await ctl(n1(), ["map", "dump", "skn_policy", "-o", "json", ...nodeFlags(n1())])).stdout);
      const e = rows.find((r) => r.endpointIp === pod("api").ip && r.peerIdentity === clientId);
      assert.ok(e !== undefined, JSON.stringify(rows));
      assert.deepEqual([e.direction, e.protocol, e.port], ["ingress", "TCP", 8080]);
      assert.ok(e.ruleId > 0);
      const t = await ctl(n1(), ["map", "dump", "policy", ...nodeFlags(n1())]);
      assert.match(
        t.stdout,
        new RegExp(
          `^${pod("api").ip.replaceAll(".", "\\.")} +ingress +${clientId} +TCP +8080 +${e.ruleId}$`,
          "m",
        ),
      );
    });

    it("skn_conntrack2: the flow a probe made, with identities and age", async function () {
      const probe = await fx.lab.probe(pod("client"), "TCP", pod("api").ip, 8080);
      assert.ok(probe.ok, probe.error);
      const rows = json<
        {
          protocol: string;
          addrA: string;
          addrB: string;
          portA: number;
          portB: number;
          ageS: number;
          idleS: number;
          flagNames: string[];
        }[]
      >((await ctl(n1(), ["map", "dump", "skn_conntrack2", "-o", "json", ...nodeFlags(n1())])).stdout);
      const flow = rows.find(
        (r) =>
          r.protocol === "TCP" &&
          [r.addrA, r.addrB].sort().join() === [pod("client").ip, pod("api").ip].sort().join() &&
          (r.portA === 8080 || r.portB === 8080),
      );
      assert.ok(flow !== undefined, JSON.stringify(rows.slice(0, 5)));
      assert.ok(
        flow.ageS >= 0 && flow.ageS < 60 && flow.idleS >= 0 && flow.idleS <= flow.ageS,
        JSON.stringify(flow),
      );
      assert.ok(flow.flagNames.includes("seen-reply"));
      const t = await ctl(n1(), ["map", "dump", "conntrack", ...nodeFlags(n1())]);
      assert.match(t.stdout, /^PROTO +A +B +IDENTITY-A +IDENTITY-B +AGE +IDLE +FLAGS +TUNNEL +RULE$/m);
      assert.match(
        t.stdout,
        new RegExp(
          `^TCP +.*${pod("api").ip.replaceAll(".", "\\.")}:.* \\d+(\\.\\d)?s +\\d+(\\.\\d)?s +`,
          "m",
        ),
      );
    });

    it("skn_metrics: per-CPU counters summed (between two direct reads of the map)", async function () {
      const read = () => {
        using m = MetricsMap.openPinned(n1().bpffsRoot);
        return m.get("fwd_overlay", "egress").packets;
      };
      const before = read();
      const rows = json<
        { counter: string; direction: string | null; verdict: string | null; packets: number }[]
      >((await ctl(n1(), ["map", "dump", "skn_metrics", "-o", "json", ...nodeFlags(n1())])).stdout);
      const after = read();
      const overlay = rows.find((r) => r.counter === "fwd_overlay" && r.direction === "egress");
      assert.ok(
        overlay !== undefined &&
          BigInt(overlay.packets) >= before &&
          BigInt(overlay.packets) <= after &&
          overlay.packets > 0,
        JSON.stringify(overlay),
      );
      assert.equal(overlay.verdict, "forward");
      assert.ok(
        rows.some((r) => r.counter === "policy_allowed_flows" && r.direction === "ingress" && r.packets > 0),
        "api's policy allowed client's flows",
      );
      const all = json<unknown[]>(
        (await ctl(n1(), ["map", "dump", "skn_metrics", "--all", "-o", "json", ...nodeFlags(n1())])).stdout,
      );
      assert.equal(
        all.length,
        REASONS.length * 2 + 2 + 1,
        "every reason × direction, two policy slots, events lost",
      );
      const t = await ctl(n1(), ["map", "dump", "metrics", ...nodeFlags(n1())]);
      assert.match(t.stdout, /^fwd_overlay +egress +forward +\d+ +\d+$/m);
      assert.match(t.stdout, /summed over CPUs/);
    });

    it("skn_config: node IP, overlay device and uplink by name, port, the verdict-events and tunnel-onlink flags", async function () {
      const [c1] = json<
        {
          nodeIp: string;
          vxlanIfname: string;
          vxlanPort: number;
          uplinkIfname: string;
          flagNames: string[];
        }[]
      >((await ctl(n1(), ["map", "dump", "skn_config", "-o", "json", ...nodeFlags(n1())])).stdout);
      assert.deepEqual(
        [c1!.nodeIp, c1!.vxlanIfname, c1!.vxlanPort, c1!.uplinkIfname, c1!.flagNames],
        [n1().ip, "skn_vxlan", 4789, "eth0", ["verdict-events", "tunnel-onlink"]],
      );
      const t = await ctl(n2(), ["map", "dump", "config", ...nodeFlags(n2())]);
      assert.match(
        t.stdout,
        new RegExp(
          `^\\d+ +skn_vxlan +${n2().ip.replaceAll(".", "\\.")} +0e:5e:[0-9a-f:]+ +4789 +eth0 +tunnel-onlink$`,
          "m",
        ),
      );
    });

    it("skn_events: refuses (a ring buffer is consumed, not dumped) and points at monitor", async function () {
      const r = await ctl(n1(), ["map", "dump", "skn_events", ...nodeFlags(n1())]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /skn_events is a ring buffer.*skeinctl monitor/);
    });

    it("in-process through runCtl (COMMANDS), from the root namespace: the same ipcache", async function () {
      const r = await ctlInProcess([
        "map",
        "dump",
        "skn_ipcache",
        "-o",
        "json",
        "--bpffs-root",
        n1().bpffsRoot,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        json<{ prefix: string; tunnelIp: string | null }[]>(r.stdout).some(
          (x) => x.prefix === n2().podCidr && x.tunnelIp === n2().ip,
        ),
      );
    });
  });

  describe("monitor", function () {
    it("-o json --count 1: a probe against a deny-all policy shows as drop_policy with both pod names", async function () {
      const m = await startMonitor(n2(), [
        "-o",
        "json",
        "--count",
        "1",
        "--duration",
        "20",
        ...nodeFlags(n2()),
      ]);
      const probe = await fx.lab.probe(pod("client"), "TCP", pod("web").ip, 8080, 1000);
      assert.equal(probe.ok, false);
      const r = await m.done;
      assert.equal(r.code, 0, r.stderr);
      const [ev, ...more] = jsonLines(r.stdout) as [
        Json & { src: Json & { pod: Json }; dst: Json & { pod: Json } },
      ];
      assert.equal(more.length, 0, "--count 1 prints exactly one");
      assert.equal(ev.type, "drop");
      assert.equal(ev.reason, "drop_policy");
      assert.equal(ev.direction, "ingress");
      assert.equal(ev.protocol, "TCP");
      assert.deepEqual(ev.src.pod, { namespace: "shop", name: "client", node: n1().name });
      assert.deepEqual(ev.dst.pod, { namespace: "shop", name: "web", node: n2().name });
      assert.equal(ev.src.ip, pod("client").ip);
      assert.equal(ev.dst.port, 8080);
      assert.equal(ev.dst.identityName, "shop:app=web");
      assert.equal(ev.ifname, "eth0", "cross-node: enforced where it arrives, on the uplink (--encap bpf)");
      assert.equal(ev.rule, null);
      assert.equal(ev.summary, "no rule allows ingress to shop/web from shop/client on TCP/8080");
      assert.ok(
        Math.abs(Date.parse(ev.time as string) - Date.now()) < 30000,
        `wall-clock time ${String(ev.time)}`,
      );
    });

    it("table: the same drop as one readable line", async function () {
      const m = await startMonitor(n2(), [
        "--type",
        "drop",
        "--count",
        "1",
        "--duration",
        "20",
        ...nodeFlags(n2()),
      ]);
      await fx.lab.probe(pod("client"), "UDP", pod("web").ip, 5353, 500);
      const r = await m.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(
          `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} DROP +ingress UDP +${pod("client").ip.replaceAll(".", "\\.")}:\\d+ \\(shop/client, identity \\d+\\) -> ${pod("web").ip.replaceAll(".", "\\.")}:5353 \\(shop/web, identity \\d+\\) on eth0: drop_policy: no rule allows ingress to shop/web from shop/client on UDP/5353$`,
          "m",
        ),
      );
      assert.match(r.stderr, /1 event\(s\): 1 drop\(s\), 0 verdict\(s\)/);
    });

    it("--type verdict: an allowed flow names the NetworkPolicy rule that allowed it (agent with --verdict-events)", async function () {
      const m = await startMonitor(n1(), [
        "--type",
        "verdict",
        "-o",
        "json",
        "--count",
        "1",
        "--duration",
        "20",
        ...nodeFlags(n1()),
      ]);
      assert.doesNotMatch(m.stderr(), /verdict events are off/);
      const probe = await fx.lab.probe(pod("client"), "TCP", pod("api").ip, 8080);
      assert.ok(probe.ok, probe.error);
      const r = await m.done;
      assert.equal(r.code, 0, r.stderr);
      const [ev] = jsonLines(r.stdout) as [
        Json & { src: Json & { pod: Json }; dst: Json & { pod: Json }; rule: Json },
      ];
      assert.equal(ev.type, "verdict");
      assert.equal(ev.direction, "ingress");
      assert.deepEqual([ev.src.pod.name, ev.dst.pod.name], ["client", "api"]);
      assert.deepEqual(
        { ...ev.rule, id: undefined },
        { id: undefined, namespace: "shop", policy: "api-from-client", direction: "ingress", index: 0 },
      );
      assert.match(
        ev.summary as string,
        /^allowed by ingress rule 0 of NetworkPolicy shop\/api-from-client \(rule id \d+\)$/,
      );
    });

    it("says verdict events are off when the node's agent runs without --verdict-events", async function () {
      const r = await ctl(n2(), ["monitor", "--type", "verdict", "--duration", "0.3", ...nodeFlags(n2())]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /verdict events are off on this node \(skn_config flags: tunnel-onlink\): only drops will show\. Start skein-agent with --verdict-events/,
      );
      const drops = await ctl(n2(), ["monitor", "--type", "drop", "--duration", "0.3", ...nodeFlags(n2())]);
      assert.doesNotMatch(drops.stderr, /verdict events are off/, "not said when only drops are asked for");
    });

    it("refuses a second monitor on the same node (one ring-buffer reader), naming the first; --force overrides", async function () {
      const first = await startMonitor(n1(), ["--duration", "15", ...nodeFlags(n1())]);
      try {
        const second = await ctl(n1(), ["monitor", "--duration", "1", ...nodeFlags(n1())]);
        assert.equal(second.code, 1);
        assert.match(
          second.stderr,
          new RegExp(
            `another skeinctl monitor \\(pid ${first.child.pid}\\) is reading skn_events under ${n1().bpffsRoot}.*--force`,
          ),
        );
        const forced = await ctl(n1(), ["monitor", "--force", "--duration", "0.3", ...nodeFlags(n1())]);
        assert.equal(forced.code, 0, forced.stderr);
        assert.match(forced.stderr, /--force: not checking for other monitors/);
        const otherNode = await ctl(n2(), ["monitor", "--duration", "0.3", ...nodeFlags(n2())]);
        assert.equal(otherNode.code, 0, `another node's monitor is independent: ${otherNode.stderr}`);
      } finally {
        first.child.kill("SIGINT");
        await first.done;
      }
    });

    it("stops on SIGINT with exit 0 and a summary", async function () {
      const m = await startMonitor(n2(), ["--duration", "30", ...nodeFlags(n2())]);
      await fx.lab.probe(pod("client"), "TCP", pod("web").ip, 80, 500);
      await eventually("the drop is printed", () => m.stdout().includes("drop_policy"), 10000);
      m.child.kill("SIGINT");
      const r = await m.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /\d+ event\(s\): \d+ drop\(s\)/);
      const again = await ctl(n2(), ["monitor", "--duration", "0.2", ...nodeFlags(n2())]);
      assert.equal(again.code, 0, `the lock went with it: ${again.stderr}`);
    });

    it("--count with --duration: exit 1 when fewer events came", async function () {
      const r = await ctl(n1(), [
        "monitor",
        "--type",
        "drop",
        "--count",
        "5",
        "--duration",
        "0.5",
        ...nodeFlags(n1()),
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /only 0 of 5 event\(s\) within 0\.5 s/);
    });

    it("in-process: stops when the caller's AbortSignal fires", async function () {
      const ac = new AbortController();
      const run = ctlInProcess(
        ["monitor", "--bpffs-root", n2().bpffsRoot, "--agent", `http://${n2().ip}:9879`, "-o", "json"],
        ac.signal,
      );
      await new Promise((r) => setTimeout(r, 500));
      await fx.lab.probe(pod("client"), "TCP", pod("web").ip, 81, 500);
      await new Promise((r) => setTimeout(r, 300));
      ac.abort();
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        jsonLines(r.stdout).some((e) => e.reason === "drop_policy" && (e.dst as Json).port === 81),
        r.stdout,
      );
    });
  });

  describe("with the node's agent stopped", function () {
    before(async function () {
      await fx.lab.signalAgent(n2(), "SIGTERM");
    });
    after(async function () {
      this.timeout(60000);
      fx.lab.startAgent(n2());
      await fx.lab.waitAgentReady(n2());
    });

    it("status reports the agent down (exit 1) and still shows the datapath", async function () {
      const t = await ctl(n2(), ["status", ...nodeFlags(n2())]);
      assert.equal(t.code, 1);
      assert.match(t.stdout, /Datapath: +loaded/);
      assert.match(t.stdout, /Agent: +http:\/\/.*:9879: not answering/);
      assert.match(
        t.stdout,
        /skein-agent at http:\/\/.*:9879 did not answer \(.*ECONNREFUSED.*\): is it running on this node\?/,
      );
      const j = json<{
        agent: { reachable: boolean; error: string };
        datapath: { loaded: boolean };
        problems: string[];
      }>((await ctl(n2(), ["status", "-o", "json", ...nodeFlags(n2())])).stdout);
      assert.equal(j.agent.reachable, false);
      assert.equal(j.datapath.loaded, true);
      assert.equal(j.problems.length, 1);
    });

    it("node list fails with a clear message (exit 1)", async function () {
      for (const args of [
        ["node", "list"],
        ["node", "list", "-o", "json"],
      ]) {
        const r = await ctl(n2(), [...args, ...nodeFlags(n2())]);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        assert.match(
          r.stderr,
          /^skeinctl node list: skein-agent at http:\/\/[\d.]+:9879 did not answer .* pass --agent http:\/\/HOST:PORT/,
        );
      }
    });

    it("identity list falls back to the ipcache and says so", async function () {
      const r = await ctl(n2(), ["identity", "list", "-o", "json", ...nodeFlags(n2())]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /did not answer.*\nshowing what .*skn_ipcache holds instead: identity numbers and addresses, no labels/,
      );
      const rows = json<{ id: number; kind: string; labels: unknown; addresses: string[]; source: string }[]>(
        r.stdout,
      );
      assert.ok(rows.every((x) => x.source === "ipcache" && x.labels === null));
      assert.ok(rows.some((x) => x.kind === "pod" && x.addresses.includes(`${pod("web").ip}/32`)));
      const t = await ctl(n2(), ["identity", "list", ...nodeFlags(n2())]);
      assert.match(
        t.stdout,
        new RegExp(`^\\d+ +pod +- +\\? +${pod("web").ip.replaceAll(".", "\\.")}/32`, "m"),
      );
    });

    it("endpoint list still lists the node's pods, without names", async function () {
      const r = await ctl(n2(), ["endpoint", "list", ...nodeFlags(n2())]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^${pod("web").ip.replaceAll(".", "\\.")} +\\? +\\d+ +skn`, "m"));
      assert.match(r.stderr, /no pod names: skein-agent at .* did not answer/);
    });

    it("monitor prints addresses and identities: the datapath still drops and reports without the agent", async function () {
      const m = await startMonitor(n2(), [
        "-o",
        "json",
        "--count",
        "1",
        "--duration",
        "20",
        ...nodeFlags(n2()),
      ]);
      assert.match(m.stderr(), /did not answer.*printing addresses and identity numbers/);
      await fx.lab.probe(pod("client"), "TCP", pod("web").ip, 8080, 1000);
      const r = await m.done;
      assert.equal(r.code, 0, r.stderr);
      const [ev] = jsonLines(r.stdout) as [Json & { src: Json; dst: Json }];
      assert.equal(ev.reason, "drop_policy");
      assert.deepEqual([ev.src.ip, ev.src.pod, ev.src.identityName], [pod("client").ip, null, null]);
      assert.ok((ev.src.identity as number) >= 256, "a pod identity number");
      assert.match(
        ev.summary as string,
        /^no rule allows ingress to identity \d+ from identity \d+ on TCP\/8080$/,
      );
    });
  });

  describe("errors name the object and the fix", function () {
    const missing = "/sys/fs/bpf/skein-ctl-test-missing";

    it("nothing pinned: every datapath command says the datapath is not loaded there and how to load it", async function () {
      const fix = new RegExp(
        `the datapath is not loaded[^]*start skein-agent, or run 'skeinctl datapath load --bpffs-root ${missing}'`,
      );
      for (const args of [
        ["endpoint", "list"],
        ["map", "list"],
        ["map", "dump", "skn_ipcache"],
        ["map", "dump", "skn_events"],
        ["monitor", "--duration", "1"],
        ["status"],
        ["status", "-o", "json"],
      ]) {
        const r = await ctl(n1(), [...args, "--bpffs-root", missing, "--agent", `http://${n1().ip}:9879`]);
        assert.equal(r.code, 1, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, fix, args.join(" "));
      }
    });

    it("status from the wrong network namespace says to run it in the node's (in-process, root namespace)", async function () {
      const r = await ctlInProcess([
        "status",
        "--bpffs-root",
        n1().bpffsRoot,
        "--agent",
        `http://${n1().ip}:9879`,
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /Attached: +0 TC hook\(s\) in this network namespace/);
      assert.match(
        r.stdout,
        /no interface in this network namespace has Skein's TC filters, though the maps name 2 endpoint\(s\) and an overlay device: run skeinctl in the node's network namespace/,
      );
      const e = await ctlInProcess([
        "endpoint",
        "list",
        "--bpffs-root",
        n1().bpffsRoot,
        "--agent",
        `http://${n1().ip}:9879`,
      ]);
      assert.match(
        e.stdout,
        new RegExp(
          `^${pod("client").ip.replaceAll(".", "\\.")} +shop/client +\\d+ +\\(not in this netns\\)`,
          "m",
        ),
      );
    });

    it("a wrong map name lists the real ones; bad flags say what is expected", async function () {
      const cases: [string[], RegExp][] = [
        [
          ["map", "dump", "nosuch"],
          /no map "nosuch": Skein pins skn_endpoints, skn_ipcache, skn_policy, skn_conntrack2, skn_metrics, skn_events, skn_config/,
        ],
        [["map", "dump"], /map dump needs a map name/],
        [["monitor", "--type", "drops"], /--type must be drop, verdict or all, not drops/],
        [["monitor", "--count", "0"], /--count must be a positive integer, not 0/],
        [["status", "--agent", "localhost:9879"], /--agent must be an http:\/\/ URL/],
      ];
      for (const [args, want] of cases) {
        const r = await ctl(n1(), [...args, "--bpffs-root", n1().bpffsRoot]);
        assert.equal(r.code, 1, args.join(" "));
        assert.match(r.stderr, want);
      }
      const badOutput = await ctl(n1(), ["map", "list", "-o", "yaml"]);
      assert.equal(badOutput.code, 2);
      assert.match(badOutput.stderr, /-o must be json or table, not yaml/);
    });
  });
});
