import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { IpRange, IpamStore, pickAddress } from "../../cni/ipam.js";
import { CniError } from "../../cni/errors.js";
import { formatIPv4, parseIPv4, parsePrefix } from "../../maps/net.js";

const here = dirname(fileURLToPath(import.meta.url));

describe("cni: IPAM", function () {
  describe("IpRange", function () {
    it("skips the network, the first (host-local's gateway) and the broadcast address", function () {
      const r = new IpRange(parsePrefix("10.1.2.0/24"));
      assert.equal(formatIPv4(r.first), "10.1.2.2");
      assert.equal(formatIPv4(r.last), "10.1.2.254");
      assert.equal(r.size, 253);
      assert.equal(r.contains("10.1.2.1"), false);
      assert.equal(r.contains("10.1.2.255"), false);
      assert.equal(new IpRange(parsePrefix("10.1.2.0/30")).size, 1);
      assert.throws(() => new IpRange(parsePrefix("10.1.2.0/31")), RangeError);
    });

    it("rotation visits every allocatable address exactly once, starting after the given one", function () {
      fc.assert(
        fc.property(fc.integer({ min: 20, max: 30 }), fc.nat(), (length, seed) => {
          const r = new IpRange(parsePrefix(`10.${seed % 256}.0.0/${length}`));
          const after = formatIPv4(r.first + (seed % r.size));
          const seen = [...r.rotation(after)];
          assert.equal(seen.length, r.size);
          assert.equal(new Set(seen).size, r.size);
          assert.ok(seen.every((ip) => r.contains(ip)));
          const expectedFirst = r.first + (((seed % r.size) + 1) % r.size);
          assert.equal(seen[0], formatIPv4(expectedFirst));
        }),
      );
    });
  });

  describe("pickAddress (model-based)", function () {
    type Op = { kind: "alloc" } | { kind: "free"; pick: number } | { kind: "request"; offset: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant<Op>({ kind: "alloc" }),
      fc.nat().map<Op>((pick) => ({ kind: "free", pick })),
      fc.integer({ min: -2, max: 70 }).map<Op>((offset) => ({ kind: "request", offset })),
    );

    it("never hands out a taken or out-of-range address, fails exactly when full, and rotates", function () {
      fc.assert(
        fc.property(fc.integer({ min: 26, max: 30 }), fc.array(op, { maxLength: 120 }), (length, ops) => {
          const range = new IpRange(parsePrefix(`10.7.0.0/${length}`));
          const taken = new Set<string>();
          let last: string | undefined;
          for (const o of ops) {
            if (o.kind === "free") {
              const list = [...taken];
              if (list.length > 0) taken.delete(list[o.pick % list.length]!);
              continue;
            }
            const requested = o.kind === "request" ? formatIPv4(range.first + o.offset) : undefined;
            const full = taken.size === range.size;
            let got: string;
            try {
              got = pickAddress(range, (ip) => taken.has(ip), last, requested);
            } catch (err) {
              assert.ok(err instanceof CniError && err.code === 101);
              if (requested === undefined) assert.ok(full, "fails only when every address is taken");
              else assert.ok(!range.contains(requested) || taken.has(requested));
              continue;
            }
            assert.ok(range.contains(got));
            assert.ok(!taken.has(got));
            if (requested !== undefined) assert.equal(got, requested);
            else {
              // Rotation: nothing free strictly between `last` and `got`.
              for (const ip of range.rotation(last)) {
                if (ip === got) break;
                assert.ok(taken.has(ip), `${ip} was free but ${got} was picked`);
              }
            }
            taken.add(got);
            last = got;
          }
        }),
      );
    });
  });

  describe("IpamStore (files under a temporary dataDir)", function () {
    let dataDir: string;
    const range = new IpRange(parsePrefix("10.8.0.0/28"));

    beforeEach(function () {
      dataDir = mkdtempSync(join(tmpdir(), "skn-ipam-"));
    });
    afterEach(function () {
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("writes one file per address with the container ID and ifname, plus a rotation pointer", function () {
      const store = IpamStore.open(dataDir, "net1");
      const ip = store.locked(() => store.reserve(range, { containerId: "abc", ifname: "eth0" }));
      assert.equal(ip, "10.8.0.2");
      assert.equal(readFileSync(join(dataDir, "net1", ip), "utf8"), "abc\neth0\n");
      assert.equal(readFileSync(join(dataDir, "net1", "last_reserved_ip"), "utf8").trim(), ip);
      assert.deepEqual(store.reservationsOf({ containerId: "abc", ifname: "eth0" }), [ip]);
      assert.equal(
        store.release(ip, { containerId: "other", ifname: "eth0" }),
        false,
        "only the owner releases",
      );
      assert.equal(store.release(ip, { containerId: "abc", ifname: "eth0" }), true);
      assert.equal(store.release(ip), false);
      assert.equal(existsSync(join(dataDir, "net1", ip)), false);
    });

    it("refuses a duplicate allocation for the same attachment", function () {
      const store = IpamStore.open(dataDir, "net1");
      const owner = { containerId: "abc", ifname: "eth0" };
      store.locked(() => store.reserve(range, owner));
      assert.throws(() => store.reserve(range, owner), /duplicate allocation/);
      assert.equal(
        store.locked(() => store.reserve(range, { ...owner, ifname: "net1" })),
        "10.8.0.3",
      );
    });

    it("treats an unreadable reservation as taken and sweeps temporaries of crashed ADDs", function () {
      const store = IpamStore.open(dataDir, "net1");
      writeFileSync(join(dataDir, "net1", "10.8.0.2"), "");
      writeFileSync(join(dataDir, "net1", ".10.8.0.3.999.tmp"), "x\ny\n");
      assert.equal(store.owner("10.8.0.2"), null);
      store.locked(() => {
        store.sweepTemporaries();
      });
      assert.deepEqual(readdirSync(join(dataDir, "net1")).sort(), ["10.8.0.2", "lock"]);
      assert.equal(
        store.locked(() => store.reserve(range, { containerId: "a", ifname: "eth0" })),
        "10.8.0.3",
      );
    });

    it("gives concurrent processes distinct addresses (flock)", async function () {
      this.timeout(60000);
      const worker = join(here, "ipam-worker.js");
      const n = 12;
      const outputs = await Promise.all(
        Array.from(
          { length: n },
          (_, i) =>
            new Promise<string>((resolve, reject) => {
              const child = spawn(process.execPath, [worker, dataDir, "race", "10.9.0.0/24", `ctr${i}`], {
                stdio: ["ignore", "pipe", "inherit"],
              });
              let out = "";
              child.stdout.on("data", (d: Buffer) => (out += d.toString()));
              child.on("error", reject);
              child.on("exit", (code) => {
                code === 0 ? resolve(out.trim()) : reject(new Error(`worker ${i} exited ${code}`));
              });
            }),
        ),
      );
      const ips = outputs.flatMap((o) => o.split("\n"));
      assert.equal(ips.length, n * 5);
      assert.equal(new Set(ips).size, n * 5, `duplicates in ${ips.join(" ")}`);
      assert.ok(
        ips.every((ip) => parseIPv4(ip) >= parseIPv4("10.9.0.2") && parseIPv4(ip) <= parseIPv4("10.9.0.254")),
      );
      assert.equal(readdirSync(join(dataDir, "race")).filter((f) => /^\d/.test(f)).length, n * 5);
    });
  });
});
