/**
 * The resident CNI server as a node runs it (its own process, inside a "node" network namespace
 * with the datapath pinned), driven by the test client over its socket: start-up failures, stale
 * sockets, bad frames, many calls without leaking fds or leaving a thread in a pod's namespace,
 * SIGTERM with a call in hand, and SIGKILL at random moments of ADD followed by the fallback
 * plugin's DEL leaving nothing behind.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createConnection } from "node:net";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { encodeRequest, decodeResponse, MAX_PAYLOAD_BYTES } from "../../cni/server-codec.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";
import {
  SYSTEM_PATH,
  builtForm,
  cniEnv,
  createNetns,
  deleteNetns,
  invoke,
  netnsPath,
  nodeState,
  run,
} from "./plugin-harness.js";
import { callServer, sendRaw, type ServerAnswer } from "./server-client.js";
import { BUILT_SERVER, openFds, startServer, type RunningServer } from "./server-harness.js";

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function assertOk(a: ServerAnswer, what: string): void {
  assert.equal(a.exitCode, 0, `${what} failed: ${a.stdout} ${a.stderr}`);
}

function podAddress(result: Record<string, unknown> | undefined): string {
  const a = ((result?.ips ?? []) as { address: string }[])[0]?.address;
  assert.ok(a !== undefined, `no address in ${JSON.stringify(result)}`);
  return a.split("/")[0]!;
}

/** Inode of a network namespace file. */
function nsInode(path: string): number {
  return statSync(path).ino;
}

/** Network namespace inodes of every thread of `pid`. */
function threadNetns(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => nsInode(`/proc/${pid}/task/${tid}/ns/net`));
}

describe("cni: the resident server, in a node namespace", function () {
  this.timeout(300000);
  const network = "skncsrv";
  let bpffsRoot = "";
  let nodeNs = "";
  let dataDir = "";
  let runDir = "";
  let socket = "";
  let server: RunningServer | undefined;
  const pods: string[] = [];
  const extraServers: RunningServer[] = [];

  const config = (extra: Record<string, unknown> = {}) => ({
    cniVersion: "1.0.0",
    name: network,
    type: "skein-cni",
    podCIDR: "10.125.0.0/22",
    bpffsRoot,
    dataDir,
    mtu: 1400,
    ...extra,
  });
  const env = (
    command: string,
    pod: string | undefined,
    id = pod ?? "none",
    extra: Record<string, string> = {},
  ) => ({
    PATH: SYSTEM_PATH,
    ...cniEnv(command, id, pod, extra),
  });
  function pod(): string {
    const name = createNetns("skncs");
    pods.push(name);
    return name;
  }
  const state = () => nodeState(nodeNs, dataDir, network, bpffsRoot);
  const call = (
    command: string,
    p: string | undefined,
    extra: Record<string, unknown> = {},
    id = p ?? "none",
    envExtra: Record<string, string> = {},
  ) => callServer(socket, env(command, p, id, envExtra), JSON.stringify(config(extra)));

  before(async function () {
    requireRoot(this);
    bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnisrv-")}`;
    loadPinnedDatapath(bpffsRoot);
    nodeNs = createNetns("skncsn");
    dataDir = mkdtempSync(join(tmpdir(), "skn-cnisrv-ipam-"));
    runDir = mkdtempSync(join(tmpdir(), "skn-cnisrv-run-"));
    // A directory the server has to create (0700).
    socket = join(runDir, "skein", "cni.sock");
    server = await startServer(nodeNs, socket);
  });

  after(async function () {
    for (const s of [...extraServers, ...(server === undefined ? [] : [server])])
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
    for (const p of pods) deleteNetns(p);
    if (nodeNs !== "") deleteNetns(nodeNs);
    if (bpffsRoot !== "") unloadPinnedDatapath(bpffsRoot);
    for (const d of [dataDir, runDir]) if (d !== "") rmSync(d, { recursive: true, force: true });
    await Promise.resolve();
  });

  it("creates its directory 0700 and its socket 0600, and logs one line per call", async function () {
    assert.equal(statSync(join(runDir, "skein")).mode & 0o777, 0o700);
    const st = statSync(socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    const v = await callServer(socket, { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    assertOk(v, "VERSION");
    assert.equal((v.json as { cniVersion: string }).cniVersion, "1.0.0");
    // The log line travels on another pipe than the answer: give it a moment.
    const line = /skein-cni-server: VERSION exit 0 in [\d.]+ ms \(queued [\d.]+ ms\)/;
    for (let i = 0; i < 50 && !line.test(server!.log()); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(server!.log(), line);
  });

  it("refuses to start beside a live server, over a non-socket, or without a usable directory", function () {
    const start = (path: string) =>
      spawnSync(
        "nsenter",
        [`--net=${netnsPath(nodeNs)}`, "--", process.execPath, BUILT_SERVER, "--socket", path],
        {
          encoding: "utf8",
          timeout: 30000,
        },
      );
    const live = start(socket);
    assert.equal(live.status, 1);
    assert.match(live.stderr, /cannot start: another skein-cni server is running on/);
    assert.ok(statSync(socket).isSocket(), "the live server's socket is untouched");

    const file = join(runDir, "not-a-socket");
    writeFileSync(file, "precious");
    const notSocket = start(file);
    assert.equal(notSocket.status, 1);
    assert.match(notSocket.stderr, /exists and is not a socket \(not removing it\)/);
    assert.ok(existsSync(file));

    const underFile = start(join(file, "cni.sock"));
    assert.equal(underFile.status, 1);
    assert.match(underFile.stderr, /socket directory .*not-a-socket is not usable/);

    const usage = start("");
    assert.equal(usage.status, 2);
  });

  it("answers bad frames with a CNI error, drops half-sent requests, and keeps serving", async function () {
    const garbage = await sendRaw(socket, [Buffer.from("GET / HTTP/1.1\r\n\r\n")]);
    const g = decodeResponse(garbage.bytes);
    assert.equal(g.exitCode, 1);
    const gj = JSON.parse(g.stdout.toString()) as { code: number; msg: string };
    assert.equal(gj.code, 5);
    assert.match(gj.msg, /refused the request: not a skein-cni request/);

    const v2 = decodeResponse(
      (await sendRaw(socket, [Buffer.concat([Buffer.from("SKNC"), u32(2), u32(0)])])).bytes,
    );
    assert.match(v2.stdout.toString(), /"code":11.*unsupported protocol version 2/);

    const big = decodeResponse(
      (await sendRaw(socket, [Buffer.concat([Buffer.from("SKNC"), u32(1), u32(MAX_PAYLOAD_BYTES + 1)])]))
        .bytes,
    );
    assert.match(big.stdout.toString(), /exceeds the limit/);

    const lying = decodeResponse(
      (await sendRaw(socket, [Buffer.concat([Buffer.from("SKNC"), u32(1), u32(8), u32(1000), u32(0)])]))
        .bytes,
    );
    assert.match(lying.stdout.toString(), /env count 1000 exceeds/);

    // Half a request of an ADD, then the client goes away: nothing runs.
    const before = state();
    const p = pod();
    const frame = encodeRequest({
      env: Object.entries(env("ADD", p)).map(([k, v]) => `${k}=${v}`),
      args: [],
      stdin: Buffer.from(JSON.stringify(config())),
    });
    const half = await sendRaw(socket, [frame.subarray(0, frame.length - 5)], { end: true, timeoutMs: 3000 });
    assert.equal(half.bytes.length, 0, "no answer to half a request");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(state(), before);

    // The whole request in dribbles works.
    const chunks: Buffer[] = [];
    for (let off = 0; off < frame.length; off += 97) chunks.push(frame.subarray(off, off + 97));
    const dribbled = decodeResponse((await sendRaw(socket, chunks, { gapMs: 1 })).bytes);
    assert.equal(dribbled.exitCode, 0, dribbled.stdout.toString());
    assertOk(await call("DEL", p), "DEL");
    assert.deepEqual(state(), before);
  });

  it("200+ calls (sequential lifecycles, 32 queued at once): no fd leaked, every thread stays in the node's namespace", async function () {
    const pid = server!.pid;
    const node = nsInode(netnsPath(nodeNs));
    const empty = state();
    // Warm up (modules, libbpf, worker threads), then count.
    const warm = pod();
    const w = await call("ADD", warm);
    assertOk(w, "warm-up ADD");
    assertOk(await call("DEL", warm, { prevResult: w.json }), "warm-up DEL");
    // Log lines travel apart from the answers: let the warm-up's arrive before counting.
    await new Promise((r) => setTimeout(r, 200));
    const fdsBefore = openFds(pid).length;
    const callsBefore = server!
      .log()
      .split("\n")
      .filter((l) => / exit \d+ in /.test(l)).length;

    let calls = 0;
    for (let i = 0; i < 40; i++) {
      const p = pod();
      const added = await call("ADD", p);
      assertOk(added, `ADD ${i}`);
      assertOk(await call("CHECK", p, { prevResult: added.json }), `CHECK ${i}`);
      assertOk(await call("DEL", p, { prevResult: added.json }), `DEL ${i}`);
      // Failing calls too: a fault after the veth step, and a CHECK of a pod that is gone.
      const failed = await call("ADD", p, {}, p, { SKEIN_CNI_TEST_FAIL_AFTER: "veth" });
      assert.equal(failed.exitCode, 1);
      assert.equal(failed.json?.code, 999);
      deleteNetns(p);
      assertOk(await call("DEL", p), `DEL ${i} of a vanished pod`);
      calls += 5;
      assert.deepEqual(
        threadNetns(pid),
        threadNetns(pid).map(() => node),
        `after lifecycle ${i}`,
      );
    }

    // 32 at once: queued, one at a time, distinct addresses.
    const many = Array.from({ length: 32 }, () => pod());
    const added = await Promise.all(many.map((p) => call("ADD", p)));
    added.forEach((a, i) => {
      assertOk(a, `concurrent ADD ${i}`);
    });
    assert.equal(new Set(added.map((a) => podAddress(a.json))).size, 32);
    const deleted = await Promise.all(many.map((p, i) => call("DEL", p, { prevResult: added[i]!.json })));
    deleted.forEach((d, i) => {
      assertOk(d, `concurrent DEL ${i}`);
    });
    calls += 64;

    assert.ok(calls >= 200, `${calls} calls`);
    assert.deepEqual(state(), empty);
    for (const ino of threadNetns(pid))
      assert.equal(ino, node, "a server thread is outside the node's namespace");
    const fdsAfter = openFds(pid).length;
    assert.ok(fdsAfter <= fdsBefore, `fds before ${fdsBefore}, after ${fdsAfter}: ${openFds(pid).join(" ")}`);
    await new Promise((r) => setTimeout(r, 200));
    const logged = server!
      .log()
      .split("\n")
      .filter((l) => / exit \d+ in /.test(l)).length;
    assert.equal(logged - callsBefore, calls, "one log line per call");
  });

  it("--host-proc: CNI_NETNS under /proc/ is opened under the host's /proc mount; the result names the runtime's path", async function () {
    const holder = spawn("unshare", ["--net", "--", "sleep", "120"], { stdio: "ignore" });
    const hostProc = join(runDir, "hostproc");
    mkdirSync(hostProc);
    // A PID that does not exist here: only the mapping reaches the holder's namespace.
    const fakePid = "999999999";
    const other = join(runDir, "hp.sock");
    let s2: RunningServer | undefined;
    try {
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(holder.pid !== undefined && holder.exitCode === null);
      symlinkSync(`/proc/${holder.pid}`, join(hostProc, fakePid));
      s2 = await startServer(nodeNs, other, [process.execPath, BUILT_SERVER, "--host-proc", hostProc]);
      extraServers.push(s2);
      const nsPath = `/proc/${fakePid}/ns/net`;
      const e = { ...env("ADD", undefined, "hostproc"), CNI_NETNS: nsPath };
      const cfg = JSON.stringify(config());
      const added = await callServer(other, e, cfg);
      assertOk(added, "ADD into a mapped /proc path");
      assert.equal((added.json!.interfaces as { sandbox?: string }[])[1]!.sandbox, nsPath);
      const withPrev = JSON.stringify(config({ prevResult: added.json }));
      assertOk(await callServer(other, { ...e, CNI_COMMAND: "CHECK" }, withPrev), "CHECK");
      assertOk(await callServer(other, { ...e, CNI_COMMAND: "DEL" }, withPrev), "DEL");
      // Without the mapping the same path does not exist.
      const unmapped = await callServer(socket, e, cfg);
      assert.equal(unmapped.json?.code, 3, unmapped.stdout);
    } finally {
      holder.kill("SIGKILL");
      if (s2 !== undefined) assert.equal((await s2.stop()).code, 0);
    }
  });

  it("SKEIN_CNI_TRACE=1 in the request traces to the request's stderr only", async function () {
    const p = pod();
    const traced = await call("ADD", p, {}, p, { SKEIN_CNI_TRACE: "1" });
    assertOk(traced, "traced ADD");
    assert.match(traced.stderr, /skein-cni: [\d.]+ ms kernel loaded/);
    assert.match(traced.stderr, /step endpoint done/);
    const quiet = await call("DEL", p, { prevResult: traced.json });
    assertOk(quiet, "DEL");
    assert.equal(quiet.stderr, "");
    assert.doesNotMatch(server!.log(), /kernel loaded/);
  });

  it("finishes an ADD whose client went away; the runtime's DEL then frees it", async function () {
    const empty = state();
    const p = pod();
    const frame = encodeRequest({
      env: Object.entries(env("ADD", p)).map(([k, v]) => `${k}=${v}`),
      args: [],
      stdin: Buffer.from(JSON.stringify(config())),
    });
    // Send everything and hang up as soon as it is written, without waiting for the answer.
    await new Promise<void>((resolvePromise, reject) => {
      const c = createConnection(socket);
      c.on("error", reject);
      c.on("connect", () => {
        c.end(frame, () => {
          c.destroy();
          resolvePromise();
        });
      });
    });
    // A VERSION queued behind it answers only after the ADD ran.
    assertOk(await callServer(socket, { CNI_COMMAND: "VERSION" }, "{}"), "VERSION");
    assert.equal(state().reservations.length, empty.reservations.length + 1, "the ADD ran to its end");
    assertOk(await call("DEL", p), "DEL");
    assert.deepEqual(state(), empty);
  });

  it("SIGTERM with calls in hand: they are answered, the socket is removed, exit 0; a new server starts", async function () {
    const empty = state();
    const ps = [pod(), pod(), pod()];
    const pending = ps.map((p) => call("ADD", p));
    await new Promise((r) => setTimeout(r, 20));
    server!.child.kill("SIGTERM");
    const answers = await Promise.all(pending);
    answers.forEach((a, i) => {
      assertOk(a, `ADD ${i} in hand at SIGTERM`);
    });
    const ended = await server!.exited;
    assert.equal(ended.code, 0, server!.log());
    assert.ok(!existsSync(socket), "socket removed");
    assert.match(server!.log(), /SIGTERM: stopping/);
    server = await startServer(nodeNs, socket);
    for (const [i, p] of ps.entries())
      assertOk(await call("DEL", p, { prevResult: answers[i]!.json }), `DEL ${i}`);
    assert.deepEqual(state(), empty);
  });

  it("SIGKILL at random moments of ADDs; the fallback plugin's DEL leaves nothing; a restart clears the stale socket", async function () {
    const KILLS = 20;
    const empty = state();
    // How long the server takes for an ADD here (client's view), so the kills spread over it.
    let fullMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const p = pod();
      const a = await call("ADD", p);
      assertOk(a, "probe ADD");
      fullMs = Math.min(fullMs, a.ms);
      assertOk(await call("DEL", p, { prevResult: a.json }), "probe DEL");
    }
    const plugin = builtForm();
    const outcomes = { answered: 0, killed: 0 };
    for (let i = 0; i < KILLS; i++) {
      const victim = pod();
      const s = server!;
      const at = fullMs * 1.2 * Math.random();
      let timer: NodeJS.Timeout | undefined;
      // The kill goes at a random moment after the whole request was sent.
      const answer = await callServer(socket, env("ADD", victim), JSON.stringify(config()), {
        onSent: () => {
          timer = setTimeout(() => s.child.kill("SIGKILL"), at);
        },
      }).catch(() => undefined);
      clearTimeout(timer);
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
      await s.exited;
      if (answer === undefined) outcomes.killed++;
      else outcomes.answered++;
      // The shim would run the Node plugin now: the runtime's DEL goes through it.
      const d = invoke(plugin, nodeNs, { env: cniEnv("DEL", victim, victim), config: config() });
      assert.equal(d.exit, 0, `fallback DEL after a kill at ${at.toFixed(1)} ms: ${d.stdout} ${d.stderr}`);
      const links = run("nsenter", [`--net=${netnsPath(victim)}`, "--", "ip", "-o", "link", "show"]).stdout;
      assert.equal(links.trim().split("\n").length, 1, `only lo left in the pod: ${links}`);
      assert.ok(statSync(socket).isSocket(), "the killed server left its socket behind");
      server = await startServer(nodeNs, socket);
      assert.deepEqual(state(), empty, `after kill ${i} at ${at.toFixed(1)} ms`);
    }
    assert.ok(outcomes.killed >= 3, `too few kills landed mid-ADD: ${JSON.stringify(outcomes)}`);
    const leftovers = readdirSync(join(dataDir, network)).filter(
      (f) => f !== "lock" && f !== "last_reserved_ip",
    );
    // A killed ADD may leave a temporary file (never a reservation); the next ADD sweeps it.
    const last = pod();
    const a = await call("ADD", last);
    assertOk(a, "ADD after the kills");
    assertOk(await call("DEL", last, { prevResult: a.json }), "DEL after the kills");
    assert.deepEqual(
      readdirSync(join(dataDir, network)).filter((f) => f !== "lock" && f !== "last_reserved_ip"),
      [],
      `IPAM directory holds only the lock and the rotation mark (before the sweep: ${leftovers.join(" ")})`,
    );
    assert.deepEqual(state(), empty);
  });
});
