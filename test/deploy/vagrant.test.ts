/**
 * The Vagrant lab, checked as far as a machine without VMs allows: `vagrant validate` (with the
 * providers setup.sh installs, and provider-independent), shellcheck on every provisioning script,
 * and the facts the scripts share with the rest of the repository (image, pod CIDR, the smoke
 * CLI's path and flags). Booting the VMs is not exercised here (see docs/vagrant.md).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_IMAGE, IMAGE_DIST_DIR } from "../../lab/smoke/kubectl-driver.js";
import { inCi } from "../helpers/privileged.js";
import { REPO, agentDaemonSet, exec, have } from "./helpers.js";

const VAGRANT = join(REPO, "vagrant");
const scripts = readdirSync(join(VAGRANT, "provision"))
  .filter((f) => f.endsWith(".sh"))
  .map((f) => join(VAGRANT, "provision", f));

async function need(ctx: Mocha.Context, tool: string): Promise<void> {
  if (await have(tool)) return;
  if (inCi()) throw new Error(`${tool} is required (scripts/setup.sh installs it)`);
  ctx.skip();
}

describe("deploy: the Vagrant lab (vagrant validate, shellcheck)", function () {
  this.timeout(180000);
  let state = "";

  before(function () {
    state = mkdtempSync(join(tmpdir(), "skein-vagrant-"));
  });
  after(function () {
    if (state !== "") rmSync(state, { recursive: true, force: true });
  });

  /** vagrant in vagrant/, its machine state and home in a scratch directory. */
  const vagrant = (args: string[]) =>
    exec("vagrant", args, {
      cwd: VAGRANT,
      env: {
        ...process.env,
        VAGRANT_DOTFILE_PATH: join(state, "dot"),
        VAGRANT_HOME: join(state, "home"),
        VAGRANT_CHECKPOINT_DISABLE: "1",
      },
      timeoutMs: 150000,
    });

  it("shellcheck passes on every provisioning script", async function () {
    await need(this, "shellcheck");
    assert.deepEqual(
      scripts.map((s) => s.split("/").pop()),
      ["common.sh", "control-plane.sh", "image.sh", "smoke.sh", "worker.sh"],
    );
    const r = await exec("shellcheck", ["--shell=sh", "--external-sources", ...scripts]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("vagrant validate passes with the installed providers, and ignoring provider settings", async function () {
    await need(this, "vagrant");
    const plain = await vagrant(["validate"]);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.match(plain.stdout, /Vagrantfile validated successfully/);
    const anyProvider = await vagrant(["validate", "--ignore-provider"]);
    assert.equal(anyProvider.code, 0, anyProvider.stdout + anyProvider.stderr);
    // The bootstrap token the Vagrantfile made for this lab, in kubeadm's format.
    assert.match(
      readFileSync(join(state, "dot", "skein-kubeadm-token"), "utf8"),
      /^[a-z0-9]{6}\.[a-z0-9]{16}\n$/,
    );
  });

  it("vagrant status lists the control plane and two workers", async function () {
    await need(this, "vagrant");
    const r = await vagrant(["status", "--machine-readable"]);
    assert.equal(r.code, 0, r.stderr);
    const names = [...new Set([...r.stdout.matchAll(/^\d+,([^,]+),state,/gm)].map((m) => m[1]))];
    assert.deepEqual(names, ["skein-cp", "skein-w1", "skein-w2"]);
  });

  it("the scripts agree with the repository: image, pod CIDR, deploy/skein.yaml, the smoke CLI and its flags", function () {
    const vf = readFileSync(join(VAGRANT, "Vagrantfile"), "utf8");
    const image = /^IMAGE = "([^"]+)"/m.exec(vf)?.[1];
    assert.equal(image, agentDaemonSet().agent.image);
    assert.equal(image, DEFAULT_IMAGE);
    assert.match(vf, /^POD_CIDR = "10\.244\.0\.0\/16"/m);
    assert.match(vf, /^K8S_VERSION = ENV\.fetch\("SKEIN_K8S_VERSION", "\d+\.\d+\.\d+"\)/m);
    for (const p of ["libvirt", "virtualbox"]) assert.match(vf, new RegExp(`config\\.vm\\.provider :${p}`));
    const cp = readFileSync(join(VAGRANT, "provision", "control-plane.sh"), "utf8");
    assert.match(cp, /--pod-network-cidr "\$POD_CIDR"/);
    assert.match(vf, /^SERVICE_CIDR = "10\.96\.0\.0\/12"/m);
    assert.match(cp, /--service-cidr "\$SERVICE_CIDR"/);
    // deploy/skein.yaml, applied with serviceCidr set to the cluster's Service range.
    const applied =
      /^sed "([^"\n]*(?:\\"[^"\n]*)*)" "\$SRC\/deploy\/skein\.yaml" \| kubectl apply -f -$/m.exec(cp);
    assert.ok(applied !== null, "control-plane.sh applies deploy/skein.yaml through sed");
    const manifest = readFileSync(join(REPO, "deploy", "skein.yaml"), "utf8");
    assert.match(manifest, /^ {4}serviceCidr: ""$/m, "the line control-plane.sh rewrites");
    const smoke = readFileSync(join(VAGRANT, "provision", "smoke.sh"), "utf8");
    assert.ok(
      smoke.includes(`node ${IMAGE_DIST_DIR}/lab/smoke/main.js`),
      "runs the smoke CLI from the image's dist",
    );
    const main = readFileSync(join(REPO, "lab", "smoke", "main.ts"), "utf8");
    for (const flag of [...smoke.matchAll(/--([a-z-]+) /g)]
      .map((m) => m[1]!)
      .filter((f) => ["kubeconfig", "image", "image-pull-policy"].includes(f)))
      assert.ok(
        main.includes(`"${flag}": { type:`) || main.includes(`${flag}: { type:`),
        `smoke CLI accepts --${flag}`,
      );
  });
});
