/** The lab's command line (dist/lab/main.js): usage and wrong options, before anything is built. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { DIST } from "../../lab/lab.js";

function lab(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(DIST, "lab", "main.js"), ...args], {
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("lab: command line", function () {
  this.timeout(20000);

  it("--help prints the usage and exits 0", function () {
    const r = lab(["--help"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage:\n {2}npm run lab \[-- --nodes N/);
    assert.match(r.stdout, /npm run lab -- teardown \[--id ID \| --all\]/);
  });

  it("an unknown option names it, prints the usage, exits 2, and shows no stack trace", function () {
    const r = lab(["--nodez", "3"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^lab: Unknown option '--nodez'/);
    assert.match(r.stderr, /usage:/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  it("--cni-server takes on or off", function () {
    const r = lab(["--cni-server", "maybe"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--cni-server must be on or off, not maybe/);
    assert.match(lab(["--help"]).stdout, /--cni-server on\|off/);
  });

  it("an unknown command says which ones exist", function () {
    const r = lab(["explode"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown lab command explode \(up, teardown, status\)/);
  });
});
