/**
 * C and TypeScript cannot drift apart silently: every codec's field table is compared with the BTF
 * of the built object, every map's key and value sizes with what libbpf reads from the ELF, and the
 * enums mirrored in TypeScript with their C definitions.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { ObjectSpec } from "../../loader/index.js";
import type { Layout, MapCodec } from "../../maps/codec.js";
import { configCodec } from "../../maps/config.js";
import { conntrackCodec } from "../../maps/conntrack.js";
import { decisionCodec } from "../../maps/decision.js";
import { endpointsCodec } from "../../maps/endpoints.js";
import { eventLayout } from "../../maps/events.js";
import { Identity } from "../../maps/identities.js";
import { ipcacheCodec } from "../../maps/ipcache.js";
import { lbAffinityCodec } from "../../maps/lb-affinity.js";
import { lbBackendCodec } from "../../maps/lb-backend.js";
import { lbFlowCodec } from "../../maps/lb-flow.js";
import { lbMaglevCodec } from "../../maps/lb-maglev.js";
import { lbRevnatCodec } from "../../maps/lb-revnat.js";
import { lbSlotCodec } from "../../maps/lb-slot.js";
import { lbSvcCodec } from "../../maps/lb-svc.js";
import { METRICS_ENTRIES, REASONS, metricsValueLayout } from "../../maps/metrics.js";
import { PINNED_MAPS, PROGRAM_NAMES, defaultObjectPath } from "../../maps/pins.js";
import { policyCodec } from "../../maps/policy.js";
import { settingsLayout } from "../../maps/settings.js";

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
}

const object = defaultObjectPath();
const btf = (
  JSON.parse(execFileSync("bpftool", ["btf", "dump", "file", object, "-j"], { encoding: "utf8" })) as {
    types: BtfType[];
  }
).types;
const byId = new Map(btf.map((t) => [t.id, t]));

function sizeOf(id: number): number {
  const t = byId.get(id);
  if (t === undefined) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case "INT":
    case "STRUCT":
    case "UNION":
    case "ENUM":
      return t.size ?? 0;
    case "TYPEDEF":
    case "VOLATILE":
    case "CONST":
      return sizeOf(t.type_id ?? 0);
    case "ARRAY":
      return sizeOf(t.type_id ?? 0) * (t.nr_elems ?? 0);
    default:
      throw new Error(`no size for BTF kind ${t.kind}`);
  }
}

function checkLayout(layout: Layout): void {
  if (layout.cName === "__u32") {
    assert.equal(layout.size, 4);
    return;
  }
  const struct = btf.find((t) => t.kind === "STRUCT" && t.name === layout.cName);
  assert.ok(struct !== undefined, `struct ${layout.cName} is not in the object's BTF`);
  assert.equal(layout.size, struct.size, `${layout.cName}: size`);
  const members = struct.members ?? [];
  assert.deepEqual(
    layout.fields.map((f) => f.name),
    members.map((m) => m.name),
    `${layout.cName}: the codec's fields and the C struct's members differ`,
  );
  for (const m of members) {
    const f = layout.fields.find((x) => x.name === m.name)!;
    assert.equal(f.offset * 8, m.bits_offset, `${layout.cName}.${m.name}: offset`);
    assert.equal(f.size, sizeOf(m.type_id), `${layout.cName}.${m.name}: size`);
  }
}

const codecs: MapCodec<unknown, unknown>[] = [
  endpointsCodec,
  ipcacheCodec,
  policyCodec,
  conntrackCodec,
  configCodec,
  decisionCodec,
  lbSvcCodec,
  lbSlotCodec,
  lbBackendCodec,
  lbRevnatCodec,
  lbAffinityCodec,
  lbMaglevCodec,
  lbFlowCodec,
] as MapCodec<unknown, unknown>[];

describe("maps: codecs match the object's BTF", function () {
  for (const c of codecs) {
    it(`${c.name}: key ${c.key.layout.cName} and value ${c.value.layout.cName}`, function () {
      checkLayout(c.key.layout);
      checkLayout(c.value.layout);
    });
  }

  it("Service map types and sizes (bpf/maps/lb-*.h)", function () {
    using spec = ObjectSpec.open(object);
    const maps = new Map(spec.maps.map((m) => [m.name, m]));
    const hash = 1;
    const lruHash = 9;
    for (const [name, type] of [
      ["skn_lb_svc", hash],
      ["skn_lb_slot", hash],
      ["skn_lb_backend", hash],
      ["skn_lb_revnat", hash],
      ["skn_lb_maglev", hash],
      ["skn_lb_affinity", lruHash],
      ["skn_lb_flow", lruHash],
    ] as const) {
      assert.equal(maps.get(name)?.type, type, `${name} type`);
      assert.ok(name.length <= 15, `${name}: at most 15 characters`);
    }
    assert.equal(maps.get("skn_lb_maglev")?.valueSize, 4 * 251, "M = 251");
  });

  it("skn_metrics value, skn_event and skn_settings", function () {
    checkLayout(metricsValueLayout);
    checkLayout(eventLayout);
    checkLayout(settingsLayout);
  });

  it("skn_settings is the only variable in .rodata, at offset 0", function () {
    const sec = btf.find((t) => t.kind === "DATASEC" && t.name === ".rodata");
    assert.ok(sec?.vars !== undefined);
    assert.equal(sec.vars.length, 1);
    assert.equal(sec.vars[0]?.offset, 0);
    assert.equal(byId.get(sec.vars[0].type_id)?.name, "skn_settings");
  });

  it("every map's key and value sizes in the ELF equal its codec's", function () {
    using spec = ObjectSpec.open(object);
    const maps = new Map(spec.maps.map((m) => [m.name, m]));
    for (const c of codecs) {
      const m = maps.get(c.name);
      assert.ok(m !== undefined, `map ${c.name} missing from the object`);
      assert.equal(m.keySize, c.key.layout.size, `${c.name} key`);
      assert.equal(m.valueSize, c.value.layout.size, `${c.name} value`);
    }
    assert.equal(maps.get("skn_metrics")?.valueSize, metricsValueLayout.size);
    assert.equal(maps.get("skn_metrics")?.maxEntries, METRICS_ENTRIES);
    for (const name of PINNED_MAPS) assert.ok(maps.has(name), `pinned map ${name} exists`);
    assert.deepEqual([...spec.programNames].sort(), [...PROGRAM_NAMES].sort());
  });
});

describe("maps: enums mirrored from C", function () {
  const source = (p: string) => readFileSync(new URL(`../../../bpf/${p}`, import.meta.url), "utf8");

  it("verdict reasons equal enum skn_reason, in order", function () {
    const names = [...source("lib/drop.h").matchAll(/SKN_R_([A-Z_]+) = (\d+)/g)].filter(
      (m) => m[1] !== "MAX",
    );
    assert.deepEqual(
      names.map((m) => Number(m[2])),
      names.map((_m, i) => i),
      "C values are dense from 0",
    );
    assert.deepEqual(
      names.map((m) => m[1]!.toLowerCase()),
      [...REASONS],
    );
  });

  it("reserved identities equal enum skn_identity", function () {
    const c = source("lib/common.h");
    const value = (name: string) => Number(new RegExp(`SKN_ID_${name} = (0x[0-9a-f]+|\\d+)`).exec(c)?.[1]);
    assert.equal(value("ANY"), Identity.any);
    assert.equal(value("HOST"), Identity.host);
    assert.equal(value("WORLD"), Identity.world);
    assert.equal(value("REMOTE_NODE"), Identity.remoteNode);
    assert.equal(value("UNMANAGED"), Identity.unmanaged);
    assert.equal(value("FIRST_POD"), Identity.firstPod);
    assert.equal(value("FIRST_CIDR"), Identity.firstCidr);
    assert.equal(value("MAX"), Identity.lastCidr);
  });
});
