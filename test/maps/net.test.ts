/**
 * IPv4 text parsing: the hand-written scan accepts and refuses exactly what the dotted-quad
 * pattern it replaced did, with the same numbers, on arbitrary and near-miss input.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIPv4, parseIPv4, parsePrefix, type Prefix } from "../../maps/net.js";

/** The former implementation, kept as the reference. */
function reference(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m === null) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

function parsed(text: string): number | undefined {
  try {
    return parseIPv4(text);
  } catch (err) {
    assert.ok(err instanceof RangeError);
    assert.equal(err.message, `not an IPv4 address: ${JSON.stringify(text)}`);
    return undefined;
  }
}

/** Strings made of the characters that matter: digits, dots and a few others. */
const nearMiss = fc
  .array(fc.constantFrom("0", "1", "2", "5", "9", ".", ".", "/", " ", "a", "\n", "٣", "-", "+"), {
    maxLength: 20,
  })
  .map((cs) => cs.join(""));
const groups = fc
  .array(
    fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom("", "00", "007", "0255", "1e2")),
    {
      minLength: 1,
      maxLength: 6,
    },
  )
  .map((g) => g.join("."));

describe("maps: IPv4 text", function () {
  it("parses as the dotted-quad pattern did, on arbitrary, near-miss and grouped input", function () {
    for (const arb of [fc.string(), nearMiss, groups])
      fc.assert(
        fc.property(arb, (text) => {
          assert.equal(parsed(text), reference(text), JSON.stringify(text));
        }),
        { numRuns: 3000 },
      );
  });

  it("round-trips every address through its text", function () {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        const text = formatIPv4(n);
        assert.equal(text, [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join("."));
        assert.equal(parseIPv4(text), n);
      }),
      { numRuns: 2000 },
    );
    for (const [text, n] of [
      ["0.0.0.0", 0],
      ["255.255.255.255", 0xffffffff],
      ["010.001.0.09", 0x0a010009],
    ] as const)
      assert.equal(parseIPv4(text), n);
    for (const text of [
      "",
      "1.2.3",
      "1.2.3.4.",
      ".1.2.3.4",
      "1..2.3",
      "1.2.3.256",
      "1.2.3.0004",
      "1.2.3.4\n",
    ])
      assert.equal(parsed(text), undefined, JSON.stringify(text));
  });

  it("a bare address is its /32, refused alike", function () {
    const prefix = (text: string): Prefix | string => {
      try {
        return parsePrefix(text);
      } catch (err) {
        return err instanceof RangeError ? "refused" : "other error";
      }
    };
    fc.assert(
      fc.property(fc.oneof(nearMiss, groups), (text) => {
        if (text.includes("/")) return;
        assert.deepEqual(prefix(text), prefix(`${text}/32`), JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
    assert.deepEqual(parsePrefix("010.1.2.3"), { ip: "10.1.2.3", length: 32 });
  });
});
