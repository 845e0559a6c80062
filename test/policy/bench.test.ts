/**
 * Timings: compile 1,000 policies over 100 pods; apply single changes on top of 10,000 policies.
 * Bounds are loose (regression guards, not benchmarks); the measured numbers are printed.
 */
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { PolicyEngine } from "../../policy/engine.js";
import { namespace, pod, policy } from "./fixtures.js";

const NAMESPACES = 10;
const PODS = 100;

function populate(e: PolicyEngine): void {
  for (let i = 0; i < NAMESPACES; i++) e.upsertNamespace(namespace(`ns${i}`, { team: `t${i % 4}` }));
  for (let j = 0; j < PODS; j++)
    e.upsertPod(
      pod(`ns${j % NAMESPACES}`, `p${j}`, `10.0.${Math.floor(j / 250)}.${(j % 250) + 1}`, {
        labels: { app: `app${j % 20}`, tier: j % 3 === 0 ? "fe" : "be" },
        node: j % 4 === 0 ? "n1" : `n${(j % 4) + 1}`,
        ports: [
          { name: "http", port: 8000 + (j % 7) },
          { name: "dns", port: 53, protocol: "UDP" },
        ],
      }),
    );
}

/** A harsh mix: every ingress rule distinct (its own port), selectors by app or all, peers by pod/namespace/ipBlock, ranged and named ports, a shared internet egress rule. */
function makePolicy(k: number, variant = 0): V1NetworkPolicy {
  const ns = `ns${k % NAMESPACES}`;
  const app = `app${(k * 7 + variant) % 20}`;
  const spec: Record<string, unknown> = {
    podSelector: k % 10 === 0 ? {} : { matchLabels: { app } },
    ingress: [
      {
        from: [
          { podSelector: { matchLabels: { app: `app${(k + 1 + variant) % 20}` } } },
          {
            namespaceSelector: { matchLabels: { team: `t${k % 4}` } },
            podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["fe"] }] },
          },
        ],
        ports: [{ port: 1024 + k }, { port: 9000, endPort: 9000 + (k % 100) }],
      },
      ...(k % 5 === 0
        ? [
            {
              from: [
                {
                  ipBlock: {
                    cidr: `172.${16 + (k % 16)}.0.0/16`,
                    except: [`172.${16 + (k % 16)}.${k % 256}.0/24`],
                  },
                },
              ],
            },
          ]
        : []),
    ],
  };
  if (k % 3 === 0) {
    spec.policyTypes = ["Ingress", "Egress"];
    spec.egress = [
      {
        to: [{ podSelector: { matchLabels: { app: `app${(k + 3) % 20}` } } }],
        ports: [{ port: k % 2 === 0 ? "http" : 443 }],
      },
      { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [{ port: 443 }] },
    ];
  }
  return policy(ns, `pol${k}`, spec);
}

/** A templated mix: per-app policies, a shared "internet on 443", "DNS to ns0" and a few /24s. */
function templatedPolicy(k: number, variant = 0): V1NetworkPolicy {
  const spec: Record<string, unknown> = {
    podSelector: { matchLabels: { app: `app${(k + variant) % 20}` } },
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: `app${(k + 1) % 20}` } } }],
        ports: [{ port: 80 + (k % 5) }],
      },
    ],
  };
  const egress: unknown[] = [];
  if (k % 5 === 0)
    egress.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [{ port: 443 }] });
  if (k % 10 === 1)
    egress.push({
      to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ns0" } } }],
      ports: [{ port: 53, protocol: "UDP" }],
    });
  if (k % 20 === 2) egress.push({ to: [{ ipBlock: { cidr: `192.168.${k % 256}.0/24` } }] });
  if (egress.length > 0) {
    spec.policyTypes = ["Ingress", "Egress"];
    spec.egress = egress;
  }
  return policy(`ns${k % NAMESPACES}`, `tpl${k}`, spec);
}

function time(f: () => void): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const fmt = (ms: number): string => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;

describe("policy engine: timings", function () {
  this.timeout(600_000);
  const report: string[] = [];
  after(function () {
    if (report.length > 0)
      process.stdout.write(
        `\n      policy engine timings (node ${process.version}):\n${report.map((l) => `        ${l}`).join("\n")}\n`,
      );
  });

  it("compiles 1,000 policies over 100 pods", function () {
    const runs: number[] = [];
    let keys = 0;
    for (let r = 0; r < 3; r++) {
      const e = new PolicyEngine();
      runs.push(
        time(() => {
          populate(e);
          for (let k = 0; k < 1000; k++) e.upsertPolicy(makePolicy(k));
        }),
      );
      keys = e.desiredPolicy().size;
      assert.deepEqual(e.errors(), []);
    }
    report.push(
      `1,000 mixed policies × 100 pods, from empty: ${runs.map(fmt).join(", ")} (3 runs; ${keys} keys)`,
    );
    assert.ok(median(runs) < 20_000);
  });

  it("compiles 10,000 templated policies (shared rules) over 100 pods", function () {
    const e = new PolicyEngine();
    const build = time(() => {
      populate(e);
      for (let k = 0; k < 10_000; k++) e.upsertPolicy(templatedPolicy(k));
    });
    const s = e.stats();
    report.push(
      `10,000 templated policies × 100 pods, from empty: ${fmt(build)} (${s.keys} keys, ${s.shapes} shapes, ${s.contributions} contributions)`,
    );
    const xs: number[] = [];
    for (let i = 0; i < 21; i++)
      xs.push(
        time(() => {
          e.upsertPolicy(templatedPolicy(4242, i + 1));
        }),
      );
    report.push(
      `  update 1 templated policy: median ${fmt(median(xs))}, max ${fmt(Math.max(...xs))} (21 runs)`,
    );
    assert.ok(median(xs) < 250);
  });

  it("applies single changes on top of 10,000 policies in time independent of the policy count", function () {
    const e = new PolicyEngine();
    const build = time(() => {
      populate(e);
      for (let k = 0; k < 10_000; k++) e.upsertPolicy(makePolicy(k));
    });
    assert.deepEqual(e.errors(), []);
    const s = e.stats();
    report.push(
      `10,000 mixed policies × 100 pods, from empty: ${fmt(build)} (${s.keys} keys, ${s.shapes} shapes, ${s.contributions} contributions, ${s.identities} identities, ${s.cidrs} CIDR identities)`,
    );

    const measure = (label: string, f: (i: number) => void, runs = 21): number => {
      const xs: number[] = [];
      for (let i = 0; i < runs; i++)
        xs.push(
          time(() => {
            f(i);
          }),
        );
      const m = median(xs);
      report.push(`  ${label}: median ${fmt(m)}, max ${fmt(Math.max(...xs))} (${runs} runs)`);
      return m;
    };
    // pol4240 selects every pod of ns0 (podSelector {}); each variant has new peers: a new shape at 10 endpoints.
    const upd = measure("update 1 policy selecting 10 pods (new peers)", (i) => {
      e.upsertPolicy(makePolicy(4240, i + 1));
    });
    assert.ok(e.lastChange().endpoints.size === 10, `touched ${e.lastChange().endpoints.size} endpoints`);
    const add = measure("add 1 policy", (i) => {
      e.upsertPolicy(makePolicy(20_000 + i));
    });
    const del = measure("delete 1 policy", (i) => {
      e.deletePolicy(`ns${(20_000 + i) % NAMESPACES}`, `pol${20_000 + i}`);
    });
    // Every tier=fe pod is a peer of ~2,500 distinct rules here: a new identity for one is inherently
    // that many shapes' worth of keys.
    const lbl = measure(
      "relabel 1 pod (new identity, peer of ~2,500 distinct rules)",
      (i) => {
        e.upsertPod(
          pod("ns3", "p3", "10.0.0.4", {
            labels: { app: `app${i % 20}`, tier: "fe", rev: String(i) },
            ports: [{ name: "http", port: 8003 }],
          }),
        );
      },
      7,
    );
    const newPod = measure(
      "add 1 pod (selected by ~500 policies)",
      (i) => {
        e.upsertPod(pod("ns5", `new${i}`, `10.0.9.${i + 1}`, { labels: { app: "app5", tier: "be" } }));
      },
      7,
    );
    const nsl = measure(
      "relabel 1 namespace (10 pods re-identified)",
      (i) => {
        e.upsertNamespace(namespace("ns7", { team: `t${i % 4}` }));
      },
      5,
    );
    for (const m of [upd, add, del]) assert.ok(m < 100, `a single policy change took ${m} ms`);
    for (const m of [lbl, newPod, nsl]) assert.ok(m < 10_000, `a single pod/namespace change took ${m} ms`);
  });
});
