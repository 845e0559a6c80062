/**
 * Consistency of the NetworkPolicy conformance catalogue (no cluster, no privileges): names, matrices,
 * references, policy validity, tag bookkeeping, and agreement of every expectation with an independent
 * evaluator of the NetworkPolicy spec under several pod-IP layouts.
 */
import assert from "node:assert/strict";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { checkNetworkPolicy } from "./policy-checks.js";
import {
  ipBlock,
  matchExpressions,
  networkPolicy,
  peer,
  policyPort,
  requirement,
} from "./policy-builders.js";
import { replay } from "./reference-evaluator.js";
import {
  ALL_PODS,
  MODEL,
  SKEIN_NAMED_PORT,
  formatMatrix,
  modelObjects,
  scenarios,
  wirePolicy,
  type Matrix,
  type Scenario,
} from "./scenarios.js";

/** Pods spread over three nodes' /24s. */
const ipsThreeNodes = (key: string): string => {
  const i = ALL_PODS.indexOf(key);
  assert.ok(i >= 0, `unknown pod ${key}`);
  return `10.244.${i % 3}.${10 + i}`;
};
/** All pods in one /24, consecutive addresses (host CIDRs of neighbours are adjacent). */
const ipsOneNode = (key: string): string => `10.88.0.${2 + ALL_PODS.indexOf(key)}`;
/** IPv6 pods. */
const ipsV6 = (key: string): string => `fd00:10:244::${(0x10 + ALL_PODS.indexOf(key)).toString(16)}`;
const LAYOUTS: [string, (k: string) => string][] = [
  ["three nodes", ipsThreeNodes],
  ["one node", ipsOneNode],
  ["IPv6", ipsV6],
];

/** Every It(...) of upstream's network_policy.go (9db638c) and network_policy_api.go, per context. */
const UPSTREAM_TITLES: Record<string, string[]> = {
  tcp: [
    "should support a 'default-deny-ingress' policy",
    "should support a 'default-deny-all' policy",
    "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
    "should enforce policy to allow ingress traffic for a target",
    "should enforce policy to allow ingress traffic from pods in all namespaces",
    "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
    "should enforce policy based on PodSelector with MatchExpressions",
    "should enforce policy based on NamespaceSelector with MatchExpressions",
    "should enforce policy based on PodSelector or NamespaceSelector",
    "should enforce policy based on PodSelector and NamespaceSelector",
    "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
    "should enforce policy based on any PodSelectors",
    "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
    "should enforce policy based on Ports",
    "should enforce multiple, stacked policies with overlapping podSelectors",
    "should support allow-all policy",
    "should allow ingress access on one named port",
    "should allow ingress access from namespace on one named port",
    "should allow egress access on one named port",
    "should enforce updated policy",
    "should allow ingress access from updated namespace",
    "should allow ingress access from updated pod",
    "should deny ingress from pods on other namespaces",
    "should deny ingress access to updated pod",
    "should deny egress from pods based on PodSelector",
    "should deny egress from all pods in a namespace",
    "should work with Ingress, Egress specified together",
    "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
    "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
    "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
    "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
    "should enforce multiple egress policies with egress allow-all policy taking precedence",
    "should stop enforcing policies after they are deleted",
    "should allow egress access to server in CIDR block",
    "should enforce except clause while egress access to server in CIDR block",
    "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
    "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
    "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
    "should not allow access by TCP when a policy specifies only UDP",
    "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
    "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
  ],
  udp: [
    "should support a 'default-deny-ingress' policy",
    "should enforce policy based on Ports",
    "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
  ],
  sctp: [
    "should support a 'default-deny-ingress' policy",
    "should enforce policy based on Ports",
    "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
  ],
  api: [
    "should support creating NetworkPolicy API operations",
    "should support creating NetworkPolicy API with endport field",
  ],
};

function allPolicies(s: Scenario): V1NetworkPolicy[] {
  return s.steps.flatMap((st) => st.apply ?? []);
}

function portsOf(p: V1NetworkPolicy) {
  return [
    ...(p.spec?.ingress ?? []).flatMap((r) => r.ports ?? []),
    ...(p.spec?.egress ?? []).flatMap((r) => r.ports ?? []),
  ];
}

function peersOf(p: V1NetworkPolicy) {
  return [
    ...(p.spec?.ingress ?? []).flatMap((r) => r._from ?? []),
    ...(p.spec?.egress ?? []).flatMap((r) => r.to ?? []),
  ];
}

function diffMatrix(expected: Matrix, actual: Matrix): string[] {
  const out: string[] = [];
  for (const from of ALL_PODS) {
    for (const to of ALL_PODS) {
      if (expected[from]?.[to] !== actual[from]?.[to])
        out.push(`${from}→${to}: expected ${expected[from]?.[to]}, spec says ${actual[from]?.[to]}`);
    }
  }
  return out;
}

describe("netpol conformance catalogue", function () {
  const catalogue = scenarios(ipsThreeNodes);

  it("has unique scenario names", function () {
    const seen = new Set<string>();
    for (const s of catalogue) {
      assert.ok(!seen.has(s.name), `duplicate scenario name ${s.name}`);
      seen.add(s.name);
      assert.match(s.name, /^(upstream\/(tcp|udp|sctp|api)|skein\/[a-z-]+)\/[a-z0-9-]+$/);
    }
  });

  it("ports every upstream It(...) exactly once per suite", function () {
    for (const [suite, titles] of Object.entries(UPSTREAM_TITLES)) {
      const ported = catalogue.filter((s) => s.name.startsWith(`upstream/${suite}/`)).map((s) => s.upstream);
      assert.deepEqual([...ported].sort(), [...titles].sort(), `suite ${suite}`);
    }
    for (const s of catalogue) {
      if (s.name.startsWith("upstream/"))
        assert.ok(s.upstreamContext !== undefined && s.upstream !== "", s.name);
      else assert.equal(s.upstream, "", s.name);
    }
  });

  it("gives every runnable scenario steps and probes, and every skipped one a reason", function () {
    for (const s of catalogue) {
      if (s.skip !== undefined) {
        assert.ok(s.skip.length > 20, `${s.name}: skip reason too short`);
        continue;
      }
      assert.ok(s.steps.length > 0, `${s.name}: no steps`);
      for (const st of s.steps) {
        assert.ok(st.description.length > 0, `${s.name}: step without description`);
        assert.ok(st.probes.length > 0, `${s.name}: step "${st.description}" has no probe`);
      }
    }
  });

  it("has matrices covering all 81 pairs with booleans, and probes within the model", function () {
    for (const s of catalogue) {
      for (const st of s.steps) {
        for (const { probe, expected } of st.probes) {
          assert.ok(MODEL.ports.includes(probe.port), `${s.name}: probe port ${probe.port}`);
          assert.ok(MODEL.protocols.includes(probe.protocol), `${s.name}: probe protocol ${probe.protocol}`);
          assert.deepEqual(Object.keys(expected).sort(), [...ALL_PODS].sort(), `${s.name}: rows`);
          for (const from of ALL_PODS) {
            const row = expected[from]!;
            assert.deepEqual(Object.keys(row).sort(), [...ALL_PODS].sort(), `${s.name}: columns of ${from}`);
            for (const to of ALL_PODS) assert.equal(typeof row[to], "boolean", `${s.name}: ${from}→${to}`);
          }
        }
      }
    }
  });

  it("refers only to namespaces, pods and policies that exist", function () {
    for (const s of catalogue) {
      const live = new Set<string>();
      for (const st of s.steps) {
        for (const d of st.delete ?? []) {
          assert.ok(
            live.delete(`${d.namespace}/${d.name}`),
            `${s.name}: deletes ${d.namespace}/${d.name}, which is not applied`,
          );
        }
        for (const p of st.apply ?? []) {
          assert.ok(
            MODEL.namespaces.includes(p.metadata?.namespace ?? ""),
            `${s.name}: policy namespace ${p.metadata?.namespace}`,
          );
          live.add(`${p.metadata?.namespace}/${p.metadata?.name}`);
        }
        for (const n of st.labelNamespace ?? [])
          assert.ok(MODEL.namespaces.includes(n.name), `${s.name}: namespace ${n.name}`);
        for (const l of st.labelPod ?? []) {
          assert.ok(ALL_PODS.includes(`${l.namespace}/${l.name}`), `${s.name}: pod ${l.namespace}/${l.name}`);
        }
      }
    }
  });

  it("holds structurally valid networking.k8s.io/v1 NetworkPolicies", function () {
    for (const [layout, ips] of LAYOUTS) {
      for (const s of scenarios(ips)) {
        for (const p of allPolicies(s)) {
          const where = `${s.name} (${layout}) ${p.metadata?.namespace}/${p.metadata?.name}`;
          const wire = wirePolicy(p);
          assert.doesNotThrow(() => {
            new NetworkPolicy(wire).validate();
          }, where);
          assert.deepEqual(checkNetworkPolicy(p), [], where);
          // The wire form must keep what the catalogue means: ingress peers under `from`, none dropped.
          assert.ok(!JSON.stringify(wire).includes('"_from"'), `${where}: _from leaked to the wire`);
          const wireIngress = ((wire.spec as { ingress?: { from?: unknown[] }[] }).ingress ?? []).map(
            (r) => r.from?.length,
          );
          assert.deepEqual(
            wireIngress,
            (p.spec?.ingress ?? []).map((r) => r._from?.length),
            `${where}: peers lost on the wire`,
          );
        }
      }
    }
  });

  it("has policy checks that reject what the API server rejects", function () {
    const bad = networkPolicy("x", "bad", matchExpressions(requirement("pod", "In")), {
      ingress: [
        {
          _from: [peer({}), peer({ ipBlock: ipBlock("10.0.0.0/8", ["11.0.0.0/16"]) })],
          ports: [policyPort("http", "TCP", 90)],
        },
        { ports: [policyPort(90, "TCP", 80), policyPort(undefined, "TCP", 80), policyPort("Not-A-Name")] },
      ],
      egress: [{ to: [peer({ ipBlock: ipBlock("10.1.2.3/8") })] }],
    });

    const problems = checkNetworkPolicy(bad);
    for (const fragment of [
      "In needs values",
      "must specify a peer",
      "not strictly inside",
      "not allowed with a named port",
      "endPort: 80 with port 90",
      "requires port",
      "bad port name Not-A-Name",
      "host bits set",
    ]) {
      assert.ok(
        problems.some((p) => p.includes(fragment)),
        `expected a problem mentioning "${fragment}": ${problems.join("; ")}`,
      );
    }
  });

  it("tags what runners must know about (sctp, udp, ipblock, named-port, endport) and flags pod-IP use", function () {
    const other = scenarios(ipsOneNode);
    catalogue.forEach((s, i) => {
      const tags = new Set(s.tags ?? []);
      const probes = s.steps.flatMap((st) => st.probes.map((p) => p.probe.protocol));
      const policies = allPolicies(s);
      assert.equal(tags.has("sctp"), probes.includes("SCTP"), `${s.name}: sctp tag vs SCTP probes`);
      if (probes.includes("UDP")) assert.ok(tags.has("udp"), `${s.name}: UDP probes without udp tag`);
      const ports = policies.flatMap(portsOf);
      const peers = policies.flatMap(peersOf);
      const usesIpBlock = peers.some((p) => p.ipBlock !== undefined);
      assert.equal(tags.has("ipblock"), usesIpBlock, `${s.name}: ipblock tag`);
      assert.equal(s.needsPodIps === true, usesIpBlock, `${s.name}: needsPodIps`);
      assert.equal(
        tags.has("named-port"),
        ports.some((p) => typeof p.port === "string"),
        `${s.name}: named-port tag`,
      );
      if (s.skip === undefined)
        assert.equal(
          tags.has("endport"),
          ports.some((p) => p.endPort !== undefined),
          `${s.name}: endport tag`,
        );
      assert.equal(tags.has("skein"), s.name.startsWith("skein/"), `${s.name}: skein tag`);
      // Only scenarios that say they need pod IPs may depend on them.
      const same = JSON.stringify(s) === JSON.stringify(other[i]);
      assert.equal(same, !usesIpBlock, `${s.name}: depends on pod IPs = ${!same}`);
    });
  });

  it("builds fresh objects on every call", function () {
    const a = scenarios(ipsThreeNodes);
    const first = a[0]!.steps[0]!.apply![0]!;
    first.metadata!.name = "mutated";
    assert.notEqual(scenarios(ipsThreeNodes)[0]!.steps[0]!.apply![0]!.metadata!.name, "mutated");
    const shared = new Set<object>();
    for (const s of a)
      for (const p of allPolicies(s)) {
        assert.ok(!shared.has(p), `${s.name}: policy object shared within one catalogue`);
        shared.add(p);
      }
  });

  for (const [layout, ips] of LAYOUTS) {
    it(`agrees with the NetworkPolicy spec on every pair, every probe (${layout})`, function () {
      const failures: string[] = [];
      for (const s of scenarios(ips)) {
        if (s.skip !== undefined) continue;
        for (const r of replay(s, ips)) {
          const diff = diffMatrix(r.expected, r.actual);
          if (diff.length > 0) {
            failures.push(
              `${s.name} step ${r.stepIndex} ${r.probe.protocol}/${r.probe.port}:\n  ${diff.join("\n  ")}\n` +
                `expected:\n${formatMatrix(r.expected)}\nspec:\n${formatMatrix(r.actual)}`,
            );
          }
        }
      }
      assert.deepEqual(failures, []);
    });
  }

  it("describes the model like upstream", function () {
    const { namespaces, pods } = modelObjects({ nodeNames: ["n1", "n2"] });
    assert.deepEqual(
      namespaces.map((n) => n.metadata?.name),
      ["x", "y", "z"],
    );
    for (const n of namespaces) {
      assert.deepEqual(n.metadata?.labels, {
        ns: n.metadata?.name,
        "kubernetes.io/metadata.name": n.metadata?.name,
      });
    }
    assert.deepEqual(
      pods.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
      [...ALL_PODS],
    );
    pods.forEach((p, i) => {
      const name = p.metadata!.name!;
      const spec = p.spec!;
      assert.deepEqual(p.metadata?.labels, { pod: name });
      assert.equal(spec.nodeName, i % 2 === 0 ? "n1" : "n2");
      assert.equal(p.status, undefined);
      const ports = spec.containers.flatMap((c) => c.ports ?? []);
      const names = ports.map((cp) => cp.name);
      for (const port of MODEL.ports) {
        for (const proto of MODEL.protocols) {
          assert.ok(
            names.includes(`serve-${port}-${proto.toLowerCase()}`),
            `${name}: serve-${port}-${proto}`,
          );
        }
      }
      assert.equal(new Set(names).size, names.length, "port names unique within a pod");
      const alias = ports.filter((cp) => cp.name === SKEIN_NAMED_PORT);
      const expectedAlias = { a: [80], b: [81], c: [] }[name as "a" | "b" | "c"];
      assert.deepEqual(
        alias.map((cp) => cp.containerPort),
        expectedAlias,
      );
    });
    assert.equal(modelObjects().pods[8]?.spec?.nodeName, "node-1");
    const tcpOnly = modelObjects({ protocols: ["TCP"] }).pods[0]!;
    assert.deepEqual(
      tcpOnly.spec?.containers.map((c) => c.name),
      ["cont-80-tcp", "cont-81-tcp"],
    );
    assert.throws(() => modelObjects({ nodeNames: [] }), RangeError);
  });

  after(function () {
    const counts = new Map<string, number>();
    for (const s of catalogue) for (const t of s.tags ?? []) counts.set(t, (counts.get(t) ?? 0) + 1);
    const upstream = catalogue.filter((s) => s.name.startsWith("upstream/"));
    const lines = [
      `netpol catalogue: ${catalogue.length} scenarios (${upstream.length} upstream, ` +
        `${upstream.filter((s) => s.skip !== undefined).length} of them skipped; ` +
        `${catalogue.length - upstream.length} skein), ` +
        `${catalogue.reduce((n, s) => n + s.steps.reduce((m, st) => m + st.probes.length, 0), 0)} probe matrices`,
      ...[...counts.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([t, n]) => `  ${t.padEnd(26)} ${n}`),
    ];
    console.log(lines.join("\n"));
  });
});
