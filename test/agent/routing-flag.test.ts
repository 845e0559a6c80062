/** skein-agent refuses an unknown routing mode before it touches the node (flag and config file). */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function agent(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["dist/agent/main.js", "--kubeconfig=/nonexistent", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => {
      resolve({ code, stderr });
    });
  });
}

describe("agent: --routing", function () {
  this.timeout(20000);

  it("refuses an unknown mode on the command line, naming the accepted ones", async function () {
    const r = await agent(["--routing=bgp"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^skein-agent: --routing \(config key routing\): unknown routing mode "bgp"; expected one of vxlan, native/,
    );
  });

  it("refuses one from the config file (the ConfigMap's routing key) the same way", async function () {
    const dir = mkdtempSync(join(tmpdir(), "skein-routing-"));
    try {
      const file = join(dir, "agent.yaml");
      writeFileSync(file, "routing: host-gw\n");
      const r = await agent([`--config=${file}`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /unknown routing mode "host-gw"; expected one of vxlan, native/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
