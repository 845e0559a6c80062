import assert from "node:assert/strict";
import { LbMapsWriter, type LbMapPorts } from "../../maps/lb-apply.js";
import { lbBackendKeyString } from "../../maps/lb-backend.js";
import { lbMaglevKeyString } from "../../maps/lb-maglev.js";
import { lbRevnatKeyString } from "../../maps/lb-revnat.js";
import { lbSlotKeyString } from "../../maps/lb-slot.js";
import { lbSvcKeyString } from "../../maps/lb-svc.js";
import { FakeMapPort } from "../../maps/reconciler.js";
import type { LbBackendEntry } from "../../maps/lb-backend.js";
import type { LbMaglevEntry } from "../../maps/lb-maglev.js";
import type { LbRevnatEntry } from "../../maps/lb-revnat.js";
import type { LbSlotEntry, LbSlotKey } from "../../maps/lb-slot.js";
import type { LbSvcEntry, LbSvcKey } from "../../maps/lb-svc.js";
import { LbIdAllocator, buildLb, type LbInputs } from "../../policy/lb-builder.js";

function fakes() {
  return {
    svc: new FakeMapPort<LbSvcKey, LbSvcEntry>(lbSvcKeyString),
    slot: new FakeMapPort<LbSlotKey, LbSlotEntry>(lbSlotKeyString),
    backend: new FakeMapPort<number, LbBackendEntry>(lbBackendKeyString),
    revnat: new FakeMapPort<number, LbRevnatEntry>(lbRevnatKeyString),
    maglev: new FakeMapPort<number, LbMaglevEntry>(lbMaglevKeyString),
  };
}

const inputs = (eps: string[]): LbInputs => ({
  node: { nodeName: "n1", nodeAddresses: ["192.168.1.1"] },
  services: [
    {
      namespace: "d",
      name: "web",
      type: "NodePort",
      clusterIPs: ["10.96.0.5"],
      ports: [{ name: "", port: 80, protocol: "TCP", nodePort: 30001 }],
    },
  ],
  endpointSlices: [
    {
      namespace: "d",
      serviceName: "web",
      endpoints: eps.map((a) => ({ addresses: [a] })),
      ports: [{ port: 8080 }],
    },
  ],
});

describe("maps: LbMapsWriter (Service maps by diff, in a safe order)", function () {
  it("writes a build, then only the difference; never a frontend whose slots are missing", function () {
    const f = fakes();
    const order: string[] = [];
    const ports: LbMapPorts = {
      svc: wrap(f.svc, "svc", order),
      slot: wrap(f.slot, "slot", order),
      backend: wrap(f.backend, "backend", order),
      revnat: wrap(f.revnat, "revnat", order),
      maglev: wrap(f.maglev, "maglev", order),
    };
    const w = new LbMapsWriter(ports);
    w.resync();
    const alloc = new LbIdAllocator();
    const r1 = w.apply(buildLb(inputs(["10.244.1.1", "10.244.1.2"]), alloc));
    assert.equal(r1.svc.upserted, 2);
    assert.equal(r1.slot.upserted, 4);
    assert.equal(r1.backend.upserted, 2);
    assert.equal(r1.maglev.upserted, 1);
    assert.ok(order.indexOf("set svc") > order.lastIndexOf("set slot"), "frontends after their slots");
    assert.ok(order.indexOf("set slot") > order.lastIndexOf("set backend"), "slots after backends");
    order.length = 0;
    const r2 = w.apply(buildLb(inputs(["10.244.1.2"]), alloc));
    assert.equal(r2.backend.deleted, 1);
    assert.equal(r2.slot.deleted, 2);
    assert.equal(r2.svc.upserted, 2, "counts 2 → 1");
    assert.ok(
      order.indexOf("delete backend") > order.lastIndexOf("set svc"),
      "a backend goes after the frontends stop naming it",
    );
    const r3 = w.apply(buildLb(inputs(["10.244.1.2"]), alloc));
    for (const r of Object.values(r3))
      assert.equal(r.upserted + r.deleted, 0, "nothing changed, nothing written");
    assert.equal(f.svc.entriesByKey.size, 2);
  });
});

function wrap<K, V>(p: FakeMapPort<K, V>, name: string, order: string[]) {
  return {
    entries: () => p.entries(),
    set: (k: K, v: V) => {
      order.push(`set ${name}`);
      p.set(k, v);
    },
    delete: (k: K) => {
      order.push(`delete ${name}`);
      return p.delete(k);
    },
    maxEntries: p.maxEntries,
  };
}
