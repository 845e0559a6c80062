import assert from "node:assert/strict";
import fc from "fast-check";
import { LbBackendFlag } from "../../maps/lb-backend.js";
import { MAGLEV_M } from "../../maps/lb-maglev.js";
import { LbSvcFlag, lbSvcKeyString } from "../../maps/lb-svc.js";
import {
  LbIdAllocator,
  buildLb,
  maglevTable,
  type EndpointSliceView,
  type LbInputs,
  type ServiceView,
} from "../../policy/lb-builder.js";

const node = { nodeName: "n1", nodeAddresses: ["192.168.50.10"] };

function svc(over: Partial<ServiceView> = {}): ServiceView {
  return {
    namespace: "default",
    name: "web",
    type: "ClusterIP",
    clusterIPs: ["10.96.0.20"],
    ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "web" }],
    ...over,
  };
}

function slice(
  endpoints: EndpointSliceView["endpoints"],
  over: Partial<EndpointSliceView> = {},
): EndpointSliceView {
  return {
    namespace: "default",
    serviceName: "web",
    addressType: "IPv4",
    endpoints,
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    ...over,
  };
}

const key = (addr: string, port: number, proto: 6 | 17 | 132 = 6): string =>
  lbSvcKeyString({ addr, port, proto });

function backendsOf(d: ReturnType<typeof buildLb>, k: string): string[] {
  const s = d.svc.get(k)!.entry;
  return Array.from({ length: s.count }, (_v, i) => {
    const b = d.slot.get(`${s.svcId}#${i}`)!.entry.backendId;
    const e = d.backend.get(String(b))!.entry;
    return `${e.addr}:${e.port}`;
  });
}

describe("policy: Service map builder (lb-builder)", function () {
  it("a ClusterIP frontend, ready backends with the slice's port (targetPort resolved by name), local first", function () {
    const d = buildLb(
      {
        node,
        services: [svc()],
        endpointSlices: [
          slice([
            { addresses: ["10.244.1.5"], ready: true, nodeName: "n2" },
            { addresses: ["10.244.0.7"], ready: true, nodeName: "n1" },
            { addresses: ["10.244.1.9"], ready: false, nodeName: "n2" },
          ]),
        ],
      },
      new LbIdAllocator(),
    );
    const fe = d.svc.get(key("10.96.0.20", 80))!.entry;
    assert.equal(fe.count, 2);
    assert.equal(fe.localCount, 1);
    assert.equal(fe.flags, 0);
    assert.deepEqual(backendsOf(d, key("10.96.0.20", 80)), ["10.244.0.7:8080", "10.244.1.5:8080"]);
    assert.deepEqual(d.revnat.get(String(fe.svcId))!.entry, { addr: "10.96.0.20", port: 80, proto: 6 });
    const local = [...d.backend.values()].find((b) => b.entry.addr === "10.244.0.7")!;
    assert.equal(local.entry.flags, LbBackendFlag.local);
    assert.equal(d.maglev.size, 0, "no Maglev table for a ClusterIP");
    assert.deepEqual(d.problems, []);
  });

  it("terminating serving endpoints only when none is ready; no endpoint: count 0 (reject)", function () {
    const alloc = new LbIdAllocator();
    const term = [
      { addresses: ["10.244.1.5"], ready: false, serving: true, terminating: true, nodeName: "n2" },
      { addresses: ["10.244.1.6"], ready: false, serving: false, terminating: true, nodeName: "n2" },
    ];
    let d = buildLb({ node, services: [svc()], endpointSlices: [slice(term)] }, alloc);
    assert.deepEqual(backendsOf(d, key("10.96.0.20", 80)), ["10.244.1.5:8080"]);
    assert.equal([...d.backend.values()][0]!.entry.flags, LbBackendFlag.terminating);
    d = buildLb(
      {
        node,
        services: [svc()],
        endpointSlices: [slice([...term, { addresses: ["10.244.2.2"], nodeName: "n3" }])],
      },
      alloc,
    );
    assert.deepEqual(
      backendsOf(d, key("10.96.0.20", 80)),
      ["10.244.2.2:8080"],
      "ready unset counts as ready",
    );
    const draining = [...d.backend.values()].filter((b) => b.entry.flags & LbBackendFlag.terminating);
    assert.deepEqual(
      draining.map((b) => b.entry.addr).sort(),
      ["10.244.1.5", "10.244.1.6"],
      "terminating endpoints stay as backends (no slot) so their connections drain",
    );
    d = buildLb({ node, services: [svc()], endpointSlices: [] }, alloc);
    assert.equal(d.svc.get(key("10.96.0.20", 80))!.entry.count, 0);
    assert.equal(d.slot.size, 0);
    assert.equal(d.backend.size, 0);
  });

  it("NodePort, externalIPs, LoadBalancer ingress: consistent frontends with a Maglev table; Local policies", function () {
    const d = buildLb(
      {
        node,
        services: [
          svc({
            type: "LoadBalancer",
            ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: 30080 }],
            externalIPs: ["203.0.113.5"],
            loadBalancerIPs: ["198.51.100.7"],
            externalTrafficPolicy: "Local",
            internalTrafficPolicy: "Local",
            sessionAffinity: "ClientIP",
            affinityTimeoutS: 60,
          }),
        ],
        endpointSlices: [
          slice([
            { addresses: ["10.244.1.5"], nodeName: "n2" },
            { addresses: ["10.244.0.7"], nodeName: "n1" },
          ]),
        ],
      },
      new LbIdAllocator(),
    );
    const np = d.svc.get(key("192.168.50.10", 30080))!.entry;
    assert.equal(
      np.flags,
      LbSvcFlag.affinity | LbSvcFlag.consistent | LbSvcFlag.nodePort | LbSvcFlag.extLocal,
    );
    assert.equal(np.affinityTimeoutS, 60);
    assert.deepEqual(
      backendsOf(d, key("192.168.50.10", 30080)),
      ["10.244.0.7:8080"],
      "Local: this node's only",
    );
    const ci = d.svc.get(key("10.96.0.20", 80))!.entry;
    assert.equal(ci.flags, LbSvcFlag.affinity | LbSvcFlag.intLocal);
    assert.equal(ci.count, 1);
    for (const k of [key("203.0.113.5", 80), key("198.51.100.7", 80)]) {
      const e = d.svc.get(k)!.entry;
      assert.equal(
        e.flags & (LbSvcFlag.external | LbSvcFlag.consistent),
        LbSvcFlag.external | LbSvcFlag.consistent,
      );
      assert.equal(d.maglev.get(String(e.svcId))!.entry.length, MAGLEV_M);
    }
    assert.equal(d.maglev.size, 3);
  });

  it("UDP and SCTP ports; SCTP backends on another port are left out with a problem", function () {
    const d = buildLb(
      {
        node,
        services: [
          svc({
            ports: [
              { name: "dns", port: 53, protocol: "UDP" },
              { name: "s", port: 9000, protocol: "SCTP" },
            ],
          }),
        ],
        endpointSlices: [
          slice([{ addresses: ["10.244.1.5"] }], {
            ports: [
              { name: "dns", port: 5353, protocol: "UDP" },
              { name: "s", port: 9001, protocol: "SCTP" },
            ],
          }),
        ],
      },
      new LbIdAllocator(),
    );
    assert.deepEqual(backendsOf(d, key("10.96.0.20", 53, 17)), ["10.244.1.5:5353"]);
    assert.equal(d.svc.get(key("10.96.0.20", 9000, 132))!.entry.count, 0);
    assert.match(d.problems.join("\n"), /SCTP/);
  });

  it("bad input is left out with a clear problem, never thrown", function () {
    const d = buildLb(
      {
        node,
        services: [
          svc({ clusterIPs: ["None"] }),
          svc({ name: "other", clusterIPs: ["10.96.0.20"] }),
          svc({ name: "ext", type: "ExternalName" }),
          svc({ name: "badport", clusterIPs: ["10.96.0.30"], ports: [{ port: 0 }] }),
          svc({ name: "v6", clusterIPs: ["fd00::1"] }),
        ],
        endpointSlices: [],
      },
      new LbIdAllocator(),
    );
    assert.deepEqual([...d.svc.keys()], [key("10.96.0.20", 80)], "only other's ClusterIP");
    assert.match(d.problems.join("\n"), /badport/);
    const dup = buildLb(
      {
        node,
        services: [
          svc({ externalIPs: ["1.2.3.4"] }),
          svc({ name: "b", clusterIPs: [], externalIPs: ["1.2.3.4"] }),
        ],
        endpointSlices: [],
      },
      new LbIdAllocator(),
    );
    assert.match(
      dup.problems.join("\n"),
      /default\/web: ExternalIP 1\.2\.3\.4:80\/6 is already default\/b.s: left out/,
    );
  });

  it("ids are stable across rebuilds, not reused after release, and adopted from the maps", function () {
    const alloc = new LbIdAllocator();
    const one = (eps: string[]): LbInputs => ({
      node,
      services: [svc(), svc({ name: "db", clusterIPs: ["10.96.0.21"] })],
      endpointSlices: [slice(eps.map((a) => ({ addresses: [a] })))],
    });
    const a = buildLb(one(["10.244.1.1", "10.244.1.2"]), alloc);
    const b = buildLb(one(["10.244.1.2", "10.244.1.3"]), alloc);
    const idOf = (d: ReturnType<typeof buildLb>, addr: string) =>
      [...d.backend.values()].find((x) => x.entry.addr === addr)?.key;
    assert.equal(
      a.svc.get(key("10.96.0.20", 80))!.entry.svcId,
      b.svc.get(key("10.96.0.20", 80))!.entry.svcId,
    );
    assert.equal(idOf(a, "10.244.1.2"), idOf(b, "10.244.1.2"));
    assert.notEqual(idOf(b, "10.244.1.3"), idOf(a, "10.244.1.1"), "a released id is not handed out again");
    const fresh = new LbIdAllocator();
    fresh.adopt(
      [...b.svc.values()].map((x) => [x.key, x.entry] as const),
      [...b.backend.values()].map((x) => [x.key, x.entry] as const),
    );
    const c = buildLb(one(["10.244.1.2", "10.244.1.3"]), fresh);
    assert.deepEqual([...c.svc.entries()], [...b.svc.entries()]);
    assert.deepEqual([...c.backend.entries()], [...b.backend.entries()]);
  });

  it("Maglev: every slot filled, near-even shares, independent of input order; small disruption", function () {
    const backs = Array.from({ length: 5 }, (_v, i) => ({ name: `10.244.1.${i + 1}:80`, id: i + 1 }));
    const t = maglevTable(backs);
    assert.equal(t.length, MAGLEV_M);
    assert.ok(t.every((x) => x >= 1 && x <= 5));
    const share = [1, 2, 3, 4, 5].map((id) => t.filter((x) => x === id).length);
    assert.ok(Math.max(...share) - Math.min(...share) <= 1, `shares ${share.join(",")}`);
    assert.deepEqual(maglevTable([...backs].reverse()), t);
    const without = maglevTable(backs.filter((b) => b.id !== 3));
    const moved = t.filter((x, i) => x !== 3 && without[i] !== x).length;
    assert.ok(moved < MAGLEV_M * 0.1, `${moved} slots of surviving backends moved`);
  });

  describe("properties", function () {
    const ipArb = fc
      .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 30 }))
      .map(([c, d]) => `10.244.${c}.${d}`);
    // A pod address lives in one node's pod CIDR: the same address never reports two nodes.
    const nodeOf = (addr: string) => `n${(Number(addr.split(".")[2]) % 3) + 1}`;
    const epArb = fc
      .record(
        {
          addresses: fc.tuple(ipArb).map((x) => [...x]),
          ready: fc.boolean(),
          serving: fc.boolean(),
          terminating: fc.boolean(),
        },
        { requiredKeys: ["addresses"] },
      )
      .map((ep) => ({ ...ep, nodeName: nodeOf(ep.addresses[0] ?? "") }));
    const inputArb = fc.record({
      services: fc.array(
        fc.record({
          n: fc.integer({ min: 0, max: 5 }),
          ip: fc.integer({ min: 1, max: 8 }),
          np: fc.option(fc.integer({ min: 30000, max: 30010 }), { nil: undefined }),
          affinity: fc.boolean(),
          itp: fc.constantFrom<"Cluster" | "Local">("Cluster", "Local"),
          etp: fc.constantFrom<"Cluster" | "Local">("Cluster", "Local"),
        }),
        { maxLength: 6 },
      ),
      slices: fc.array(
        fc.record({ n: fc.integer({ min: 0, max: 5 }), eps: fc.array(epArb, { maxLength: 6 }) }),
        {
          maxLength: 6,
        },
      ),
    });
    type Gen = typeof inputArb extends fc.Arbitrary<infer T> ? T : never;
    const toInputs = (x: Gen): LbInputs => ({
      node,
      services: x.services.map((s) =>
        svc({
          name: `s${s.n}`,
          type: s.np === undefined ? "ClusterIP" : "NodePort",
          clusterIPs: [`10.96.0.${s.ip}`],
          ports: [
            { name: "http", port: 80, protocol: "TCP", ...(s.np === undefined ? {} : { nodePort: s.np }) },
          ],
          sessionAffinity: s.affinity ? "ClientIP" : "None",
          internalTrafficPolicy: s.itp,
          externalTrafficPolicy: s.etp,
        }),
      ),
      endpointSlices: x.slices.map((s) => slice(s.eps, { serviceName: `s${s.n}` })),
    });

    it("every reference resolves: slots → backends, frontends → revnat and (consistent) Maglev; local slots first; ids unique", function () {
      fc.assert(
        fc.property(inputArb, (x) => {
          const d = buildLb(toInputs(x), new LbIdAllocator());
          const ids = new Set<number>();
          for (const { key: k, entry: e } of d.svc.values()) {
            assert.ok(!ids.has(e.svcId) && e.svcId > 0);
            ids.add(e.svcId);
            assert.ok(e.localCount <= e.count);
            assert.deepEqual(d.revnat.get(String(e.svcId))?.entry, {
              addr: k.addr,
              port: k.port,
              proto: k.proto,
            });
            for (let i = 0; i < e.count; i++) {
              const b = d.slot.get(`${e.svcId}#${i}`);
              assert.ok(b !== undefined, "slot exists");
              const be = d.backend.get(String(b.entry.backendId));
              assert.ok(be !== undefined, "backend exists");
              assert.equal((be.entry.flags & LbBackendFlag.local) !== 0, i < e.localCount, "local first");
            }
            assert.equal(d.slot.has(`${e.svcId}#${e.count}`), false);
            const local = (e.flags & (LbSvcFlag.intLocal | LbSvcFlag.extLocal)) !== 0;
            if (local) assert.equal(e.localCount, e.count);
            const mg = d.maglev.get(String(e.svcId));
            if ((e.flags & LbSvcFlag.consistent) !== 0 && e.count > 0) {
              assert.ok(mg !== undefined);
              const inSlots = new Set(
                Array.from({ length: e.count }, (_v, i) => d.slot.get(`${e.svcId}#${i}`)!.entry.backendId),
              );
              assert.ok(mg.entry.every((id) => inSlots.has(id)));
            } else assert.equal(mg, undefined);
          }
          assert.equal(
            d.slot.size,
            [...d.svc.values()].reduce((n, s) => n + s.entry.count, 0),
          );
        }),
      );
    });

    it("a rebuild of the same inputs is identical (the agent's diff is empty); order of inputs does not matter", function () {
      fc.assert(
        fc.property(inputArb, (x) => {
          const alloc = new LbIdAllocator();
          const inputs = toInputs(x);
          const a = buildLb(inputs, alloc);
          const b = buildLb({ ...inputs, endpointSlices: [...inputs.endpointSlices].reverse() }, alloc);
          assert.deepEqual([...b.svc.entries()].sort(), [...a.svc.entries()].sort());
          assert.deepEqual([...b.slot.entries()].sort(), [...a.slot.entries()].sort());
          assert.deepEqual([...b.maglev.entries()].sort(), [...a.maglev.entries()].sort());
        }),
      );
    });

    it("the Maglev table of a backend set is the same on every node (from addresses only)", function () {
      fc.assert(
        fc.property(fc.uniqueArray(ipArb, { minLength: 1, maxLength: 8 }), (addrs) => {
          const t1 = maglevTable(addrs.map((a, i) => ({ name: a, id: i + 1 })));
          const perm = [...addrs].reverse();
          const t2 = maglevTable(perm.map((a) => ({ name: a, id: addrs.indexOf(a) + 1 })));
          assert.deepEqual(t1, t2);
          assert.equal(new Set(t1).size, addrs.length, "every backend owns slots");
        }),
      );
    });
  });
});
