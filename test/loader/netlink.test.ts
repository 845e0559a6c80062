/**
 * The rtnetlink binding and setns against the real kernel, in two namespaces made for the test:
 * a veth pair created with its peer inside the other namespace, a link moved there, addresses,
 * routes, neighbours, link state and MTU, each read back through the binding and through iproute2
 * as an independent observer, traffic across the pair, typed errors, deletion, and the thread's
 * namespace restored even when the function run inside another one throws.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { NetlinkError, Netns, Rtnetlink, SysError, inNetns } from "../../loader/index.js";
import { createNetns, deleteNetns, must, netnsPath, run } from "../cni/plugin-harness.js";
import { requireRoot } from "../helpers/privileged.js";

const threadNetns = (): number => statSync("/proc/thread-self/ns/net").ino;

describe("loader: rtnetlink and setns (real kernel)", function () {
  this.timeout(30000);
  let hostName = "";
  let podName = "";
  let host: Netns | undefined;
  let pod: Netns | undefined;
  let hnl: Rtnetlink | undefined;
  let pnl: Rtnetlink | undefined;

  before(function () {
    requireRoot(this);
    hostName = createNetns("sknlh");
    podName = createNetns("sknlp");
    host = Netns.open(netnsPath(hostName));
    pod = Netns.open(netnsPath(podName));
    hnl = Rtnetlink.openIn(host);
    pnl = Rtnetlink.openIn(pod);
  });

  after(function () {
    for (const owned of [hnl, pnl, host, pod]) owned?.close();
    for (const name of [hostName, podName]) if (name !== "") deleteNetns(name);
  });

  const ipIn = (ns: string, args: string[]): string => must("ip", ["-n", ns, ...args]);

  it("creates a veth pair with the peer in another namespace, configures both ends, and carries traffic", function () {
    const [h, p] = [hnl!, pnl!];
    h.createVeth(
      { name: "skntst0", mac: "02:00:00:00:aa:01", mtu: 1400 },
      { name: "eth0", mac: "02:00:00:00:aa:02", mtu: 1400, netnsFd: pod!.fd },
    );
    const hl = h.link("skntst0");
    const pl = p.link("eth0");
    assert.ok(hl !== undefined && pl !== undefined);
    assert.deepEqual([hl.mac, hl.mtu, hl.up], ["02:00:00:00:aa:01", 1400, false]);
    assert.deepEqual([pl.mac, pl.mtu], ["02:00:00:00:aa:02", 1400]);
    assert.equal(h.link("eth0"), undefined, "the peer is not in the first namespace");

    h.setLink(hl.ifindex, "skntst0", { up: true, mtu: 1380 });
    p.setLink(pl.ifindex, "eth0", { up: true, mtu: 1380 });
    assert.deepEqual([h.link("skntst0")?.up, h.link("skntst0")?.mtu], [true, 1380]);
    h.addAddress(hl.ifindex, "skntst0", "10.99.0.1", 32);
    p.addAddress(pl.ifindex, "eth0", "10.99.0.2", 32);
    h.addRoute({ dst: "10.99.0.2", dstLen: 32, oif: hl.ifindex, scope: 253 }, "skntst0");
    p.addRoute({ dst: "10.99.0.1", dstLen: 32, oif: pl.ifindex, scope: 253 }, "eth0");
    p.addRoute({ dst: "0.0.0.0", dstLen: 0, gateway: "10.99.0.1", oif: pl.ifindex, scope: 0 }, "eth0");
    h.replaceNeighbour(hl.ifindex, "skntst0", "10.99.0.2", "02:00:00:00:aa:02");
    p.replaceNeighbour(pl.ifindex, "eth0", "10.99.0.1", "02:00:00:00:aa:01");
    // Replacing is idempotent.
    p.replaceNeighbour(pl.ifindex, "eth0", "10.99.0.1", "02:00:00:00:aa:01");

    // Read back through the binding...
    assert.deepEqual(p.addresses(pl.ifindex), [{ ifindex: pl.ifindex, address: "10.99.0.2", prefixlen: 32 }]);
    const routes = p.routes().map((r) => [r.dst, r.dstLen, r.gateway, r.oif, r.scope]);
    assert.deepEqual(
      routes.sort(),
      [
        ["0.0.0.0", 0, "10.99.0.1", pl.ifindex, 0],
        ["10.99.0.1", 32, undefined, pl.ifindex, 253],
      ].sort(),
    );
    assert.deepEqual(h.neighbours(hl.ifindex), [
      { ifindex: hl.ifindex, ip: "10.99.0.2", state: 0x80, mac: "02:00:00:00:aa:02" },
    ]);
    // ...and through iproute2.
    assert.match(ipIn(podName, ["-4", "addr", "show", "eth0"]), /inet 10\.99\.0\.2\/32/);
    assert.match(ipIn(podName, ["route", "show"]), /default via 10\.99\.0\.1 dev eth0/);
    assert.match(ipIn(hostName, ["route", "show"]), /10\.99\.0\.2 dev skntst0 scope link/);
    assert.match(
      ipIn(podName, ["neigh", "show", "dev", "eth0"]),
      /10\.99\.0\.1 lladdr 02:00:00:00:aa:01 PERMANENT/,
    );
    assert.match(ipIn(hostName, ["link", "show", "skntst0"]), /mtu 1380/);

    const ping = run("nsenter", [
      `--net=${netnsPath(podName)}`,
      "--",
      "ping",
      "-c",
      "1",
      "-W",
      "2",
      "10.99.0.1",
    ]);
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
  });

  it("refuses with typed errors that keep the errno, name the object and carry the kernel's words", function () {
    const [h, p] = [hnl!, pnl!];
    const pl = p.link("eth0");
    assert.ok(pl !== undefined);
    assert.throws(
      () => {
        h.createVeth({ name: "skntst0" }, { name: "x", netnsFd: pod!.fd });
      },
      (err: unknown) =>
        err instanceof NetlinkError &&
        err instanceof SysError &&
        err.errno === 17 &&
        err.code === "EEXIST" &&
        err.object === "skntst0" &&
        /^create veth on skntst0: EEXIST/.test(err.message),
    );
    assert.throws(
      () => {
        p.addAddress(pl.ifindex, "eth0", "10.99.0.2", 32);
      },
      (err: unknown) =>
        err instanceof NetlinkError && err.code === "EEXIST" && err.kernelMessage !== undefined,
    );
    assert.throws(
      () => {
        p.addRoute({ dst: "10.98.0.1", dstLen: 8, oif: pl.ifindex, scope: 253 }, "eth0");
      },
      (err: unknown) =>
        err instanceof NetlinkError &&
        err.code === "EINVAL" &&
        /add route 10\.98\.0\.1\/8 on eth0/.test(err.message),
    );
    assert.throws(
      () => {
        p.setLink(99999, "nosuch", { up: true });
      },
      (err: unknown) => err instanceof NetlinkError && err.code === "ENODEV",
    );
    assert.equal(h.link("nosuch0"), undefined);
  });

  it("moves a link into another namespace", function () {
    const h = hnl!;
    h.createVeth({ name: "skntst1" }, { name: "skntst1p" });
    const moved = h.link("skntst1p");
    assert.ok(moved !== undefined);
    h.moveLink(moved.ifindex, "skntst1p", pod!.fd);
    assert.equal(h.link("skntst1p"), undefined);
    assert.ok(pnl!.link("skntst1p") !== undefined);
    assert.match(ipIn(podName, ["link", "show", "skntst1p"]), /skntst1p@/);
    assert.equal(h.deleteLink("skntst1"), true);
    assert.equal(pnl!.link("skntst1p"), undefined, "the moved peer went with its pair");
  });

  it("deletes a veth and its peer; deleting again is false, not an error", function () {
    const h = hnl!;
    assert.equal(h.deleteLink("skntst0"), true);
    assert.equal(h.deleteLink("skntst0"), false);
    assert.equal(pnl!.link("eth0"), undefined);
    assert.deepEqual(
      pnl!.links().map((l) => l.name),
      ["lo"],
    );
    assert.deepEqual(h.routes(), []);
  });

  it("deletes a link on a worker thread while the caller goes on", async function () {
    const h = hnl!;
    h.createVeth({ name: "skntst2" }, { name: "skntst2p", netnsFd: pod!.fd });
    const other = Rtnetlink.openIn(host!);
    try {
      const deleting = other.deleteLinkOnWorker("skntst2");
      assert.ok(h.links().length >= 1, "the caller's own socket works meanwhile");
      assert.equal(await deleting, true);
      assert.equal(await other.deleteLinkOnWorker("skntst2"), false);
    } finally {
      other.close();
    }
    assert.equal(h.link("skntst2"), undefined);
    assert.equal(pnl!.link("skntst2p"), undefined);
  });

  it("inNetns returns the thread to its namespace, also when the function throws", function () {
    const home = threadNetns();
    const inside = inNetns(pod!, threadNetns);
    assert.notEqual(inside, home);
    assert.equal(threadNetns(), home);
    assert.throws(
      () =>
        inNetns(pod!, () => {
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.equal(threadNetns(), home);
    assert.throws(
      () => Netns.open("/var/run/netns/skn-no-such-netns"),
      (err: unknown) => err instanceof SysError && err.code === "ENOENT",
    );
  });
});
