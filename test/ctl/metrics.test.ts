/**
 * The agent's /metrics on a lab node, scraped over HTTP and parsed as Prometheus text: the families
 * an operator needs, named by Prometheus conventions, and datapath counters that move when lab
 * traffic flows and when a deny-all policy drops.
 */
import assert from "node:assert/strict";
import parsePrometheus, { type PromFamily } from "parse-prometheus-text-format";
import type { LabNode, LabPod } from "../../lab/lab.js";
import { IpcacheMap } from "../../maps/ipcache.js";
import { REASONS } from "../../maps/metrics.js";
import { eventually, useLab } from "../helpers/lab.js";
import { denyAllIngress } from "./ctl-helpers.js";

async function scrape(node: LabNode): Promise<Map<string, PromFamily>> {
  const res = await fetch(`http://${node.ip}:9878/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  return new Map(parsePrometheus(await res.text()).map((f) => [f.name, f]));
}

/** The value of the sample of `name` whose labels include `labels`; undefined when there is none. */
function sample(
  families: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = families.get(name);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return m?.value === undefined ? undefined : Number(m.value);
}

function value(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const v = sample(families, name, labels);
  assert.ok(v !== undefined, `${name}${JSON.stringify(labels)} is exported`);
  return v;
}

/** Family name → type, for everything an operator needs (the list). */
const REQUIRED: Record<string, PromFamily["type"]> = {
  skein_datapath_packets_total: "COUNTER",
  skein_datapath_bytes_total: "COUNTER",
  skein_policy_verdicts_total: "COUNTER",
  skein_events_lost_total: "COUNTER",
  skein_endpoints: "GAUGE",
  skein_identities: "GAUGE",
  skein_map_entries: "GAUGE",
  skein_map_capacity_entries: "GAUGE",
  skein_map_pressure_ratio: "GAUGE",
  skein_reconcile_duration_seconds: "HISTOGRAM",
  skein_k8s_watch_errors_total: "COUNTER",
  skein_k8s_watch_restarts_total: "COUNTER",
  skein_k8s_objects_skipped_total: "COUNTER",
  skein_map_write_failures_total: "COUNTER",
  skein_policy_map_overflow_entries: "GAUGE",
  skein_agent_ready: "GAUGE",
};

describe("agent metrics on the lab (Prometheus text over HTTP)", function () {
  this.timeout(120000);
  const fx = useLab(2);
  let a: LabPod;
  let b: LabPod;
  const n1 = () => fx.nodes[0]!;
  const n2 = () => fx.nodes[1]!;

  before(async function () {
    this.timeout(60000);
    a = await fx.lab.addPod({ namespace: "metrics", name: "a", node: n1(), labels: { app: "a" } });
    b = await fx.lab.addPod({ namespace: "metrics", name: "b", node: n2(), labels: { app: "b" } });
    await eventually("a reaches b", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 20000);
  });

  it("exports every family the issue lists, with Prometheus names: counters end in _total, units in names", async function () {
    const families = await scrape(n1());
    for (const [name, type] of Object.entries(REQUIRED)) {
      const f = families.get(name);
      assert.ok(f !== undefined, `${name} is exported`);
      assert.equal(f.type, type, name);
    }
    for (const f of families.values()) {
      assert.match(f.name, /^skein_[a-z0-9_]+$/, "one prefix, snake case");
      assert.ok(f.help.length > 10, `${f.name} has help`);
      assert.equal(f.type === "COUNTER", f.name.endsWith("_total"), `${f.name}: _total exactly on counters`);
      if (f.type === "HISTOGRAM") assert.match(f.name, /_seconds$|_bytes$/, `${f.name}: a unit`);
    }
  });

  it("datapath series exist before anything happens (zeros included) for every reason and direction", async function () {
    const families = await scrape(n2());
    for (const direction of ["ingress", "egress"]) {
      assert.equal(
        value(families, "skein_datapath_packets_total", {
          reason: "drop_spoofed",
          direction,
          verdict: "drop",
        }),
        0,
      );
      assert.equal(
        value(families, "skein_datapath_bytes_total", {
          reason: "drop_malformed",
          direction,
          verdict: "drop",
        }),
        0,
      );
    }
    assert.equal(families.get("skein_datapath_packets_total")?.metrics.length, REASONS.length * 2);
  });

  it("forwarded packets and bytes move with cross-node traffic, on both nodes, by reason and direction", async function () {
    const fwd = { reason: "fwd_overlay", direction: "egress", verdict: "forward" };
    const deliver = { reason: "fwd_local", direction: "ingress", verdict: "forward" };
    const [s1, s2] = await Promise.all([scrape(n1()), scrape(n2())]);
    for (let i = 0; i < 5; i++) assert.ok((await fx.lab.probe(a, "TCP", b.ip, 8080)).ok);
    const [t1, t2] = await Promise.all([scrape(n1()), scrape(n2())]);
    const sent =
      value(t1, "skein_datapath_packets_total", fwd) - value(s1, "skein_datapath_packets_total", fwd);
    assert.ok(
      sent >= 5 * 3,
      `n1 encapsulated a's packets towards n2 (${sent}: at least SYN, ACK, data per connection)`,
    );
    assert.ok(
      value(t1, "skein_datapath_bytes_total", fwd) - value(s1, "skein_datapath_bytes_total", fwd) >=
        sent * 54,
      "bytes: at least headers per packet",
    );
    const received =
      value(t2, "skein_datapath_packets_total", deliver) - value(s2, "skein_datapath_packets_total", deliver);
    assert.ok(received >= 5 * 3, `n2 delivered them to b from the overlay (${received})`);
    assert.ok(
      value(t1, "skein_map_entries", { map: "skn_conntrack2" }) >= 5,
      "conntrack entries: one per connection at least",
    );
  });

  it("a deny-all policy's drops count as drop_policy ingress and as denied policy verdicts", async function () {
    await fx.lab.applyPolicy(denyAllIngress("metrics", "deny-b", { app: "b" }));
    await eventually(
      "b denies ingress",
      async () => !(await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok,
      20000,
    );
    const drop = { reason: "drop_policy", direction: "ingress", verdict: "drop" };
    const before = await scrape(n2());
    for (let i = 0; i < 3; i++) assert.equal((await fx.lab.probe(a, "UDP", b.ip, 5353, 300)).ok, false);
    const after = await scrape(n2());
    const dropped =
      value(after, "skein_datapath_packets_total", drop) -
      value(before, "skein_datapath_packets_total", drop);
    assert.ok(dropped >= 3, `3 UDP probes dropped (${dropped})`);
    assert.ok(
      value(after, "skein_datapath_bytes_total", drop) > value(before, "skein_datapath_bytes_total", drop),
    );
    const denied =
      value(after, "skein_policy_verdicts_total", { verdict: "denied", direction: "ingress" }) -
      value(before, "skein_policy_verdicts_total", { verdict: "denied", direction: "ingress" });
    assert.equal(denied, dropped, "a denied packet is a policy drop");
    assert.equal(
      value(after, "skein_datapath_packets_total", { reason: "drop_policy", direction: "egress" }),
      0,
      "b has no egress policy",
    );
  });

  it("flows an enforced policy allows count as allowed policy verdicts, once per new flow", async function () {
    await fx.lab.applyPolicy({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "deny-b", namespace: "metrics" },
      spec: {
        podSelector: { matchLabels: { app: "b" } },
        policyTypes: ["Ingress"],
        ingress: [{ ports: [{ protocol: "TCP", port: 8080 }] }],
      },
    });
    await eventually("b allows 8080", async () => (await fx.lab.probe(a, "TCP", b.ip, 8080, 300)).ok, 20000);
    const allowed = { verdict: "allowed", direction: "ingress" };
    const before = await scrape(n2());
    for (let i = 0; i < 4; i++) assert.ok((await fx.lab.probe(a, "TCP", b.ip, 8080)).ok);
    const after = await scrape(n2());
    assert.equal(
      value(after, "skein_policy_verdicts_total", allowed) -
        value(before, "skein_policy_verdicts_total", allowed),
      4,
      "4 connections, 4 verdicts (replies and later packets pass via conntrack)",
    );
  });

  it("endpoints, identities, entries and capacity per map, and pressure = entries / capacity", async function () {
    const families = await scrape(n1());
    assert.equal(value(families, "skein_endpoints"), 1, "a is n1's only pod");
    assert.equal(value(families, "skein_identities"), 2, "a and b have different labels");
    using ipcache = IpcacheMap.openPinned(n1().bpffsRoot);
    assert.equal(
      value(families, "skein_map_entries", { map: "skn_ipcache" }),
      ipcache.count(),
      "what the kernel holds",
    );
    for (const map of ["skn_endpoints", "skn_ipcache", "skn_policy", "skn_conntrack2"]) {
      const entries = value(families, "skein_map_entries", { map });
      const capacity = value(families, "skein_map_capacity_entries", { map });
      assert.ok(capacity > 0, map);
      assert.ok(
        Math.abs(value(families, "skein_map_pressure_ratio", { map }) - entries / capacity) < 1e-12,
        map,
      );
    }
    assert.equal(value(families, "skein_map_capacity_entries", { map: "skn_conntrack2" }), 262144);
  });

  it("reconcile duration histogram by target, readiness, watch counters", async function () {
    const families = await scrape(n2());
    assert.equal(families.get("skein_reconcile_duration_seconds")?.type, "HISTOGRAM");
    // parse-prometheus-text-format merges the buckets of a labelled histogram into one: read the lines.
    const text = await (await fetch(`http://${n2().ip}:9878/metrics`)).text();
    const line = (suffix: string, labels: string) => {
      const m = new RegExp(`^skein_reconcile_duration_seconds_${suffix}\\{${labels}\\} (\\S+)$`, "m").exec(
        text,
      );
      assert.ok(
        m !== null,
        `${suffix}{${labels}} in\n${text
          .split("\n")
          .filter((l) => l.includes("reconcile"))
          .join("\n")}`,
      );
      return Number(m[1]);
    };
    const count = line("count", 'target="all"');
    assert.ok(count > 0);
    assert.equal(line("bucket", 'le="\\+Inf",target="all"'), count);
    assert.ok(line("sum", 'target="all"') > 0);
    assert.ok(line("count", 'target="policy"') > 0, "the policy reconcile is timed on its own");
    assert.equal(value(families, "skein_agent_ready"), 1);
    assert.equal(
      sample(families, "skein_k8s_watch_errors_total", { resource: "Pod" }) ?? 0,
      0,
      "no watch failed in a healthy lab",
    );
    assert.equal(value(families, "skein_events_lost_total"), 0);
  });
});
