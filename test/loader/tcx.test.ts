/**
 * tcx attachment (loader/tcx.ts) against the real kernel: a veth pair between two namespaces of the
 * test's own, skn_from_pod (of a private datapath, which knows no endpoint and so drops every
 * packet as spoofed) attached to one end's ingress, traffic through it, replace, detach.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ip } from "../../loader/index.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

describe("loader: tcx attach, query, replace, detach (real kernel)", function () {
  this.timeout(30000);
  const nsA = uniqueName("skntxa");
  const nsB = uniqueName("skntxb");

  before(async function () {
    requireRoot(this);
    await ip(["netns", "add", nsA]);
    await ip(["netns", "add", nsB]);
    await ip(["-n", nsA, "link", "add", "txa", "type", "veth", "peer", "name", "txb", "netns", nsB]);
    await ip(["-n", nsA, "addr", "add", "192.0.2.1/30", "dev", "txa"]);
    await ip(["-n", nsB, "addr", "add", "192.0.2.2/30", "dev", "txb"]);
    await ip(["-n", nsA, "link", "set", "txa", "up"]);
    await ip(["-n", nsB, "link", "set", "txb", "up"]);
  });

  after(async function () {
    for (const ns of [nsA, nsB]) await ip(["netns", "del", ns]).catch(() => undefined);
  });

  it("runs the program on the hook, lists it, refuses it twice, replaces it in place and detaches it", function () {
    const child = resolve(fileURLToPath(import.meta.url), "..", "tcx-child.js");
    const out = execFileSync(
      "nsenter",
      [
        `--net=/var/run/netns/${nsB}`,
        process.execPath,
        child,
        "txb",
        ...["nsenter", `--net=/var/run/netns/${nsA}`, "ping", "-c", "1", "-W", "1", "192.0.2.2"],
      ],
      { encoding: "utf8" },
    );
    const r = JSON.parse(out) as {
      ids: { a: number; b: number };
      before: number[];
      attached: number[];
      replaced: number[];
      after: number[];
      again: string;
      detachedOld: boolean;
      detached: boolean;
      ping: Record<"before" | "attached" | "replaced" | "after", boolean>;
      dropped: { a: number; b: number };
    };
    assert.deepEqual(r.before, [], "nothing on the hook at first");
    assert.deepEqual(r.attached, [r.ids.a]);
    assert.deepEqual(r.replaced, [r.ids.b], "replaced in place, not added");
    assert.deepEqual(r.after, []);
    assert.match(r.again, /EEXIST/, "the same program twice on one hook is refused");
    assert.equal(r.detachedOld, false, "the replaced program is no longer attached");
    assert.equal(r.detached, true);
    assert.deepEqual(r.ping, { before: true, attached: false, replaced: false, after: true });
    assert.ok(r.dropped.a >= 1, "the first program counted the ping it dropped");
    assert.ok(r.dropped.b >= 1, "and so did its replacement");
  });
});
