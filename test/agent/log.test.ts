/** errorFields: what an agent log line keeps of an error (message, errno, code, causes). */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createLogger, errorFields } from "../../agent/log.js";
import { SysError } from "../../loader/errors.js";

describe("agent: errorFields", function () {
  it("keeps a SysError's errno and code", function () {
    assert.deepEqual(errorFields(new SysError("attach tc ingress", 17, "lxc1")), {
      error: "attach tc ingress on lxc1: EEXIST (File exists)",
      errno: 17,
      code: "EEXIST",
    });
  });

  it("follows the cause chain: messages outermost first, errno and code from the first that has them", function () {
    const inner = new SysError("bpf_map_update_elem", 7, "skn_policy");
    const middle = new Error("write skn_policy", { cause: inner });
    const outer = new Error("policy step", { cause: middle });
    assert.deepEqual(errorFields(outer), {
      error: "policy step",
      errno: 7,
      code: "E2BIG",
      cause: "write skn_policy <- bpf_map_update_elem on skn_policy: E2BIG (Argument list too long)",
    });
  });

  it("keeps Node's errno and code, and an HTTP status as code; copes with non-errors and cycles", function () {
    let fsError: unknown;
    try {
      readFileSync("/nonexistent/skein-test");
    } catch (err) {
      fsError = err;
    }
    const f = errorFields(fsError);
    assert.equal(f.code, "ENOENT");
    assert.equal(f.errno, -2);
    assert.deepEqual(errorFields(Object.assign(new Error("HTTP-Code: 503"), { code: 503 })), {
      error: "HTTP-Code: 503",
      code: 503,
    });
    assert.deepEqual(errorFields("plain"), { error: "plain" });
    const loop = new Error("a") as Error & { cause?: unknown };
    loop.cause = loop;
    assert.deepEqual(errorFields(loop), { error: "a", cause: "a" });
  });

  it("reads well in a log line", function () {
    const out: string[] = [];
    const log = createLogger("info", (l) => out.push(l));
    log.error("reconcile failed", {
      step: "masquerade",
      ...errorFields(new Error("nft: no table", { cause: new SysError("netlink", 1) })),
    });
    assert.match(
      out[0] ?? "",
      / error reconcile failed step=masquerade error="nft: no table" errno=1 code=EPERM cause="netlink: EPERM \(Operation not permitted\)"\n$/,
    );
  });
});
