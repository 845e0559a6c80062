/**
 * Interop with a real CNI client: Debian's podman 4.3 with its CNI network backend runs the
 * *installed* skein-cni. podman calls VERSION to validate the conflist, VERSION before ADD and
 * before a regular DEL (which carries prevResult), and DEL without prevResult (and without a
 * VERSION) right after a failed ADD: the recording shim below checks that sequence. podman itself
 * runs inside a "node" network namespace, so the host veths live there; its state lives under a
 * temporary --root/--runroot/--tmpdir.
 */
import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPinnedDatapath, unloadPinnedDatapath } from "../../maps/datapath/pinned.js";
import { uniqueName } from "../helpers/names.js";
import { containersConf, releaseStorage, storageFlags } from "../helpers/podman.js";
import { inCi, requireRoot } from "../helpers/privileged.js";
import {
  createNetns,
  deleteNetns,
  endpointEntries,
  installToTemp,
  must,
  netnsPath,
  reservations,
  run,
  type RunResult,
} from "./plugin-harness.js";

/** Directories libcni (inside podman) creates for its result cache; removed again if we made them and they are empty. */
const LIBCNI_CACHE_DIRS = ["/var/lib/cni/results", "/var/lib/cni"];

function which(name: string): string | undefined {
  const r = run("sh", ["-c", `command -v ${name}`]);
  return r.status === 0 ? r.stdout.trim() : undefined;
}

describe("cni: interop with podman 4.3 (CNI backend) running the installed skein-cni", function () {
  this.timeout(180000);
  const network = uniqueName("sknpod");
  let work = "";
  let nodeNs = "";
  let bpffsRoot = "";
  let installRoot: string | undefined;
  let dataDir: string;
  let env: Record<string, string>;
  let podmanArgs: string[];
  let rootfs: string;
  let callLog = "";
  let recordingConf = "";
  const containers: string[] = [];
  const cacheDirsBefore = new Set(LIBCNI_CACHE_DIRS.filter((d) => existsSync(d)));

  function podman(args: string[]): RunResult {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return run(
      "nsenter",
      [`--net=${netnsPath(nodeNs)}`, "--", "env", ...envArgs, "podman", ...podmanArgs, ...args],
      { timeoutMs: 120000 },
    );
  }
  function podmanOk(args: string[]): string {
    const r = podman(args);
    assert.equal(r.status, 0, `podman ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  }
  function nodeLinks(): string[] {
    return (JSON.parse(must("ip", ["-n", nodeNs, "-j", "link", "show"])) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n.startsWith("skn"));
  }

  before(function () {
    requireRoot(this);
    for (const tool of ["podman", "runc", "conmon"]) {
      if (which(tool) !== undefined) continue;
      if (inCi()) throw new Error(`${tool} is required for the podman interop test`);
      this.skip();
    }
    work = mkdtempSync(join(tmpdir(), "skn-podman-"));
    dataDir = join(work, "ipam");
    // A busybox root filesystem: the static binary and one symlink per applet.
    rootfs = join(work, "rootfs");
    for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "run"])
      mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
    for (const applet of must("/bin/busybox", ["--list"]).split("\n")) {
      if (applet !== "" && applet !== "busybox") symlinkSync("busybox", join(rootfs, "bin", applet));
    }
    const installed = installToTemp();
    installRoot = installed.root;
    bpffsRoot = `/sys/fs/bpf/${uniqueName("skn-cnipod-")}`;
    loadPinnedDatapath(bpffsRoot);
    nodeNs = createNetns("skncpn");
    const netDir = join(work, "net.d");
    mkdirSync(netDir);
    writeFileSync(
      join(netDir, `${network}.conflist`),
      JSON.stringify({
        cniVersion: "1.0.0",
        name: network,
        plugins: [{ type: "skein-cni", podCIDR: "10.126.0.0/24", bpffsRoot, dataDir, mtu: 1400 }],
      }),
    );
    writeFileSync(
      join(work, "containers.conf"),
      containersConf(work, { pluginDirs: [installed.binDir], networkConfigDir: netDir }),
    );
    // A second configuration puts a recording shim in front of the installed plugin: it logs each
    // call's CNI_COMMAND and whether a prevResult came along, then execs the installed plugin.
    const shimDir = join(work, "shim-bin");
    mkdirSync(shimDir);
    callLog = join(work, "calls.log");
    writeFileSync(
      join(shimDir, "skein-cni"),
      [
        "#!/bin/sh",
        "in=$(cat)",
        "case $in in *prevResult*) p=prevResult ;; *) p=noPrevResult ;; esac",
        `echo "$CNI_COMMAND $p" >> '${callLog}'`,
        `printf '%s' "$in" | exec '${join(installed.binDir, "skein-cni")}'`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    recordingConf = join(work, "containers-recording.conf");
    writeFileSync(recordingConf, containersConf(work, { pluginDirs: [shimDir], networkConfigDir: netDir }));
    env = {
      CONTAINERS_CONF: join(work, "containers.conf"),
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    };
    podmanArgs = storageFlags(work);
  });

  after(async function () {
    if (work === "") return;
    if (containers.length > 0) podman(["rm", "-f", "-t", "0", ...containers]);
    await releaseStorage(work);
    if (nodeNs !== "") deleteNetns(nodeNs);
    if (bpffsRoot !== "") unloadPinnedDatapath(bpffsRoot);
    if (installRoot !== undefined) rmSync(installRoot, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    for (const dir of LIBCNI_CACHE_DIRS) {
      if (cacheDirsBefore.has(dir) || !existsSync(dir) || readdirSync(dir).length > 0) continue;
      rmdirSync(dir);
    }
  });

  it("podman lists the Skein network (it validated the conflist through VERSION)", function () {
    const out = podmanOk(["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert.match(out, new RegExp(`^${network} skein-cni$`, "m"));
  });

  it("two containers on the Skein network reach each other; podman rm -f frees their addresses", function () {
    const names = [uniqueName("skna"), uniqueName("sknb")];
    for (const name of names) {
      containers.push(name);
      podmanOk(["run", "-d", "--name", name, "--network", network, "--rootfs", rootfs, "sleep", "600"]);
    }
    const ips = names.map((n) =>
      podmanOk(["inspect", n, "--format", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`]),
    );
    assert.equal(new Set(ips).size, 2);
    for (const ip of ips) assert.match(ip, /^10\.126\.0\.\d+$/);
    assert.deepEqual(reservations(dataDir, network), [...ips].sort());
    assert.equal(nodeLinks().length, 2);
    assert.equal(endpointEntries(bpffsRoot).length, 2);

    const ping = podman(["exec", names[0]!, "ping", "-c", "3", "-W", "2", ips[1]!]);
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /3 packets received/);
    assert.equal(podman(["exec", names[1]!, "ping", "-c", "1", "-W", "2", ips[0]!]).status, 0);
    assert.match(podmanOk(["exec", names[0]!, "ip", "route"]), /default via 169\.254\.1\.1 dev eth0/);

    podmanOk(["rm", "-f", "-t", "0", ...names]);
    containers.length = 0;
    assert.deepEqual(reservations(dataDir, network), [], "IPAM dir empty again");
    assert.deepEqual(nodeLinks(), []);
    assert.deepEqual(endpointEntries(bpffsRoot), []);
  });

  it("a failed ADD (datapath not loaded) fails the start; podman's DEL without prevResult leaves nothing", function () {
    unloadPinnedDatapath(bpffsRoot);
    const conf = env.CONTAINERS_CONF!;
    env.CONTAINERS_CONF = recordingConf;
    try {
      const name = uniqueName("sknc");
      containers.push(name);
      const r = podman([
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--rootfs",
        rootfs,
        "sleep",
        "600",
      ]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /not loaded/);
      podman(["rm", "-f", "-t", "0", name]);
      containers.length = 0;
      assert.deepEqual(reservations(dataDir, network), []);
      assert.deepEqual(nodeLinks(), []);
      // What the client did: VERSION, the failed ADD, then at once DEL without prevResult.
      const calls = readFileSync(callLog, "utf8").trim().split("\n");
      const addAt = calls.indexOf("ADD noPrevResult");
      assert.ok(addAt > 0 && calls[addAt - 1]!.startsWith("VERSION"), `calls: ${calls.join(", ")}`);
      assert.equal(calls[addAt + 1], "DEL noPrevResult", `calls: ${calls.join(", ")}`);
    } finally {
      env.CONTAINERS_CONF = conf;
      loadPinnedDatapath(bpffsRoot);
    }
  });

  it("the normal lifecycle as podman drives it: VERSION, ADD, later VERSION, DEL with prevResult", function () {
    const conf = env.CONTAINERS_CONF!;
    env.CONTAINERS_CONF = recordingConf;
    rmSync(callLog, { force: true });
    try {
      const name = uniqueName("sknd");
      containers.push(name);
      podmanOk(["run", "-d", "--name", name, "--network", network, "--rootfs", rootfs, "sleep", "600"]);
      podmanOk(["rm", "-f", "-t", "0", name]);
      containers.length = 0;
      const calls = readFileSync(callLog, "utf8").trim().split("\n");
      const addAt = calls.indexOf("ADD noPrevResult");
      const delAt = calls.indexOf("DEL prevResult");
      assert.ok(addAt > 0 && calls[addAt - 1]!.startsWith("VERSION"), `calls: ${calls.join(", ")}`);
      assert.ok(delAt > addAt && calls[delAt - 1]!.startsWith("VERSION"), `calls: ${calls.join(", ")}`);
      assert.deepEqual(reservations(dataDir, network), []);
      assert.deepEqual(nodeLinks(), []);
    } finally {
      env.CONTAINERS_CONF = conf;
    }
  });
});
