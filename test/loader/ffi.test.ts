/** The FFI tables bind lazily; every prototype in them must still parse and resolve. */
import assert from "node:assert/strict";
import { libbpf, libc } from "../../loader/ffi.js";

describe("loader: ffi", function () {
  it("binds every libbpf and libc function it declares", function () {
    for (const table of [libbpf(), libc()]) {
      const names = Object.keys(table);
      assert.ok(names.length > 10);
      for (const name of names)
        assert.equal(typeof (table as Record<string, unknown>)[name], "function", name);
    }
  });
});
