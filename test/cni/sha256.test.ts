/** cni/sha256.ts against node:crypto, and host veth names unchanged by the switch to it. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { hostVethName } from "../../cni/names.js";
import { sha256Hex } from "../../cni/sha256.js";

const reference = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

describe("cni: sha256", function () {
  it("matches node:crypto at every padding boundary and on arbitrary input", function () {
    for (let n = 0; n <= 200; n++)
      assert.equal(sha256Hex("a".repeat(n)), reference("a".repeat(n)), `length ${n}`);
    assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.equal(sha256Hex(bytes), reference(bytes));
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 80 }), (s) => {
        assert.equal(sha256Hex(s), reference(s));
      }),
    );
  });

  it("gives existing attachments the host veth names they were created with", function () {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 64 }),
        fc.string({ minLength: 1, maxLength: 15 }),
        (id, ifname) => {
          const digest = reference(`${id}\0${ifname}`);
          assert.equal(hostVethName(id, ifname), `skn${digest.slice(0, 11)}`);
        },
      ),
    );
  });
});
