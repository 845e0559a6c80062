/**
 * skein-cni invoked exactly as a runtime does, in both its forms (dist/bin/skein-cni and the
 * installed bundle with no system node reachable), against the real datapath pinned in a private
 * bpffs root, with host veths in a "node" network namespace and pods in their own namespaces.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { hostVethName } from "../../cni/names.js";
import { parseIPv4 } from "../../maps/net.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";
import { hooksIn } from "../helpers/hooks.js";
import { hookKind } from "../helpers/tcx.js";
import {
  builtForm,
  cniEnv,
  createNetns,
  deleteNetns,
  endpointEntries,
  installToTemp,
  installedForm,
  invoke,
  invokeAsync,
  must,
  netnsPath,
  nodeState,
  reservations,
  run,
  type Outcome,
  type PluginForm,
} from "./plugin-harness.js";
import { installedServer, serverForm, startServer, type RunningServer } from "./server-harness.js";

function assertOk(o: Outcome, what: string): void {
  assert.equal(o.exit, 0, `${what} failed: ${o.stdout} ${o.stderr}`);
}

function assertCode(o: Outcome, code: number, what: string): void {
  assert.notEqual(o.exit, 0, `${what} should fail`);
  assert.equal(o.json?.code, code, `${what}: expected code ${code}, got ${o.stdout} ${o.stderr}`);
}

function podAddress(result: Record<string, unknown> | undefined): string {
  const ips = (result?.ips ?? []) as { address: string }[];
  const a = ips[0]?.address;
  assert.ok(a !== undefined, `no address in ${JSON.stringify(result)}`);
  return a.split("/")[0]!;
}

/** Kills processes this test started, by PID. */
function killAll(children: ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.length = 0;
}

const TCP_SERVER = `
const net = require("node:net"), crypto = require("node:crypto");
const [ip, port] = process.argv.slice(1);
const server = net.createServer((c) => {
  const h = crypto.createHash("sha256"); let n = 0;
  c.on("data", (d) => { n += d.length; h.update(d); });
  c.on("end", () => { c.end(n + " " + h.digest("hex")); server.close(); });
});
server.listen(Number(port), ip, () => console.log("listening"));
`;

const TCP_CLIENT = `
const net = require("node:net"), crypto = require("node:crypto");
const [ip, port, size] = process.argv.slice(1);
const data = crypto.randomBytes(Number(size));
const c = net.connect(Number(port), ip, () => { c.end(data); });
let reply = ""; c.on("data", (d) => (reply += d));
c.on("end", () => console.log(JSON.stringify({ reply, expected: data.length + " " + crypto.createHash("sha256").update(data).digest("hex") })));
c.setTimeout(20000, () => { console.error("timeout"); process.exit(3); });
`;

function pluginSuite(formName: PluginForm["name"]): void {
  describe(`cni: skein-cni (${formName} form) as a runtime runs it, in network namespaces`, function () {
    this.timeout(120000);
    const network = "skntest";
    let bpffsRoot = "";
    let nodeNs = "";
    let dataDir = "";
    let installRoot: string | undefined;
    let form: PluginForm;
    let server: RunningServer | undefined;
    let pods: string[] = [];
    const children: ChildProcess[] = [];

    function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
      return {
        cniVersion: "1.0.0",
        name: network,
        type: "skein-cni",
        podCIDR: "10.123.0.0/24",
        bpffsRoot,
        dataDir,
        mtu: 1400,
        ...extra,
      };
    }
    function pod(): string {
      const name = createNetns("skncp");
      pods.push(name);
      return name;
    }
    function add(
      podNs: string,
      id = podNs,
      extra: Record<string, unknown> = {},
      env: Record<string, string> = {},
    ): Outcome {
      return invoke(form, nodeNs, { env: cniEnv("ADD", id, podNs, env), config: config(extra) });
    }
    function del(podNs: string | undefined, id: string, extra: Record<string, unknown> = {}): Outcome {
      return invoke(form, nodeNs, { env: cniEnv("DEL", id, podNs), config: config(extra) });
    }
    function state() {
      return nodeState(nodeNs, dataDir, network, bpffsRoot);
    }
    function inPod(podNs: string, cmd: string[]): ReturnType<typeof run> {
      return run("nsenter", [`--net=${netnsPath(podNs)}`, "--", ...cmd]);
    }
    function inNode(cmd: string[]): string {
      return must("nsenter", [`--net=${netnsPath(nodeNs)}`, "--", ...cmd]);
    }

    before(async function () {
      requireRoot(this);
      bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnitest-")}`;
      loadPinnedDatapath(bpffsRoot);
      nodeNs = createNetns("skncn");
      dataDir = mkdtempSync(join(tmpdir(), "skn-cni-ipam-"));
      if (formName === "built") form = builtForm();
      else if (formName === "server") {
        const installed = installToTemp();
        installRoot = installed.root;
        const socket = join(installed.root, "run", "cni.sock");
        server = await startServer(nodeNs, socket, installedServer(installed.binDir));
        form = serverForm(socket);
      } else {
        const installed = installToTemp();
        installRoot = installed.root;
        const cwd = join(installed.root, "cwd");
        mkdirSync(cwd);
        form = installedForm(installed.binDir, cwd);
      }
    });

    afterEach(function () {
      killAll(children);
      for (const p of pods) deleteNetns(p);
      pods = [];
      if (nodeNs === "") return;
      // Nothing may outlive a test: DEL would have removed it, so anything left is a leak of the test.
      for (const name of state().links.filter((l) => l.startsWith("skn")))
        run("ip", ["-n", nodeNs, "link", "del", name]);
      for (const [ip] of endpointEntries(bpffsRoot))
        must("bpftool", [
          "map",
          "delete",
          "pinned",
          join(bpffsRoot, "skn_endpoints"),
          "key",
          ...ipKeyBytes(ip),
        ]);
      rmSync(join(dataDir, network), { recursive: true, force: true });
    });

    after(async function () {
      killAll(children);
      if (server !== undefined) {
        const ended = await server.stop();
        assert.equal(ended.code, 0, `server exit: ${server.log()}`);
        assert.ok(!existsSync(server.socketPath), "the server removed its socket");
      }
      if (nodeNs !== "") deleteNetns(nodeNs);
      if (bpffsRoot !== "") unloadPinnedDatapath(bpffsRoot);
      if (dataDir !== "") rmSync(dataDir, { recursive: true, force: true });
      if (installRoot !== undefined) rmSync(installRoot, { recursive: true, force: true });
    });

    it("VERSION lists the supported versions", function () {
      const o = invoke(form, nodeNs, { env: { CNI_COMMAND: "VERSION" }, config: { cniVersion: "1.0.0" } });
      assertOk(o, "VERSION");
      assert.deepEqual(o.json, {
        cniVersion: "1.0.0",
        supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
      });
    });

    it("wires two pods that ping and exchange TCP data through the datapath; CHECK, then DEL removes everything", async function () {
      const empty = state();
      const [p1, p2] = [pod(), pod()];
      const r1 = add(p1);
      const r2 = add(p2);
      assertOk(r1, "ADD pod 1");
      assertOk(r2, "ADD pod 2");
      const [ip1, ip2] = [podAddress(r1.json), podAddress(r2.json)];
      assert.notEqual(ip1, ip2);
      const [h1, h2] = [hostVethName(p1, "eth0"), hostVethName(p2, "eth0")];

      // The result describes what was made.
      const ifs = r1.json!.interfaces as { name: string; mac: string; sandbox?: string }[];
      assert.equal(ifs[0]!.name, h1);
      assert.equal(ifs[1]!.sandbox, netnsPath(p1));
      const podLink = (
        JSON.parse(inPod(p1, ["ip", "-j", "link", "show", "eth0"]).stdout) as {
          address: string;
          mtu: number;
        }[]
      )[0]!;
      assert.equal(podLink.address, ifs[1]!.mac);
      assert.equal(podLink.mtu, 1400);

      // Pod side: address, routes, permanent gateway neighbour.
      assert.match(
        inPod(p1, ["ip", "-4", "addr", "show", "eth0"]).stdout,
        new RegExp(`inet ${ip1.replaceAll(".", "\\.")}/32`),
      );
      const podRoutes = inPod(p1, ["ip", "route", "show"]).stdout;
      assert.match(podRoutes, /default via 169\.254\.1\.1 dev eth0/);
      assert.match(podRoutes, /169\.254\.1\.1 dev eth0 scope link/);
      assert.match(
        inPod(p1, ["ip", "neigh", "show", "dev", "eth0"]).stdout,
        new RegExp(`169\\.254\\.1\\.1 lladdr ${ifs[0]!.mac} PERMANENT`),
      );
      // Host side: route and permanent neighbour.
      assert.match(
        inNode(["ip", "route", "show"]),
        new RegExp(`${ip1.replaceAll(".", "\\.")} dev ${h1} scope link`),
      );
      assert.match(
        inNode(["ip", "neigh", "show", "dev", h1]),
        new RegExp(`${ip1.replaceAll(".", "\\.")} lladdr ${ifs[1]!.mac} PERMANENT`),
      );

      // Our programs on both host veths, in both directions (tcx where the kernel has it).
      const hooks = hooksIn(nodeNs);
      const kind = hookKind();
      for (const h of [h1, h2]) {
        assert.deepEqual(
          [hooks.get(`${h} ingress`)?.program, hooks.get(`${h} ingress`)?.kind],
          ["skn_from_pod", kind],
        );
        assert.deepEqual(
          [hooks.get(`${h} egress`)?.program, hooks.get(`${h} egress`)?.kind],
          ["skn_to_pod", kind],
        );
      }

      // The endpoints map, as bpftool prints it with BTF field names.
      const dump = must("bpftool", ["map", "dump", "pinned", join(bpffsRoot, "skn_endpoints")]);
      for (const name of ["ip_be", "ifindex", "flags", "mac", "host_mac"])
        assert.match(dump, new RegExp(`"${name}"`));
      const entries = JSON.parse(dump) as {
        key: { ip_be: number };
        value: { ifindex: number; mac: number[]; host_mac: number[] };
      }[];
      const links = JSON.parse(inNode(["ip", "-j", "link", "show"])) as {
        ifname: string;
        ifindex: number;
        address: string;
      }[];
      for (const [ip, h, result] of [
        [ip1, h1, r1],
        [ip2, h2, r2],
      ] as const) {
        // ip_be is the address in network order, read by bpftool as a little-endian u32.
        const be = Buffer.alloc(4);
        be.writeUInt32BE(parseIPv4(ip));
        const entry = entries.find((e) => e.key.ip_be === be.readUInt32LE());
        assert.ok(entry !== undefined, `no entry for ${ip} in ${dump}`);
        const link = links.find((l) => l.ifname === h)!;
        assert.equal(entry.value.ifindex, link.ifindex);
        const macHex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
        assert.equal(macHex(entry.value.host_mac), link.address);
        assert.equal(macHex(entry.value.mac), (result.json!.interfaces as { mac: string }[])[1]!.mac);
      }

      // Traffic, only between our two pods.
      const ping = inPod(p1, ["ping", "-c", "3", "-i", "0.2", "-W", "2", ip2]);
      assert.equal(ping.status, 0, ping.stdout + ping.stderr);
      assert.match(ping.stdout, /3 received/);
      assert.equal(inPod(p2, ["ping", "-c", "2", "-i", "0.2", "-W", "2", ip1]).status, 0);

      const server = spawn(
        "nsenter",
        [`--net=${netnsPath(p2)}`, "--", process.execPath, "-e", TCP_SERVER, ip2, "7001"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      children.push(server);
      await new Promise<void>((resolve, reject) => {
        server.stdout.on("data", (d: Buffer) => {
          if (d.toString().includes("listening")) resolve();
        });
        server.on("exit", (code) => {
          reject(new Error(`TCP server exited ${code}`));
        });
        setTimeout(() => {
          reject(new Error("TCP server did not start"));
        }, 10000);
      });
      const client = inPod(p1, [process.execPath, "-e", TCP_CLIENT, ip2, "7001", String(4 * 1024 * 1024)]);
      assert.equal(client.status, 0, client.stderr);
      const { reply, expected } = JSON.parse(client.stdout) as { reply: string; expected: string };
      assert.equal(reply, expected, "the server received exactly the bytes sent");

      // CHECK passes on a good pod.
      assertOk(
        invoke(form, nodeNs, { env: cniEnv("CHECK", p1, p1), config: config({ prevResult: r1.json }) }),
        "CHECK",
      );
      assertOk(
        invoke(form, nodeNs, { env: cniEnv("CHECK", p2, p2), config: config({ prevResult: r2.json }) }),
        "CHECK",
      );
      // ... and fails once its host route is gone.
      inNode(["ip", "route", "del", `${ip1}/32`, "dev", h1]);
      const broken = invoke(form, nodeNs, {
        env: cniEnv("CHECK", p1, p1),
        config: config({ prevResult: r1.json }),
      });
      assertCode(broken, 103, "CHECK without host route");
      assert.match(String(broken.json?.msg), /host route/);

      // DEL removes veth, routes, neighbours, qdisc, endpoint entry and reservation; again: still fine.
      assertOk(del(p1, p1, { prevResult: r1.json }), "DEL pod 1");
      assertOk(del(p2, p2, { prevResult: r2.json }), "DEL pod 2");
      assert.deepEqual(state(), empty);
      assert.deepEqual(
        inPod(p1, ["ip", "-o", "link", "show"]).stdout.trim().split("\n").length,
        1,
        "only lo left in the pod",
      );
      assertOk(del(p1, p1, { prevResult: r1.json }), "second DEL");
      assertOk(del(undefined, p2), "DEL without CNI_NETNS and prevResult");
      assert.deepEqual(state(), empty);
    });

    it("accepts CNI_NETNS as /proc/PID/ns/net", async function () {
      const empty = state();
      const holder = spawn("unshare", ["--net", "--", "sleep", "120"], { stdio: "ignore" });
      children.push(holder);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(holder.pid !== undefined && holder.exitCode === null, "namespace holder is running");
      const nsPath = `/proc/${holder.pid}/ns/net`;
      const env = { ...cniEnv("ADD", "procpid", undefined), CNI_NETNS: nsPath };
      const added = invoke(form, nodeNs, { env, config: config() });
      assertOk(added, "ADD into /proc/PID/ns/net");
      const ip = podAddress(added.json);
      assert.match(
        must("nsenter", [`--net=${nsPath}`, "--", "ip", "-4", "addr", "show", "eth0"]),
        new RegExp(`inet ${ip.replaceAll(".", "\\.")}/32`),
      );
      assert.equal((added.json!.interfaces as { sandbox?: string }[])[1]!.sandbox, nsPath);
      assertOk(
        invoke(form, nodeNs, {
          env: { ...env, CNI_COMMAND: "CHECK" },
          config: config({ prevResult: added.json }),
        }),
        "CHECK",
      );
      assertOk(
        invoke(form, nodeNs, {
          env: { ...env, CNI_COMMAND: "DEL" },
          config: config({ prevResult: added.json }),
        }),
        "DEL",
      );
      assert.deepEqual(state(), empty);
    });

    it("DEL succeeds when the pod's netns is already gone, and frees everything", function () {
      const empty = state();
      const p = pod();
      const r = add(p);
      assertOk(r, "ADD");
      deleteNetns(p);
      assertOk(del(p, p, { prevResult: r.json }), "DEL with a vanished netns");
      assertOk(del(p, p), "DEL again");
      assert.deepEqual(state(), empty);
    });

    it("a failed ADD leaves nothing behind: interface name taken in the pod", function () {
      const p = pod();
      must("ip", ["-n", p, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
      const before = state();
      const o = add(p);
      assertCode(o, 102, "ADD onto a taken eth0");
      assert.match(String(o.json?.msg), /eth0 already exists/);
      assert.deepEqual(state(), before);
      // podman calls DEL right after a failed ADD, without prevResult.
      assertOk(del(p, p), "DEL after the failed ADD");
      assert.deepEqual(state(), before);
      assert.match(
        inPod(p, ["ip", "link", "show", "eth0"]).stdout,
        /eth0@eth0peer/,
        "the pod's own eth0 is untouched",
      );
    });

    for (const step of ["ipam", "veth", "pod", "tc", "endpoint"]) {
      it(`a failed ADD leaves nothing behind: failure injected after "${step}"`, function () {
        const p = pod();
        const before = state();
        const o = add(p, p, {}, { SKEIN_CNI_TEST_FAIL_AFTER: step });
        assertCode(o, 999, `ADD failing after ${step}`);
        assert.deepEqual(state(), before);
        assert.equal(
          inPod(p, ["ip", "-o", "link", "show"]).stdout.trim().split("\n").length,
          1,
          "no interface left in the pod",
        );
      });
    }

    it("a failed ADD leaves nothing behind: bad bpffsRoot (not loaded: 11; not bpffs: 100)", function () {
      const p = pod();
      const before = state();
      assertCode(add(p, p, { bpffsRoot: "/sys/fs/bpf/skn-nonexistent" }), 11, "ADD with no datapath");
      const fake = mkdtempSync(join(tmpdir(), "skn-fake-bpffs-"));
      try {
        for (const f of ["skn_from_pod", "skn_to_pod", "skn_endpoints"]) writeFileSync(join(fake, f), "");
        assertCode(add(p, p, { bpffsRoot: fake }), 100, "ADD with pins that are not BPF objects");
      } finally {
        rmSync(fake, { recursive: true, force: true });
      }
      assert.deepEqual(state(), before);
    });

    it("32 concurrent ADDs get 32 distinct addresses; 32 concurrent DELs free them all", async function () {
      this.timeout(300000);
      const empty = state();
      const many = Array.from({ length: 32 }, () => pod());
      const added = await Promise.all(
        many.map((p) => invokeAsync(form, nodeNs, { env: cniEnv("ADD", p, p), config: config() })),
      );
      added.forEach((o, i) => {
        assertOk(o, `ADD ${i}`);
      });
      const ips = added.map((o) => podAddress(o.json));
      assert.equal(new Set(ips).size, 32, `duplicates: ${ips.join(" ")}`);
      assert.deepEqual(reservations(dataDir, network), [...ips].sort());
      assert.equal(endpointEntries(bpffsRoot).length, 32);
      assert.equal(state().links.filter((l) => l.startsWith("skn")).length, 32);
      const deleted = await Promise.all(
        many.map((p, i) =>
          invokeAsync(form, nodeNs, {
            env: cniEnv("DEL", p, p),
            config: config({ prevResult: added[i]!.json }),
          }),
        ),
      );
      deleted.forEach((o, i) => {
        assertOk(o, `DEL ${i}`);
      });
      assert.deepEqual(state(), empty);
    });

    it("bad input gets the right code and changes nothing", function () {
      const p = pod();
      assertOk(add(p, "occupant"), "ADD");
      const before = state();
      const cases: [string, Outcome, number][] = [
        [
          "malformed JSON",
          invoke(form, nodeNs, { env: cniEnv("ADD", "x1", p), config: '{"cniVersion":"1.0.0",' }),
          6,
        ],
        [
          "unknown cniVersion",
          invoke(form, nodeNs, { env: cniEnv("ADD", "x2", p), config: config({ cniVersion: "7.0.0" }) }),
          1,
        ],
        [
          "missing CNI_NETNS",
          invoke(form, nodeNs, { env: cniEnv("ADD", "x3", undefined), config: config() }),
          4,
        ],
        [
          "missing CNI_COMMAND",
          invoke(form, nodeNs, { env: { CNI_CONTAINERID: "x4" }, config: config() }),
          4,
        ],
        [
          "invalid config",
          invoke(form, nodeNs, { env: cniEnv("ADD", "x5", p), config: config({ podCIDR: "10.0.0.0/40" }) }),
          7,
        ],
      ];
      for (const [what, o, code] of cases) {
        assertCode(o, code, what);
        assert.deepEqual(Object.keys(o.json!).sort(), ["cniVersion", "code", "details", "msg"]);
      }
      assert.deepEqual(state(), before);

      // podCIDR exhausted: a /30 has one allocatable address.
      const small = { podCIDR: "10.124.0.0/30" };
      const [q1, q2] = [pod(), pod()];
      const first = add(q1, q1, small);
      assertOk(first, "ADD into /30");
      const full = state();
      const o = add(q2, q2, small);
      assertCode(o, 101, "ADD into an exhausted /30");
      assert.match(String(o.json?.msg), /no IP addresses available/);
      assert.deepEqual(state(), full);
      assertOk(del(q1, q1, { ...small, prevResult: first.json }), "DEL");
      assertOk(del(p, "occupant"), "DEL");
    });

    it("STATUS: 50 without the datapath, success with it; ADD then answers 11 and changes nothing", function () {
      const status = (root: string) =>
        invoke(form, nodeNs, {
          env: { CNI_COMMAND: "STATUS", CNI_PATH: "/opt/cni/bin" },
          config: config({ cniVersion: "1.1.0", bpffsRoot: root }),
        });
      const ok = status(bpffsRoot);
      assertOk(ok, "STATUS");
      assert.equal(ok.stdout, "");
      const missing = `/sys/fs/bpf/${uniqueName("skn-cninone-")}`;
      assertCode(status(missing), 50, "STATUS without datapath");
      const p = pod();
      const before = state();
      assertCode(add(p, p, { bpffsRoot: missing }), 11, "ADD without datapath");
      assert.deepEqual(state(), before);
    });

    it("GC removes stale attachments (veth, reservation, endpoint) and keeps the valid ones", function () {
      const [a, b, c] = [pod(), pod(), pod()];
      for (const p of [a, b, c]) assertOk(add(p), `ADD ${p}`);
      // A crashed ADD: a reservation and nothing else; and an orphan veth nobody reserved.
      writeFileSync(join(dataDir, network, "10.123.0.250"), "crashed-ctr\neth0\n");
      const orphan = hostVethName("orphan-ctr", "eth0");
      must("ip", ["-n", nodeNs, "link", "add", orphan, "type", "veth", "peer", "name", `${orphan}p`]);

      const valid = [a, b].map((p) => ({ containerID: p, ifname: "eth0" }));
      const o = invoke(form, nodeNs, {
        env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
        config: config({ cniVersion: "1.1.0", "cni.dev/valid-attachments": valid }),
      });
      assertOk(o, "GC");
      const after = state();
      assert.deepEqual(
        after.links.filter((l) => l.startsWith("skn")).sort(),
        [hostVethName(a, "eth0"), hostVethName(b, "eth0")].sort(),
      );
      assert.equal(after.reservations.length, 2);
      assert.deepEqual(after.endpoints.map(([ip]) => ip).sort(), [...after.reservations].sort());
      assert.ok(!after.reservations.includes("10.123.0.250"));
      // The kept pods still work.
      const ipB = after.reservations.find((ip) => inPod(b, ["ip", "-4", "-o", "addr"]).stdout.includes(ip))!;
      assert.equal(inPod(a, ["ping", "-c", "1", "-W", "2", ipB]).status, 0);
      for (const p of [a, b, c]) assertOk(del(p, p), `DEL ${p}`);
    });
  });
}

/** Key bytes of an endpoint entry for bpftool (network order). */
function ipKeyBytes(ip: string): string[] {
  return ip.split(".");
}

pluginSuite("built");
pluginSuite("installed");
pluginSuite("server");
