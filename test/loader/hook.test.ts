/**
 * loader/hook.ts against the real kernel: a cls_bpf filter moved to tcx by the next attach, tcx
 * replace in place, detach of both kinds; traffic through the hook at every step (skn_from_pod of a
 * private datapath knows no endpoint and drops every packet as spoofed).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ip } from "../../loader/index.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

interface Step {
  hooked?: { kind: string; progId: number };
  removed?: boolean;
  query: { kind: string; progId: number } | null;
  tcx: number[];
  tc: number | null;
  ping: boolean;
  droppedA?: number;
  droppedB?: number;
}

describe("loader: hooks prefer tcx, move cls_bpf filters over, replace and detach (real kernel)", function () {
  this.timeout(30000);
  const nsA = uniqueName("sknhka");
  const nsB = uniqueName("sknhkb");

  before(async function () {
    requireRoot(this);
    await ip(["netns", "add", nsA]);
    await ip(["netns", "add", nsB]);
    await ip(["-n", nsA, "link", "add", "hka", "type", "veth", "peer", "name", "hkb", "netns", nsB]);
    await ip(["-n", nsA, "addr", "add", "192.0.2.5/30", "dev", "hka"]);
    await ip(["-n", nsB, "addr", "add", "192.0.2.6/30", "dev", "hkb"]);
    await ip(["-n", nsA, "link", "set", "hka", "up"]);
    await ip(["-n", nsB, "link", "set", "hkb", "up"]);
  });

  after(async function () {
    for (const ns of [nsA, nsB]) await ip(["netns", "del", ns]).catch(() => undefined);
  });

  it("cls_bpf → tcx on the next attach, replace in place, detach; the program runs at every step", function () {
    const child = resolve(fileURLToPath(import.meta.url), "..", "hook-child.js");
    const out = execFileSync(
      "nsenter",
      [
        `--net=/var/run/netns/${nsB}`,
        process.execPath,
        child,
        "hkb",
        ...["nsenter", `--net=/var/run/netns/${nsA}`, "ping", "-c", "1", "-W", "1", "192.0.2.6"],
      ],
      { encoding: "utf8" },
    );
    const { ids, steps } = JSON.parse(out) as { ids: { a: number; b: number }; steps: Record<string, Step> };
    const s = (k: string): Step => {
      const v = steps[k];
      assert.ok(v !== undefined, k);
      return v;
    };
    assert.deepEqual([s("before").query, s("before").tcx, s("before").ping], [null, [], true]);
    assert.deepEqual(s("asTc").hooked, { kind: "tc", progId: ids.a });
    assert.deepEqual(
      [s("asTc").query, s("asTc").tcx, s("asTc").tc],
      [{ kind: "tc", progId: ids.a }, [], ids.a],
    );
    assert.equal(s("asTc").ping, false, "the filter drops");
    assert.ok((s("asTc").droppedA ?? 0) >= 1);

    assert.deepEqual(s("moved").hooked, { kind: "tcx", progId: ids.b });
    assert.deepEqual(
      [s("moved").query, s("moved").tcx, s("moved").tc],
      [{ kind: "tcx", progId: ids.b }, [ids.b], null],
    );
    assert.equal(s("moved").ping, false);
    assert.ok((s("moved").droppedB ?? 0) >= 1, "the tcx program counts the drop");

    assert.deepEqual([s("replaced").query, s("replaced").tcx], [{ kind: "tcx", progId: ids.a }, [ids.a]]);
    assert.equal(s("replaced").ping, false);

    assert.equal(s("detached").removed, true);
    assert.deepEqual([s("detached").query, s("detached").tcx, s("detached").tc], [null, [], null]);
    assert.equal(s("detached").ping, true, "nothing on the hook: traffic flows");
    assert.equal(s("again").removed, false);
  });
});
