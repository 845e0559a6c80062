import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { dispatch, type DispatchIo } from "../../cni/dispatcher.js";
import { ADD_STEPS } from "../../cni/context.js";
import { CniError, ErrorCode } from "../../cni/errors.js";
import { hostVethName } from "../../cni/names.js";
import { SUPPORTED_VERSIONS } from "../../cni/spec.js";
import { FakeKernel } from "./fake-kernel.js";

const ROOT = "/sys/fs/bpf/skn-unit";

interface Outcome {
  exit: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

async function run(kernel: FakeKernel, env: Record<string, string>, stdin: unknown): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const io: DispatchIo = {
    env,
    readStdin: () => (typeof stdin === "string" ? stdin : JSON.stringify(stdin)),
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const exit = await dispatch(io, { kernel });
  let json: Record<string, unknown> | undefined;
  if (stdout.trim() !== "") json = JSON.parse(stdout) as Record<string, unknown>;
  return { exit, stdout, stderr, json };
}

function attachmentEnv(
  command: string,
  id: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: `/var/run/netns/${id}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
    ...extra,
  };
}

function assertError(o: Outcome, code: number, pattern?: RegExp): void {
  assert.notEqual(o.exit, 0, "exit code must be non-zero on error");
  assert.ok(o.json !== undefined, `error JSON on stdout, got ${JSON.stringify(o.stdout)}`);
  assert.deepEqual(Object.keys(o.json).sort(), ["cniVersion", "code", "details", "msg"]);
  assert.equal(o.json.code, code, `expected code ${code}, got ${JSON.stringify(o.json)}`);
  assert.equal(typeof o.json.msg, "string");
  if (pattern !== undefined) assert.match(`${String(o.json.msg)} ${String(o.json.details)}`, pattern);
}

describe("cni: dispatcher (injected env, stdin, stdout, fake kernel)", function () {
  let dataDir: string;
  let kernel: FakeKernel;

  function config(version: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: version,
      name: "unitnet",
      type: "skein-cni",
      podCIDR: "10.99.0.0/24",
      bpffsRoot: ROOT,
      dataDir,
      ...extra,
    };
  }

  function reservations(network = "unitnet"): string[] {
    try {
      return readdirSync(join(dataDir, network))
        .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
        .sort();
    } catch {
      return [];
    }
  }

  function add(
    version: string,
    id: string,
    extra: Record<string, unknown> = {},
    env: Record<string, string> = {},
  ): Promise<Outcome> {
    return run(kernel, attachmentEnv("ADD", id, env), config(version, extra));
  }

  beforeEach(function () {
    dataDir = mkdtempSync(join(tmpdir(), "skn-cni-unit-"));
    kernel = new FakeKernel();
    kernel.loadedRoots.add(ROOT);
  });

  afterEach(function () {
    rmSync(dataDir, { recursive: true, force: true });
    assert.equal(kernel.openDatapaths, 0, "every opened datapath is closed");
  });

  describe("VERSION", function () {
    for (const v of [...SUPPORTED_VERSIONS, "0.2.0"]) {
      it(`answers supportedVersions for a ${v} request`, async function () {
        const o = await run(kernel, { CNI_COMMAND: "VERSION" }, { cniVersion: v });
        assert.equal(o.exit, 0);
        assert.deepEqual(o.json, {
          cniVersion: v === "0.2.0" ? "1.1.0" : v,
          supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        });
      });
    }

    it("ignores the dummy attachment libcni passes when validating a configuration", async function () {
      const env = {
        CNI_COMMAND: "VERSION",
        CNI_CONTAINERID: "dummy",
        CNI_NETNS: "dummy",
        CNI_IFNAME: "dummy",
        CNI_ARGS: "x",
        CNI_PATH: "/opt/cni/bin",
      };
      const o = await run(kernel, env, { cniVersion: "1.0.0" });
      assert.equal(o.exit, 0, o.stdout);
      assert.equal(o.json?.cniVersion, "1.0.0");
    });

    it("answers even when stdin is empty or not JSON", async function () {
      for (const stdin of ["", "{nope"]) {
        const o = await run(kernel, { CNI_COMMAND: "VERSION" }, stdin);
        assert.equal(o.exit, 0);
        assert.equal(o.json?.cniVersion, "1.1.0");
      }
    });
  });

  describe("ADD result per version", function () {
    for (const v of SUPPORTED_VERSIONS) {
      it(`writes a ${v} result`, async function () {
        const o = await add(v, "ctr1");
        assert.equal(o.exit, 0, o.stdout + o.stderr);
        const r = o.json!;
        assert.equal(r.cniVersion, v);
        const interfaces = r.interfaces as Record<string, unknown>[];
        const ips = r.ips as Record<string, unknown>[];
        const routes = r.routes as Record<string, unknown>[];
        assert.equal(interfaces.length, 2);
        assert.equal(interfaces[0]!.name, hostVethName("ctr1", "eth0"));
        assert.equal(interfaces[0]!.sandbox, undefined);
        assert.equal(interfaces[1]!.name, "eth0");
        assert.equal(interfaces[1]!.sandbox, "/var/run/netns/ctr1");
        assert.match(String(interfaces[1]!.mac), /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        assert.equal(ips.length, 1);
        assert.equal(ips[0]!.address, "10.99.0.2/32");
        assert.equal(ips[0]!.gateway, "169.254.1.1");
        assert.equal(ips[0]!.interface, 1);
        assert.ok(routes.some((x) => x.dst === "0.0.0.0/0" && x.gw === "169.254.1.1"));
        if (v.startsWith("0.")) assert.equal(ips[0]!.version, "4");
        else assert.equal("version" in ips[0]!, false);
        if (v === "1.1.0") {
          assert.equal(interfaces[1]!.mtu, 1450);
          assert.ok(routes.some((x) => x.dst === "169.254.1.1/32" && x.scope === 253));
        } else {
          assert.equal("mtu" in interfaces[1]!, false);
          assert.ok(routes.every((x) => Object.keys(x).every((k) => k === "dst" || k === "gw")));
        }
        assert.deepEqual(reservations(), ["10.99.0.2"]);
        assert.deepEqual(kernel.endpointEntries.get("10.99.0.2")?.mac, interfaces[1]!.mac);
      });
    }

    it("merges a chained prevResult, renumbering interface indexes", async function () {
      const prevResult = {
        cniVersion: "1.0.0",
        interfaces: [{ name: "lo0", sandbox: "/var/run/netns/ctr1" }],
        ips: [{ address: "192.0.2.9/24", interface: 0 }],
        routes: [],
      };
      const o = await add("1.0.0", "ctr1", { prevResult });
      assert.equal(o.exit, 0, o.stdout);
      const ips = o.json!.ips as Record<string, unknown>[];
      assert.deepEqual(
        ips.map((x) => [x.address, x.interface]),
        [
          ["192.0.2.9/24", 0],
          ["10.99.0.2/32", 2],
        ],
      );
    });

    it("derives the MTU from the uplink (minus 50) and honours `mtu`", async function () {
      kernel.uplink = 9000;
      assert.equal(((await add("1.1.0", "a")).json!.interfaces as { mtu: number }[])[1]!.mtu, 8950);
      assert.equal(
        ((await add("1.1.0", "b", { mtu: 1300 })).json!.interfaces as { mtu: number }[])[1]!.mtu,
        1300,
      );
      kernel.uplink = undefined;
      assert.equal(((await add("1.1.0", "c")).json!.interfaces as { mtu: number }[])[1]!.mtu, 1450);
    });

    it("rotates addresses: a freed address is not handed out again right away", async function () {
      await add("1.0.0", "a");
      await add("1.0.0", "b");
      assert.equal((await run(kernel, attachmentEnv("DEL", "a"), config("1.0.0"))).exit, 0);
      const o = await add("1.0.0", "c");
      assert.equal((o.json!.ips as { address: string }[])[0]!.address, "10.99.0.4/32");
    });
  });

  describe("configuration", function () {
    it("accepts runtimeConfig in lower and upper camel case, unknown keys and capabilities", async function () {
      const variants: Record<string, unknown>[] = [
        {
          capabilities: { ips: true, mac: true },
          runtimeConfig: { ips: ["10.99.0.50/24"], mac: "02:00:00:00:00:50" },
        },
        { RuntimeConfig: { IPs: ["10.99.0.51"], Mac: "02:00:00:00:00:51" } },
        {
          runtimeConfig: { Ips: ["10.99.0.52/32"], MAC: "02:00:00:00:00:52" },
          someVendorKey: { nested: [1, 2] },
        },
        { args: { cni: { ips: ["10.99.0.53"] } }, ipam: {}, "cni.dev/unknown": true, isDefaultGateway: true },
      ];
      for (const [i, extra] of variants.entries()) {
        const o = await add("1.0.0", `ctr${i}`, extra);
        assert.equal(o.exit, 0, o.stdout);
        assert.equal((o.json!.ips as { address: string }[])[0]!.address, `10.99.0.${50 + i}/32`);
        if (i < 3) assert.equal((o.json!.interfaces as { mac: string }[])[1]!.mac, `02:00:00:00:00:5${i}`);
      }
    });

    it("takes IP= and MAC= from CNI_ARGS", async function () {
      const o = await add(
        "1.0.0",
        "ctr",
        {},
        { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.99.0.77;MAC=02:00:00:00:00:77" },
      );
      assert.equal(o.exit, 0, o.stdout);
      assert.equal((o.json!.ips as { address: string }[])[0]!.address, "10.99.0.77/32");
      assert.equal((o.json!.interfaces as { mac: string }[])[1]!.mac, "02:00:00:00:00:77");
    });

    it("accepts the conflist form and uses its skein-cni entry", async function () {
      const conflist = {
        cniVersion: "1.0.0",
        name: "unitnet",
        plugins: [
          { type: "skein-cni", podCIDR: "10.99.0.0/24", bpffsRoot: ROOT, dataDir },
          { type: "portmap" },
        ],
      };
      const o = await run(kernel, attachmentEnv("ADD", "ctr"), conflist);
      assert.equal(o.exit, 0, o.stdout);
      assert.deepEqual(reservations(), ["10.99.0.2"]);
    });

    const invalid: [string, Record<string, unknown>][] = [
      ["missing name", { name: undefined }],
      ["bad name", { name: "a/b" }],
      ["missing type", { type: undefined }],
      ["missing podCIDR", { podCIDR: undefined }],
      ["podCIDR not a CIDR", { podCIDR: "10.99.0.0" }],
      ["podCIDR garbage", { podCIDR: "ten/8" }],
      ["podCIDR too small", { podCIDR: "10.99.0.0/31" }],
      ["mtu out of range", { mtu: 40 }],
      ["mtu not a number", { mtu: "1500" }],
      ["relative dataDir", { dataDir: "var/lib" }],
      ["relative bpffsRoot", { bpffsRoot: "skein" }],
      ["runtimeConfig not an object", { runtimeConfig: [1] }],
      ["bad requested IP", { runtimeConfig: { ips: ["fe80::1"] } }],
      ["bad MAC", { runtimeConfig: { mac: "zz" } }],
      ["capabilities not an object", { capabilities: true }],
    ];
    for (const [what, extra] of invalid) {
      it(`rejects ${what} with code 7 and changes nothing`, async function () {
        const o = await add("1.0.0", "ctr", extra);
        assertError(o, ErrorCode.invalidConfig);
        assert.deepEqual(reservations(), []);
        assert.equal(kernel.calls.length, 0);
      });
    }
  });

  describe("error codes", function () {
    it("6 for malformed JSON, with the config's version unknown", async function () {
      const o = await run(kernel, attachmentEnv("ADD", "ctr"), '{"cniVersion": "1.0.0", ');
      assertError(o, ErrorCode.decodingFailure);
      assert.equal(o.json!.cniVersion, "1.1.0");
      const arr = await run(kernel, attachmentEnv("ADD", "ctr"), "[1,2]");
      assertError(arr, ErrorCode.decodingFailure);
    });

    it("1 for an unknown, unsupported or missing cniVersion", async function () {
      for (const v of ["9.9.9", "0.2.0", "0.1.0", "", undefined])
        assertError(await add(v as string, "ctr"), ErrorCode.incompatibleVersion);
      assert.equal(kernel.calls.length, 0);
    });

    it("1 for verbs the config's version does not have (CHECK < 0.4.0, STATUS/GC < 1.1.0)", async function () {
      for (const v of ["0.3.0", "0.3.1"])
        assertError(await run(kernel, attachmentEnv("CHECK", "c"), config(v)), 1, /CHECK/);
      for (const v of ["0.3.1", "0.4.0", "1.0.0"]) {
        assertError(await run(kernel, { CNI_COMMAND: "STATUS" }, config(v)), 1, /STATUS/);
        assertError(
          await run(kernel, { CNI_COMMAND: "GC" }, config(v, { "cni.dev/valid-attachments": [] })),
          1,
          /GC/,
        );
      }
    });

    it("4 for missing or invalid environment variables, naming them", async function () {
      const stdin = config("1.0.0");
      assertError(await run(kernel, {}, stdin), 4, /CNI_COMMAND/);
      assertError(await run(kernel, { CNI_COMMAND: "FROB" }, stdin), 4, /FROB/);
      assertError(
        await run(kernel, { CNI_COMMAND: "ADD" }, stdin),
        4,
        /CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME/,
      );
      assertError(
        await run(kernel, { CNI_COMMAND: "CHECK", CNI_CONTAINERID: "x" }, stdin),
        4,
        /CNI_NETNS,CNI_IFNAME/,
      );
      assertError(await run(kernel, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "x" }, stdin), 4, /CNI_IFNAME/);
      assertError(
        await run(kernel, attachmentEnv("ADD", "x", { CNI_IFNAME: "a-very-long-ifname" }), stdin),
        4,
        /CNI_IFNAME/,
      );
      assertError(
        await run(kernel, attachmentEnv("ADD", "x", { CNI_IFNAME: "eth 0" }), stdin),
        4,
        /CNI_IFNAME/,
      );
      assertError(
        await run(kernel, attachmentEnv("ADD", "x", { CNI_CONTAINERID: "-bad" }), stdin),
        4,
        /CNI_CONTAINERID/,
      );
      assertError(
        await run(kernel, attachmentEnv("ADD", "x", { CNI_NETNS: "relative/ns" }), stdin),
        4,
        /CNI_NETNS/,
      );
      assertError(
        await run(kernel, attachmentEnv("ADD", "x", { CNI_ARGS: "novalue" }), stdin),
        4,
        /CNI_ARGS/,
      );
      assert.equal(kernel.calls.length, 0);
      assert.deepEqual(reservations(), []);
    });

    it("5 when stdin cannot be read", async function () {
      let stdout = "";
      const exit = await dispatch(
        {
          env: attachmentEnv("ADD", "x"),
          readStdin: () => {
            throw new Error("EIO");
          },
          stdout: { write: (s: string) => (stdout += s) },
          stderr: { write: () => true },
        },
        { kernel },
      );
      assert.equal(exit, 1);
      assert.equal((JSON.parse(stdout) as { code: number }).code, ErrorCode.ioFailure);
    });

    it("101 when the podCIDR is exhausted, changing nothing", async function () {
      const small = { podCIDR: "10.99.0.0/30" };
      assert.equal((await add("1.0.0", "a", small)).exit, 0);
      const before = {
        links: [...kernel.links.keys()],
        entries: [...kernel.endpointEntries.keys()],
        ipam: reservations(),
      };
      assertError(await add("1.0.0", "b", small), ErrorCode.ipamFailure, /no IP addresses available/);
      assert.deepEqual(
        {
          links: [...kernel.links.keys()],
          entries: [...kernel.endpointEntries.keys()],
          ipam: reservations(),
        },
        before,
      );
    });

    it("101 for a requested address that is taken or outside the podCIDR", async function () {
      assert.equal((await add("1.0.0", "a", { runtimeConfig: { ips: ["10.99.0.9"] } })).exit, 0);
      assertError(
        await add("1.0.0", "b", { runtimeConfig: { ips: ["10.99.0.9"] } }),
        101,
        /already allocated/,
      );
      assertError(await add("1.0.0", "c", { runtimeConfig: { ips: ["10.98.0.9"] } }), 101, /not allocatable/);
      assertError(await add("1.0.0", "d", { runtimeConfig: { ips: ["10.99.0.1"] } }), 101, /not allocatable/);
    });

    it("11 on ADD while the datapath is not loaded, changing nothing", async function () {
      kernel.loadedRoots.clear();
      assertError(await add("1.0.0", "a"), ErrorCode.tryAgainLater, /not loaded/);
      assert.deepEqual(reservations(), []);
      assert.equal(kernel.calls.length, 0);
    });

    it("3 when the container's netns does not exist", async function () {
      kernel.missingNetns.add("/var/run/netns/gone");
      assertError(await add("1.0.0", "gone"), ErrorCode.unknownContainer);
      assert.deepEqual(reservations(), []);
    });

    it("102 when the interface name is taken in the container, after undoing the reservation", async function () {
      kernel.occupied.add("/var/run/netns/busy/eth0");
      assertError(await add("1.0.0", "busy"), ErrorCode.interfaceFailure, /already exists/);
      assert.deepEqual(reservations(), []);
    });

    it("999 for anything unexpected", async function () {
      kernel.failures.set("createHostSide", new TypeError("boom") as unknown as CniError);
      assertError(await add("1.0.0", "a"), ErrorCode.internal, /boom/);
      assert.deepEqual(reservations(), []);
    });

    it("reports the config's cniVersion in errors", async function () {
      assert.equal((await add("0.4.0", "a", { podCIDR: "x" })).json?.cniVersion, "0.4.0");
    });
  });

  describe("fuzzing", function () {
    it("never throws; always exits with a result or a well-formed error, and a failed ADD changes nothing", async function () {
      const json = fc.jsonValue({ maxDepth: 3 });
      const configLike = fc.record(
        {
          cniVersion: fc.oneof(fc.constantFrom(...SUPPORTED_VERSIONS, "0.2.0", ""), fc.string(), json),
          name: fc.oneof(fc.constant("unitnet"), fc.string(), json),
          type: fc.oneof(fc.constant("skein-cni"), json),
          podCIDR: fc.oneof(fc.constantFrom("10.99.0.0/24", "10.99.0.0/30", "10.99.0.0/31", "x"), json),
          mtu: fc.oneof(fc.integer({ min: -10, max: 70000 }), json),
          runtimeConfig: fc.oneof(
            fc.record(
              { ips: fc.array(fc.oneof(fc.ipV4(), fc.string())), mac: fc.string() },
              { requiredKeys: [] },
            ),
            json,
          ),
          prevResult: json,
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", "", "BOGUS"),
          fc.oneof(
            configLike.map((c) => JSON.stringify({ bpffsRoot: ROOT, dataDir, ...c })),
            fc.string(),
          ),
          fc.oneof(fc.constant("ctr"), fc.string({ maxLength: 20 })),
          fc.oneof(fc.constant("eth0"), fc.string({ maxLength: 20 })),
          async (command, stdin, id, ifname) => {
            const before = reservations().length;
            const o = await run(
              kernel,
              {
                CNI_COMMAND: command,
                CNI_CONTAINERID: id,
                CNI_NETNS: "/var/run/netns/x",
                CNI_IFNAME: ifname,
              },
              stdin,
            );
            assert.ok(
              o.json !== undefined || (o.exit === 0 && o.stdout === ""),
              `unexpected output ${o.stdout}`,
            );
            if (o.exit !== 0) {
              assert.equal(typeof o.json!.code, "number");
              assert.equal(typeof o.json!.msg, "string");
              if (command === "ADD") assert.equal(reservations().length, before);
            }
            // Keep the namespace small between runs.
            await run(
              kernel,
              { CNI_COMMAND: "DEL", CNI_CONTAINERID: "ctr", CNI_IFNAME: "eth0" },
              config("1.0.0"),
            );
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  describe("ADD rollback", function () {
    for (const step of ADD_STEPS) {
      it(`a failure after step "${step}" leaves nothing behind`, async function () {
        const o = await add("1.0.0", "ctr", {}, { SKEIN_CNI_TEST_FAIL_AFTER: step });
        assertError(o, ErrorCode.internal, new RegExp(step));
        assert.deepEqual(reservations(), []);
        assert.equal(kernel.links.size, 0);
        assert.equal(kernel.endpointEntries.size, 0);
      });
    }

    for (const method of ["configurePodSide", "attach", "setEndpoint"]) {
      it(`a failing ${method} undoes the earlier steps in reverse`, async function () {
        kernel.failures.set(method, new CniError(ErrorCode.interfaceFailure, `${method} failed`));
        const o = await add("1.0.0", "ctr");
        assert.notEqual(o.exit, 0);
        assert.deepEqual(reservations(), []);
        assert.equal(kernel.links.size, 0);
        assert.equal(kernel.endpointEntries.size, 0);
        const host = hostVethName("ctr", "eth0");
        assert.equal(kernel.calls.at(-1), `deleteLink ${host}`);
      });
    }

    it("refuses a second ADD of the same attachment without touching the first", async function () {
      assert.equal((await add("1.0.0", "ctr")).exit, 0);
      assertError(await add("1.0.0", "ctr"), ErrorCode.interfaceFailure, /already exists/);
      assert.deepEqual(reservations(), ["10.99.0.2"]);
      assert.equal(kernel.links.size, 1);
    });
  });

  describe("DEL", function () {
    for (const v of SUPPORTED_VERSIONS) {
      it(`frees everything (${v}) and succeeds again when called twice`, async function () {
        const added = await add(v, "ctr");
        assert.equal(added.exit, 0);
        const del = await run(kernel, attachmentEnv("DEL", "ctr"), config(v, { prevResult: added.json }));
        assert.equal(del.exit, 0, del.stdout);
        assert.equal(del.stdout, "");
        assert.deepEqual(reservations(), []);
        assert.equal(kernel.links.size, 0);
        assert.equal(kernel.endpointEntries.size, 0);
        assert.equal(
          (await run(kernel, attachmentEnv("DEL", "ctr"), config(v, { prevResult: added.json }))).exit,
          0,
        );
      });
    }

    it("works without prevResult and without CNI_NETNS", async function () {
      assert.equal((await add("1.0.0", "ctr")).exit, 0);
      const env = attachmentEnv("DEL", "ctr");
      delete (env as Partial<typeof env>).CNI_NETNS;
      assert.equal((await run(kernel, env, config("1.0.0"))).exit, 0);
      assert.deepEqual(reservations(), []);
      assert.equal(kernel.links.size, 0);
    });

    it("succeeds for an attachment that never existed, and with the datapath unloaded", async function () {
      assert.equal((await run(kernel, attachmentEnv("DEL", "never"), config("1.0.0"))).exit, 0);
      assert.equal((await add("1.0.0", "ctr")).exit, 0);
      kernel.loadedRoots.clear();
      assert.equal((await run(kernel, attachmentEnv("DEL", "ctr"), config("1.0.0"))).exit, 0);
      assert.deepEqual(reservations(), []);
    });

    it("does not delete the endpoint of a new pod that got the address meanwhile", async function () {
      const first = await add("1.0.0", "old");
      assert.equal((await run(kernel, attachmentEnv("DEL", "old"), config("1.0.0"))).exit, 0);
      const second = await add("1.0.0", "new", { runtimeConfig: { ips: ["10.99.0.2"] } });
      assert.equal(second.exit, 0);
      assert.equal(
        (await run(kernel, attachmentEnv("DEL", "old"), config("1.0.0", { prevResult: first.json }))).exit,
        0,
      );
      assert.ok(kernel.endpointEntries.has("10.99.0.2"));
      assert.deepEqual(reservations(), ["10.99.0.2"]);
    });

    it("keeps going after a failure and reports it with code 104", async function () {
      assert.equal((await add("1.0.0", "ctr")).exit, 0);
      kernel.failures.set("deleteLink", new CniError(ErrorCode.interfaceFailure, "link busy"));
      const o = await run(kernel, attachmentEnv("DEL", "ctr"), config("1.0.0"));
      assertError(o, ErrorCode.cleanupIncomplete, /link busy/);
      assert.deepEqual(reservations(), [], "the address is released even though the link stayed");
      assert.equal(kernel.endpointEntries.size, 0);
    });
  });

  describe("CHECK", function () {
    for (const v of ["0.4.0", "1.0.0", "1.1.0"]) {
      it(`passes on a good attachment and fails when the host route is gone (${v})`, async function () {
        const added = await add(v, "ctr");
        const ok = await run(kernel, attachmentEnv("CHECK", "ctr"), config(v, { prevResult: added.json }));
        assert.equal(ok.exit, 0, ok.stdout);
        assert.equal(ok.stdout, "");
        kernel.links.get(hostVethName("ctr", "eth0"))!.hostRoute = false;
        assertError(
          await run(kernel, attachmentEnv("CHECK", "ctr"), config(v, { prevResult: added.json })),
          ErrorCode.checkFailed,
          /host route/,
        );
      });
    }

    it("fails without prevResult (7), for a vanished netns (3), for detached programs and a lost endpoint (103)", async function () {
      const added = await add("1.0.0", "ctr");
      assertError(
        await run(kernel, attachmentEnv("CHECK", "ctr"), config("1.0.0")),
        ErrorCode.invalidConfig,
        /prevResult/,
      );
      const link = kernel.links.get(hostVethName("ctr", "eth0"))!;
      link.attached = { ingress: "skn_from_pod" };
      kernel.endpointEntries.clear();
      const o = await run(kernel, attachmentEnv("CHECK", "ctr"), config("1.0.0", { prevResult: added.json }));
      assertError(o, ErrorCode.checkFailed, /egress slot holds nothing/);
      assert.match(String(o.json!.details), /endpoint entry for 10\.99\.0\.2 is missing/);
      kernel.missingNetns.add("/var/run/netns/ctr");
      assertError(
        await run(kernel, attachmentEnv("CHECK", "ctr"), config("1.0.0", { prevResult: added.json })),
        ErrorCode.unknownContainer,
      );
    });

    it("fails when the address reservation is gone", async function () {
      const added = await add("1.0.0", "ctr");
      rmSync(join(dataDir, "unitnet", "10.99.0.2"));
      assertError(
        await run(kernel, attachmentEnv("CHECK", "ctr"), config("1.0.0", { prevResult: added.json })),
        103,
        /not reserved/,
      );
    });
  });

  describe("STATUS", function () {
    it("succeeds with the datapath loaded, 50 without it or with the podCIDR exhausted", async function () {
      const ok = await run(kernel, { CNI_COMMAND: "STATUS" }, config("1.1.0"));
      assert.equal(ok.exit, 0);
      assert.equal(ok.stdout, "");
      kernel.loadedRoots.clear();
      assertError(
        await run(kernel, { CNI_COMMAND: "STATUS" }, config("1.1.0")),
        ErrorCode.pluginNotAvailable,
        /not loaded/,
      );
      kernel.loadedRoots.add(ROOT);
      assert.equal((await add("1.1.0", "a", { podCIDR: "10.99.0.0/30" })).exit, 0);
      assertError(
        await run(kernel, { CNI_COMMAND: "STATUS" }, config("1.1.0", { podCIDR: "10.99.0.0/30" })),
        50,
        /exhausted/,
      );
    });
  });

  describe("GC", function () {
    for (const key of ["cni.dev/valid-attachments", "cni.dev/attachments"]) {
      it(`removes attachments missing from ${key} and keeps the listed ones`, async function () {
        for (const id of ["keep1", "keep2", "stale"]) assert.equal((await add("1.1.0", id)).exit, 0);
        // A crash between reservation and wiring: a reservation with nothing else.
        writeFileSync(join(dataDir, "unitnet", "10.99.0.200"), "crashed\neth0\n");
        const valid = [
          { containerID: "keep1", ifname: "eth0" },
          { containerID: "keep2", ifname: "eth0" },
        ];
        const o = await run(
          kernel,
          { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
          config("1.1.0", { [key]: valid }),
        );
        assert.equal(o.exit, 0, o.stdout);
        assert.deepEqual(reservations(), ["10.99.0.2", "10.99.0.3"]);
        assert.deepEqual(
          [...kernel.links.keys()].sort(),
          [hostVethName("keep1", "eth0"), hostVethName("keep2", "eth0")].sort(),
        );
        assert.deepEqual([...kernel.endpointEntries.keys()].sort(), ["10.99.0.2", "10.99.0.3"]);
      });
    }

    it("needs the list (7) and removes everything for an empty one", async function () {
      assert.equal((await add("1.1.0", "a")).exit, 0);
      assertError(
        await run(kernel, { CNI_COMMAND: "GC" }, config("1.1.0")),
        ErrorCode.invalidConfig,
        /valid-attachments/,
      );
      assert.equal(
        (await run(kernel, { CNI_COMMAND: "GC" }, config("1.1.0", { "cni.dev/valid-attachments": [] }))).exit,
        0,
      );
      assert.deepEqual(reservations(), []);
      assert.equal(kernel.links.size, 0);
      assert.equal(kernel.endpointEntries.size, 0);
    });
  });
});
