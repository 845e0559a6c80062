/**
 * The Containerfile, exercised as far as a machine without registry access allows. The base images
 * cannot be pulled, so:
 * - the build stage's COPY and RUN lines are replayed in a scratch copy of the build context
 *   (.dockerignore applied) on this machine, which is Debian 12 with Node 20 and clang-16 like
 *   node:20-bookworm; its apt-get line is checked against the packages installed here instead of run;
 * - the runtime stage's COPY --from=build lines assemble /opt/skein in a root filesystem whose /usr
 *   is this machine's (standing in for node:20-bookworm-slim plus libbpf1, iproute2, nftables, bird2,
 *   checked installed here); its RUN lines and its ENTRYPOINT run in that rootfs under podman/runc;
 * - the DaemonSet's two init containers run there as deploy/skein.yaml specifies them: install-cni
 *   installs a plugin that answers VERSION, mount-bpffs mounts bpffs only where none is.
 * What this does not cover: the base images' own contents, multi-arch builds, and a real
 * buildah/docker build (see docs/deploy.md).
 */
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { inCi, requireRoot } from "../helpers/privileged.js";
import {
  Podman,
  REPO,
  agentDaemonSet,
  agentSettings,
  aptPackages,
  exec,
  have,
  parseContainerfile,
  skeletonRootfs,
  usrMounts,
  type Result,
  type Stage,
} from "./helpers.js";

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** .dockerignore patterns (this repository uses plain names, paths and `*.ext`). */
function ignorePatterns(): string[] {
  return readFileSync(join(REPO, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** True when the context path `rel` (relative to the repository) is excluded by `patterns`. */
function ignored(rel: string, patterns: string[]): boolean {
  return patterns.some((p) => {
    if (p.startsWith("*.")) return rel.endsWith(p.slice(1));
    return rel === p || rel.startsWith(`${p}/`);
  });
}

async function installed(pkg: string): Promise<boolean> {
  const r = await exec("dpkg-query", ["-W", "-f=${Status}", pkg]);
  return r.code === 0 && r.stdout.includes("install ok installed");
}

function stage(stages: Stage[], name: string): Stage {
  const s = stages.find((x) => x.name === name);
  if (s === undefined) throw new Error(`Containerfile has no stage ${name}`);
  return s;
}

function workdirOf(s: Stage): string {
  const w = s.instructions.filter((i) => i.keyword === "WORKDIR").at(-1);
  if (w === undefined) throw new Error(`stage ${s.name} sets no WORKDIR`);
  return w.args;
}

describe("deploy: the Containerfile, replayed", function () {
  this.timeout(900000);
  const stages = parseContainerfile(readFileSync(join(REPO, "Containerfile"), "utf8"));
  const build = stage(stages, "build");
  const runtime = stage(stages, "runtime");
  const { agent, init } = agentDaemonSet();
  let work = "";
  let src = "";
  let built = false;
  let podman: Podman | undefined;
  let rootfs = "";
  let usrLocal = "";
  let runtimeReady = false;

  before(function () {
    work = mkdtempSync(join(tmpdir(), "skein-image-"));
  });

  after(async function () {
    this.timeout(120000);
    if (podman !== undefined) await podman.dispose();
    if (work !== "") rmSync(work, { recursive: true, force: true });
  });

  it("two stages: build on node:20-bookworm with clang-16, runtime on node:20-bookworm-slim with libbpf1, iproute2, nftables, bird2; entrypoint skein-agent", function () {
    assert.deepEqual(
      stages.map((s) => `${s.name}=${s.from}`),
      ["build=docker.io/library/node:20-bookworm", "runtime=docker.io/library/node:20-bookworm-slim"],
    );
    const buildApt = build.instructions
      .filter((i) => i.keyword === "RUN")
      .flatMap((i) => aptPackages(i.args));
    for (const p of ["clang-16", "libbpf-dev", "make"])
      assert.ok(buildApt.includes(p), `build stage installs ${p}`);
    const runtimeApt = runtime.instructions
      .filter((i) => i.keyword === "RUN")
      .flatMap((i) => aptPackages(i.args));
    assert.deepEqual([...runtimeApt].sort(), ["bird2", "iproute2", "libbpf1", "nftables"]);
    const entry = runtime.instructions.find((i) => i.keyword === "ENTRYPOINT");
    assert.deepEqual(JSON.parse(entry?.args ?? "null"), ["skein-agent"]);
    // The runtime stage takes only build outputs (and the install script), nothing from the context.
    for (const c of runtime.instructions.filter((i) => i.keyword === "COPY"))
      assert.equal(c.copy?.from, "build", `line ${c.line}`);
    // The DaemonSet's image tag is what the build comment and the docs tell you to build.
    assert.match(readFileSync(join(REPO, "Containerfile"), "utf8"), new RegExp(`-t ${agent.image ?? "?"} `));
  });

  it(".dockerignore keeps node_modules, dist and .git out of the context, and every build COPY source in it", function () {
    const patterns = ignorePatterns();
    for (const p of ["node_modules", "dist", ".git", "vagrant/.vagrant"])
      assert.ok(ignored(p, patterns), `${p} is ignored`);
    for (const c of build.instructions.filter((i) => i.keyword === "COPY")) {
      for (const s of c.copy?.sources ?? []) {
        const rel = s.replace(/\/$/, "");
        assert.ok(existsSync(join(REPO, rel)), `COPY source ${s} exists`);
        assert.ok(!ignored(rel, patterns), `COPY source ${s} is in the build context`);
      }
    }
  });

  it("the build stage's commands, in a scratch copy of the context, build the BPF object, the agent and the installable plugin", async function () {
    const patterns = ignorePatterns();
    src = join(
      work,
      "build",
      build.instructions.find((i) => i.keyword === "WORKDIR")?.args.replace(/^\//, "") ?? "src",
    );
    mkdirSync(src, { recursive: true });
    const log: string[] = [];
    for (const ins of build.instructions) {
      if (ins.keyword === "WORKDIR") continue;
      if (ins.keyword === "COPY") {
        const copy = ins.copy!;
        for (const s of copy.sources) {
          const from = join(REPO, s);
          const to =
            copy.dest.endsWith("/") && !s.endsWith("/") ? join(src, copy.dest, s) : join(src, copy.dest);
          cpSync(from, to, {
            recursive: true,
            verbatimSymlinks: true,
            filter: (p) => !ignored(relative(REPO, p), patterns),
          });
        }
        continue;
      }
      assert.equal(ins.keyword, "RUN", `line ${ins.line}: only WORKDIR, COPY and RUN in the build stage`);
      const apt = aptPackages(ins.args);
      if (apt.length > 0) {
        for (const p of apt)
          if (!(await installed(p)))
            assert.fail(
              `line ${ins.line}: ${p} is not installed on this machine (scripts/setup.sh installs the build tools)`,
            );
        log.push(`line ${ins.line}: apt packages present: ${apt.join(" ")}`);
        continue;
      }
      const t = Date.now();
      const r = await exec("sh", ["-ec", ins.args], {
        cwd: src,
        env: { ...process.env, PATH: SYSTEM_PATH, npm_config_update_notifier: "false" },
        timeoutMs: 600000,
      });
      log.push(`line ${ins.line}: ${ins.args} (${Date.now() - t} ms)`);
      assert.equal(
        r.code,
        0,
        `line ${ins.line}: ${ins.args} failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
      );
    }
    assert.ok(existsSync(join(src, "dist", "bpf", "skein.bpf.o")), "BPF object");
    assert.ok(existsSync(join(src, "dist", "agent", "main.js")), "agent");
    assert.ok(
      existsSync(join(src, "dist", "lab", "workload", "workload.js")) &&
        existsSync(join(src, "dist", "lab", "workload", "probe-cli.js")),
      "smoke pods' workload and probe CLI",
    );
    assert.ok(
      existsSync(join(src, "dist", "cni-install", "skein-cni.d", "node")),
      "installable plugin with its runtime",
    );
    // npm prune --omit=dev: runtime dependencies only.
    for (const dep of ["@kubernetes/client-node", "koffi", "yaml", "prom-client", "ip-address"])
      assert.ok(existsSync(join(src, "node_modules", dep)), `${dep} kept`);
    for (const dev of ["typescript", "mocha", "esbuild", "eslint"])
      assert.ok(!existsSync(join(src, "node_modules", dev)), `${dev} pruned`);
    built = true;
    this.test!.title += ` [${log.length} steps]`;
  });

  it("the runtime stage's COPY and RUN lines assemble /opt/skein, and skein-agent is on PATH", async function () {
    requireRoot(this);
    if (!built) this.skip();
    if (!(await have("podman")) || !(await have("runc"))) {
      if (inCi()) throw new Error("podman and runc are required (scripts/setup.sh installs them)");
      this.skip();
    }
    podman = new Podman(join(work, "podman"));
    ({ rootfs, usrLocal } = skeletonRootfs(join(work, "runtime")));
    const workdir = workdirOf(runtime);
    const buildWorkdir = workdirOf(build);
    for (const ins of runtime.instructions) {
      if (ins.keyword === "WORKDIR") mkdirSync(join(rootfs, ins.args), { recursive: true });
      else if (ins.keyword === "COPY") {
        const copy = ins.copy!;
        for (const s of copy.sources) {
          const from = join(src, relative(buildWorkdir, s));
          const destBase = copy.dest.startsWith("/")
            ? join(rootfs, copy.dest)
            : join(rootfs, workdir, copy.dest);
          const to =
            copy.dest.endsWith("/") && !s.endsWith("/") ? join(destBase, s.split("/").at(-1)!) : destBase;
          mkdirSync(dirname(to), { recursive: true });
          cpSync(from, to, { recursive: true, verbatimSymlinks: true });
        }
      } else if (ins.keyword === "RUN") {
        const apt = aptPackages(ins.args);
        if (apt.length > 0) {
          for (const p of apt)
            assert.ok(
              await installed(p),
              `line ${ins.line}: ${p} installed on this machine (the stand-in base)`,
            );
          continue;
        }
        const r = await podman.run([
          "run",
          "--rm",
          "--network",
          "none",
          ...usrMounts(usrLocal),
          "--rootfs",
          rootfs,
          "/bin/sh",
          "-ec",
          ins.args,
        ]);
        assert.equal(r.code, 0, `line ${ins.line}: ${ins.args}: ${r.stderr}`);
      }
    }
    for (const p of [
      "opt/skein/package.json",
      "opt/skein/dist/bpf/skein.bpf.o",
      "opt/skein/dist/agent/main.js",
      "opt/skein/dist/ctl/main.js",
      "opt/skein/dist/lab/smoke/main.js",
      "opt/skein/dist/lab/workload/workload.js",
      "opt/skein/dist/cni-install/skein-cni",
      // The cni-server container's entry (deploy/skein.yaml).
      "opt/skein/dist/cni-install/skein-cni.d/node",
      "opt/skein/dist/cni-install/skein-cni.d/skein-cni-server.cjs",
      "opt/skein/scripts/install-cni.sh",
    ])
      assert.ok(existsSync(join(rootfs, p)), p);
    assert.equal(
      (JSON.parse(readFileSync(join(rootfs, "opt/skein/package.json"), "utf8")) as { type: string }).type,
      "module",
    );
    assert.ok(!existsSync(join(rootfs, "opt/skein/dist/test")), "no compiled tests in the image");
    const which = await podman.run([
      "run",
      "--rm",
      "--network",
      "none",
      ...usrMounts(usrLocal),
      "--rootfs",
      rootfs,
      "/bin/sh",
      "-c",
      "for c in skein-agent skeinctl; do command -v $c; done",
    ]);
    assert.deepEqual(which.stdout.trim().split("\n"), [
      "/usr/local/bin/skein-agent",
      "/usr/local/bin/skeinctl",
    ]);
    runtimeReady = true;
  });

  it("the entrypoint, given the DaemonSet's settings file, fails a dry start against a missing kubeconfig with a clear message", async function () {
    if (!runtimeReady || podman === undefined) this.skip();
    const entry = JSON.parse(runtime.instructions.find((i) => i.keyword === "ENTRYPOINT")!.args) as string[];
    writeFileSync(join(work, "agent.yaml"), agentSettings().text);
    const base = [
      "run",
      "--rm",
      "--network",
      "none",
      "--read-only",
      "--cap-drop",
      "all",
      ...usrMounts(usrLocal),
      "-v",
      `${join(work, "agent.yaml")}:/etc/skein/agent.yaml:ro`,
      "--rootfs",
      rootfs,
    ];
    const dry = await podman.run([
      ...base,
      ...entry,
      "--config",
      "/etc/skein/agent.yaml",
      "--kubeconfig",
      "/etc/skein/no-such-kubeconfig",
    ]);
    assert.equal(dry.code, 1, dry.stdout + dry.stderr);
    assert.equal(
      dry.stderr.trim(),
      "skein-agent: ENOENT: no such file or directory, open '/etc/skein/no-such-kubeconfig'",
    );
    const typo = await podman.run([...base, ...entry, "--helth-addr", "x"]);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /^skein-agent: Unknown option '--helth-addr'/);
  });

  it("install-cni, run as the DaemonSet runs it (no capabilities, read-only root), installs a plugin that answers VERSION; again for an upgrade", async function () {
    if (!runtimeReady || podman === undefined) this.skip();
    const c = init.find((x) => x.name === "install-cni")!;
    const mount = c.volumeMounts?.find((m) => m.name === "cni-bin")?.mountPath ?? "";
    const hostBin = join(work, "host-opt-cni-bin");
    mkdirSync(hostBin);
    for (let round = 1; round <= 2; round++) {
      const r: Result = await podman.run([
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        ...usrMounts(usrLocal),
        "-v",
        `${hostBin}:${mount}`,
        "--rootfs",
        rootfs,
        ...(c.command ?? []),
      ]);
      assert.equal(r.code, 0, `round ${round}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`installed skein-cni into ${mount}`));
      const v = await exec(join(hostBin, "skein-cni"), [], {
        env: { PATH: SYSTEM_PATH, CNI_COMMAND: "VERSION" },
        input: JSON.stringify({ cniVersion: "1.0.0" }),
      });
      assert.equal(v.code, 0, v.stderr);
      const answer = JSON.parse(v.stdout) as { cniVersion: string; supportedVersions: string[] };
      assert.equal(answer.cniVersion, "1.0.0");
      assert.ok(
        answer.supportedVersions.includes("1.1.0") && answer.supportedVersions.includes("0.4.0"),
        v.stdout,
      );
    }
    // One payload after the upgrade: the older one was removed.
    assert.equal(readdirSync(hostBin).filter((f) => f.startsWith(".skein-cni-")).length, 1);
  });

  it("mount-bpffs mounts bpffs where none is, and leaves a mounted one alone", async function () {
    if (!runtimeReady || podman === undefined) this.skip();
    const c = init.find((x) => x.name === "mount-bpffs")!;
    const script = c.command?.at(-1) ?? "";
    assert.equal(c.securityContext?.privileged, true);
    // A private tmpfs where bpffs should be: the script must mount (inside this container only).
    const fresh = await podman.run([
      "run",
      "--rm",
      "--network",
      "none",
      "--privileged",
      ...usrMounts(usrLocal),
      "--tmpfs",
      "/sys/fs/bpf",
      "--rootfs",
      rootfs,
      "/bin/sh",
      "-ec",
      `${script}\nstat -f -c %T /sys/fs/bpf`,
    ]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.deepEqual(fresh.stdout.trim().split("\n"), ["mounted bpffs at /sys/fs/bpf", "bpf_fs"]);
    // This machine's bpffs, as the hostPath gives it: nothing to do.
    const present = await podman.run([
      "run",
      "--rm",
      "--network",
      "none",
      "--privileged",
      ...usrMounts(usrLocal),
      "-v",
      "/sys/fs/bpf:/sys/fs/bpf",
      "--rootfs",
      rootfs,
      "/bin/sh",
      "-ec",
      script,
    ]);
    assert.equal(present.code, 0, present.stderr);
    assert.equal(present.stdout.trim(), "bpffs already mounted at /sys/fs/bpf");
  });
});
