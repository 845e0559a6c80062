/**
 * A lab node inspected with bpftool alone, as an operator without skeinctl would: every pinned map
 * dumps with named fields (BTF), the ring buffer shows (it cannot be dumped, and its record type is
 * in the programs' BTF), the programs show under their stable names, and `bpftool net show` in the
 * node's namespace lists them on the pod veths and the overlay device.
 */
import assert from "node:assert/strict";
import { hooksIn } from "../helpers/hooks.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { LabPod } from "../../lab/lab.js";
import { PINNED_MAPS, PROGRAM_NAMES, pinPath } from "../../maps/pins.js";
import { eventually, useLab } from "../helpers/lab.js";
import { hookKind } from "../helpers/tcx.js";

const exec = promisify(execFile);

async function bpftoolJson<T>(args: readonly string[], netns?: string): Promise<T> {
  const [file, argv] =
    netns === undefined
      ? ["bpftool", [...args, "-j"]]
      : ["nsenter", [`--net=/var/run/netns/${netns}`, "bpftool", ...args, "-j"]];
  const { stdout } = await exec(file, argv, { maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as T;
}

interface DumpEntry {
  formatted: {
    key: Record<string, unknown>;
    value?: Record<string, unknown>;
    values?: { cpu: number; value: Record<string, unknown> }[];
  };
}

/** An IPv4 address as bpftool prints a `__u32 *_be` field: its network-order bytes read as a little-endian u32. */
function beField(ip: string): number {
  return Buffer.from(ip.split(".").map(Number)).readUInt32LE(0);
}

function keysOf(o: Record<string, unknown> | undefined): string[] {
  return Object.keys(o ?? {});
}

describe("bpftool on a lab node: BTF-named fields, stable names", function () {
  this.timeout(120000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;
  const n1 = () => fx.nodes[0]!;
  const n2 = () => fx.nodes[1]!;
  const dump = (map: string) =>
    bpftoolJson<DumpEntry[]>([
      "map",
      "dump",
      "pinned",
      pinPath(n1().bpffsRoot, map as (typeof PINNED_MAPS)[number]),
    ]);

  before(async function () {
    this.timeout(60000);
    a = await fx.lab.addPod({ namespace: "bt", name: "a", node: n1(), labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "bt", name: "b", node: n2(), labels: { app: "b" } });
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "a-from-b", namespace: "bt" },
      spec: {
        podSelector: { matchLabels: { app: "a" } },
        policyTypes: ["Ingress"],
        ingress: [{ ports: [{ protocol: "TCP", port: 8080 }] }],
      },
    });
    await eventually("a's policy is programmed", async () => (await dump("skn_policy")).length > 0, 20000);
    await eventually(
      "b reaches a on 8080",
      async () => (await fx.lab.probe(b, "TCP", a.ip, 8080, 300)).ok,
      20000,
    );
  });

  it("skn_endpoints: key ip_be, value ifindex/flags/mac/host_mac", async function () {
    const entries = await dump("skn_endpoints");
    assert.equal(entries.length, 1);
    const e = entries[0]!.formatted;
    assert.deepEqual(keysOf(e.key), ["ip_be"]);
    assert.equal(e.key.ip_be, beField(a.ip));
    assert.deepEqual(keysOf(e.value), ["ifindex", "flags", "mac", "host_mac"]);
    assert.equal((e.value!.mac as number[]).length, 6);
  });

  it("skn_ipcache: key prefixlen/ip_be, value identity/tunnel_ip_be/cidr_identity/flags; the remote pod CIDR tunnels to its node", async function () {
    const entries = (await dump("skn_ipcache")).map((x) => x.formatted);
    for (const e of entries) {
      assert.deepEqual(keysOf(e.key), ["prefixlen", "ip_be"]);
      assert.deepEqual(keysOf(e.value), ["identity", "tunnel_ip_be", "cidr_identity", "flags"]);
    }
    const [cidrIp, len] = n2().podCidr.split("/");
    const remote = entries.find((e) => e.key.prefixlen === Number(len) && e.key.ip_be === beField(cidrIp!));
    assert.ok(remote !== undefined, JSON.stringify(entries));
    assert.equal(remote.value!.tunnel_ip_be, beField(n2().ip));
    assert.equal(remote.value!.identity, 4, "unmanaged");
  });

  it("skn_policy: key prefixlen/endpoint_ip_be/peer_identity/dir/proto/dport_be, value rule_id/flags", async function () {
    const entries = (await dump("skn_policy")).map((x) => x.formatted);
    assert.ok(entries.length > 0);
    for (const e of entries) {
      assert.deepEqual(keysOf(e.key), [
        "prefixlen",
        "endpoint_ip_be",
        "peer_identity",
        "dir",
        "proto",
        "dport_be",
      ]);
      assert.deepEqual(keysOf(e.value), ["rule_id", "flags"]);
    }
    const e = entries.find((x) => x.key.endpoint_ip_be === beField(a.ip));
    assert.ok(e !== undefined);
    assert.equal(e.key.proto, 6);
    assert.equal(
      e.key.dport_be,
      Buffer.from([8080 >> 8, 8080 & 255]).readUInt16LE(0),
      "port 8080 in network order",
    );
    assert.ok((e.value!.rule_id as number) > 0);
  });

  it("skn_conntrack2: key addr_a_be/addr_b_be/port_a_be/port_b_be/proto, value timestamps, identities, flags, rule_id, tunnel", async function () {
    const entries = (await dump("skn_conntrack2")).map((x) => x.formatted);
    assert.ok(entries.length > 0);
    for (const e of entries) {
      assert.deepEqual(keysOf(e.key), ["addr_a_be", "addr_b_be", "port_a_be", "port_b_be", "proto", "_pad"]);
      assert.deepEqual(keysOf(e.value), [
        "created_ns",
        "last_seen_ns",
        "identity_a",
        "identity_b",
        "flags",
        "rule_id",
        "tunnel_ip_be",
        "lb_svc_id",
      ]);
    }
    const ends = new Set([beField(a.ip), beField(b.ip)]);
    assert.ok(
      entries.some(
        (e) =>
          e.key.proto === 6 && ends.has(e.key.addr_a_be as number) && ends.has(e.key.addr_b_be as number),
      ),
      "b → a's flow",
    );
  });

  it("skn_metrics: per-CPU values with packets/bytes", async function () {
    const entries = await dump("skn_metrics");
    assert.equal(entries.length, 64);
    const e = entries[0]!.formatted;
    assert.equal(typeof (e.key as unknown), "number", "the key is a plain __u32");
    assert.ok(e.values !== undefined && e.values.length > 0);
    for (const v of e.values) assert.deepEqual(keysOf(v.value), ["packets", "bytes"]);
  });

  it("skn_config: vxlan_ifindex/node_ip_be/vxlan_mac/vxlan_port_be/flags/uplink_ifindex", async function () {
    const [c] = await dump("skn_config");
    assert.deepEqual(keysOf(c!.formatted.value), [
      "vxlan_ifindex",
      "node_ip_be",
      "vxlan_mac",
      "vxlan_port_be",
      "flags",
      "uplink_ifindex",
    ]);
    assert.equal(c!.formatted.value!.node_ip_be, beField(n1().ip));
  });

  it("skn_events: a ring buffer shows (no dump, no BTF of its own); struct skn_event is in the programs' BTF", async function () {
    const show = await bpftoolJson<{ name: string; type: string; max_entries: number; btf_id?: number }>([
      "map",
      "show",
      "pinned",
      pinPath(n1().bpffsRoot, "skn_events"),
    ]);
    assert.deepEqual([show.name, show.type, show.max_entries], ["skn_events", "ringbuf", 256 * 1024]);
    const prog = await bpftoolJson<{ btf_id: number }>([
      "prog",
      "show",
      "pinned",
      pinPath(n1().bpffsRoot, "skn_from_pod"),
    ]);
    const btf = await bpftoolJson<{ types: { name?: string; kind: string; members?: { name: string }[] }[] }>(
      ["btf", "dump", "id", String(prog.btf_id)],
    );
    const ev = btf.types.find((t) => t.kind === "STRUCT" && t.name === "skn_event");
    assert.deepEqual(
      ev?.members?.map((m) => m.name),
      [
        "ts_ns",
        "type",
        "reason",
        "dir",
        "proto",
        "ifindex",
        "saddr_be",
        "daddr_be",
        "sport_be",
        "dport_be",
        "src_identity",
        "dst_identity",
        "rule_id",
        "_pad",
      ],
    );
  });

  it("every other pinned map has BTF and is named as pinned", async function () {
    for (const name of PINNED_MAPS) {
      const show = await bpftoolJson<{ name: string; btf_id?: number }>([
        "map",
        "show",
        "pinned",
        pinPath(n1().bpffsRoot, name),
      ]);
      assert.equal(show.name, name);
      if (name !== "skn_events") assert.ok((show.btf_id ?? 0) > 0, `${name} has BTF`);
    }
  });

  it("programs show under their names with BTF, using the pinned maps", async function () {
    const mapIds = new Set<number>();
    for (const name of PINNED_MAPS)
      mapIds.add(
        (await bpftoolJson<{ id: number }>(["map", "show", "pinned", pinPath(n1().bpffsRoot, name)])).id,
      );
    for (const name of PROGRAM_NAMES) {
      const p = await bpftoolJson<{
        name: string;
        type: string;
        tag: string;
        btf_id: number;
        map_ids: number[];
      }>(["prog", "show", "pinned", pinPath(n1().bpffsRoot, name)]);
      assert.equal(p.name, name);
      assert.equal(p.type, "sched_cls");
      assert.match(p.tag, /^[0-9a-f]{16}$/);
      assert.ok(p.btf_id > 0);
      assert.ok(
        p.map_ids.some((id) => mapIds.has(id)),
        `${name} uses the pinned maps`,
      );
    }
  });

  it("our programs sit on the pod veth, the overlay and the uplink, on tcx hooks where the kernel has them (which bpftool 7.1's net show does not list)", function () {
    const hooks = hooksIn(n1().netns);
    const tc = [...hooks].map(([slot, h]) => `${slot} ${h.kind} ${h.program}`).sort();
    const veth = [...hooks].find(([, h]) => h.program === "skn_from_pod")![0].split(" ")[0];
    const kind = hookKind();
    assert.deepEqual(
      tc,
      [
        `${veth} egress ${kind} skn_to_pod`,
        `${veth} ingress ${kind} skn_from_pod`,
        `skn_vxlan egress ${kind} skn_to_vxlan`,
        `skn_vxlan ingress ${kind} skn_from_vxlan`,
        `eth0 ingress ${kind} skn_from_uplink`,
      ].sort(),
    );
  });
});
