/** The shim ↔ server frames: golden bytes, round trips, limits, and garbage that never throws. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MAX_PAYLOAD_BYTES,
  RequestReader,
  decodeRequestPayload,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  envRecord,
  type CniRequest,
} from "../../cni/server-codec.js";

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function str(s: string): Buffer {
  return Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);
}

function readAll(chunks: Buffer[]): ReturnType<RequestReader["push"]> {
  const r = new RequestReader();
  let state = r.state;
  for (const c of chunks) state = r.push(c);
  return state;
}

describe("cni: server codec", function () {
  it("encodes a request to the documented bytes", function () {
    const frame = encodeRequest({ env: ["CNI_COMMAND=ADD", "A=b"], args: [], stdin: Buffer.from("{}") });
    const payload = Buffer.concat([u32(2), str("CNI_COMMAND=ADD"), str("A=b"), u32(0), str("{}")]);
    assert.deepEqual(frame, Buffer.concat([Buffer.from("SKNC"), u32(1), u32(payload.length), payload]));
  });

  it("encodes a response to the documented bytes", function () {
    const frame = encodeResponse({ exitCode: 7, stdout: "out", stderr: Buffer.from("é") });
    assert.deepEqual(
      frame,
      Buffer.concat([Buffer.from("SKNR"), u32(1), u32(7), str("out"), u32(2), Buffer.from("é")]),
    );
    assert.deepEqual(decodeResponse(frame), {
      exitCode: 7,
      stdout: Buffer.from("out"),
      stderr: Buffer.from("é"),
    });
  });

  it("reads a request split at every byte boundary", function () {
    const request: CniRequest = {
      env: ["X=1", "CNI_COMMAND=DEL"],
      args: ["a"],
      stdin: Buffer.from('{"a":1}'),
    };
    const frame = encodeRequest(request);
    for (let cut = 0; cut <= frame.length; cut++) {
      const state = readAll([frame.subarray(0, cut), frame.subarray(cut)]);
      assert.deepEqual(state, { kind: "complete", request });
    }
    const byteByByte = readAll([...frame].map((b) => Buffer.from([b])));
    assert.deepEqual(byteByByte, { kind: "complete", request });
  });

  it("envRecord: first definition wins, entries without a name are skipped", function () {
    const env = envRecord(["A=1", "B=x=y", "A=2", "NOEQUALS", "=v", "C="]);
    assert.deepEqual({ ...env }, { A: "1", B: "x=y", C: "" });
    // No prototype keys leak in as variables.
    assert.ok(!("toString" in envRecord(["X=1"])));
  });

  it("refuses a wrong magic from the first byte, a wrong version and an oversized length from the header", function () {
    const bad = readAll([Buffer.from("G")]);
    assert.equal(bad.kind, "error");
    assert.match((bad as { message: string }).message, /magic/);

    const v2 = readAll([Buffer.concat([Buffer.from("SKNC"), u32(2)])]);
    assert.equal(v2.kind, "error");
    assert.match((v2 as { message: string }).message, /unsupported protocol version 2/);

    const big = readAll([Buffer.concat([Buffer.from("SKNC"), u32(1), u32(MAX_PAYLOAD_BYTES + 1)])]);
    assert.equal(big.kind, "error");
    assert.match((big as { message: string }).message, /exceeds the limit/);

    // Exactly the limit is accepted (the reader waits for the payload).
    const edge = readAll([Buffer.concat([Buffer.from("SKNC"), u32(1), u32(MAX_PAYLOAD_BYTES)])]);
    assert.equal(edge.kind, "partial");
    assert.throws(
      () => encodeRequest({ env: [], args: [], stdin: Buffer.alloc(MAX_PAYLOAD_BYTES) }),
      RangeError,
    );
  });

  it("refuses counts and lengths that run past the payload, and trailing bytes", function () {
    assert.throws(() => decodeRequestPayload(u32(0xffffffff)), /count 4294967295 exceeds/);
    assert.throws(
      () => decodeRequestPayload(Buffer.concat([u32(1), u32(100), Buffer.from("ab")])),
      /runs past/,
    );
    assert.throws(
      () => decodeRequestPayload(Buffer.concat([u32(0), u32(0), str("x"), Buffer.from("z")])),
      /after stdin/,
    );
    const frame = encodeRequest({ env: [], args: [], stdin: Buffer.alloc(0) });
    assert.equal(readAll([Buffer.concat([frame, Buffer.from("x")])]).kind, "error");
    assert.equal(readAll([frame, Buffer.from("x")]).kind, "error");
  });

  it("round-trips any request and response (property)", function () {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: "binary" }), { maxLength: 20 }),
        fc.array(fc.string(), { maxLength: 3 }),
        fc.uint8Array({ maxLength: 2000 }),
        fc.integer({ min: 1, max: 50 }),
        (env, args, stdin, chunk) => {
          const request = { env, args, stdin: Buffer.from(stdin) };
          const frame = encodeRequest(request);
          const chunks: Buffer[] = [];
          for (let off = 0; off < frame.length; off += chunk) chunks.push(frame.subarray(off, off + chunk));
          const state = readAll(chunks);
          assert.equal(state.kind, "complete");
          const got = (state as { request: CniRequest }).request;
          // Lone surrogates do not survive UTF-8; compare what UTF-8 makes of them.
          const utf8 = (s: string) => Buffer.from(s, "utf8").toString("utf8");
          assert.deepEqual(got, { env: env.map(utf8), args: args.map(utf8), stdin: Buffer.from(stdin) });
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.string(),
        fc.uint8Array({ maxLength: 500 }),
        (code, out, err) => {
          const r = decodeResponse(encodeResponse({ exitCode: code, stdout: out, stderr: Buffer.from(err) }));
          assert.equal(r.exitCode, code);
          assert.equal(r.stdout.toString(), Buffer.from(out).toString());
          assert.deepEqual(r.stderr, Buffer.from(err));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("garbage frames never throw: the reader ends partial, complete or with an error message (fuzz)", function () {
    const header = fc.tuple(
      fc.constantFrom("SKNC", "SKNX", "", "S"),
      fc.constantFrom(0, 1, 2, 0xffffffff),
      fc.oneof(fc.nat({ max: 300 }), fc.constant(0xffffffff), fc.constant(MAX_PAYLOAD_BYTES + 1)),
    );
    fc.assert(
      fc.property(
        header,
        fc.uint8Array({ maxLength: 400 }),
        fc.array(fc.nat({ max: 64 }), { maxLength: 8 }),
        ([magic, version, length], body, cuts) => {
          const frame = Buffer.concat([Buffer.from(magic), u32(version), u32(length), Buffer.from(body)]);
          const chunks: Buffer[] = [];
          let off = 0;
          for (const c of cuts) {
            chunks.push(frame.subarray(off, off + c));
            off += c;
          }
          chunks.push(frame.subarray(off));
          const state = readAll(chunks);
          if (state.kind === "error") assert.ok(state.message.length > 0);
          if (state.kind === "complete") assert.equal(magic + String(version), "SKNC1");
        },
      ),
      { numRuns: 1000 },
    );
    // Any bytes at all, as a payload or as a response.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const decode of [decodeRequestPayload, decodeResponse]) {
          try {
            decode(Buffer.from(bytes));
          } catch (err) {
            assert.equal((err as Error).name, "FrameError", String(err));
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});
