/**
 * The upstream Kubernetes e2e NetworkPolicy suite as data.
 *
 * Source read: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go at commit
 * 9db638c0807a720aa050ebcef69c32e4d4cce280 (the last revision whose cases all run on the full 3×3 pod
 * model), with the helpers of the same era (reachability.go, truthtable.go, policies.go, kubemanager.go,
 * probe.go). Every It(...) of its three "Netpol" suites is here, plus the two It(...)s of the "Netpol API"
 * suite (network_policy_api.go), which are marked skip. Policies, names, probes and the order of the
 * Reachability calls follow upstream; the matrices come out of the same helper semantics
 * (./reachability.ts), over all 81 pairs.
 */

import {
  containingCidr,
  hostCidr,
  ipBlock,
  matchExpressions,
  matchLabels,
  namespaceNamed,
  networkPolicy,
  peer,
  podNamed,
  policyPort,
  requirement,
} from "./policy-builders.js";
import { Reachability } from "./reachability.js";
import type { Probe, Scenario, Step } from "./scenario-types.js";

export const UPSTREAM_REPOSITORY = "kubernetes/kubernetes";
export const UPSTREAM_COMMIT = "9db638c0807a720aa050ebcef69c32e4d4cce280";
export const UPSTREAM_PATH = "test/e2e/network/netpol/network_policy.go";

const CONTEXT_TCP = "[sig-network] Netpol NetworkPolicy between server and client";
const CONTEXT_UDP = "[sig-network] Netpol [LinuxOnly] NetworkPolicy between server and client using UDP";
const CONTEXT_SCTP =
  "[sig-network] Netpol [Feature:SCTPConnectivity] [LinuxOnly] NetworkPolicy between server and client using SCTP";
const CONTEXT_API = "[sig-network] Netpol API";

const X = "x";
const Y = "y";
const Z = "z";
const NS_LABEL = "kubernetes.io/metadata.name";

const tcp = (port: number): Probe => ({ port, protocol: "TCP" });
const udp = (port: number): Probe => ({ port, protocol: "UDP" });
const sctp = (port: number): Probe => ({ port, protocol: "SCTP" });

function check(probe: Probe, r: Reachability): Step["probes"][number] {
  return { probe, expected: r.matrix() };
}

const allowAll = (): Reachability => new Reachability(true);

interface CaseDef {
  slug: string;
  title: string;
  steps: Step[];
  tags?: string[];
  needsPodIps?: boolean;
  notes?: string;
}

function suite(prefix: string, context: string, gateTags: string[], defs: CaseDef[]): Scenario[] {
  return defs.map((d) => {
    const s: Scenario = {
      name: `upstream/${prefix}/${d.slug}`,
      upstream: d.title,
      upstreamContext: context,
      steps: d.steps,
      tags: ["upstream", ...gateTags, ...(d.tags ?? [])],
      ignoreLoopback: true,
    };
    if (d.needsPodIps === true) s.needsPodIps = true;
    if (d.notes !== undefined) s.notes = d.notes;
    return s;
  });
}

/** Cases from the suite "Netpol" / "NetworkPolicy between server and client" (all probed over TCP, one also over UDP). */
function tcpSuite(ips: (nsPod: string) => string): CaseDef[] {
  const podA = "a";
  const xa = `${X}/a`;
  const xb = `${X}/b`;
  const xc = `${X}/c`;
  const ya = `${Y}/a`;
  const yb = `${Y}/b`;
  const zb = `${Z}/b`;
  const za = `${Z}/a`;

  const allowPort81FromY = () =>
    networkPolicy(X, "allow-client-a-via-ns-selector", podNamed(podA), {
      ingress: [{ _from: [peer({ namespaceSelector: namespaceNamed(Y) })], ports: [policyPort(81, "TCP")] }],
    });
  const onlyFromYToXa = (): Reachability =>
    new Reachability()
      .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
      .expectPeer({ namespace: Y }, { namespace: X, pod: podA }, true)
      .expectPeer({ namespace: Z }, { namespace: X, pod: podA }, false);

  const cidrExceptPolicy = () =>
    networkPolicy(X, "allow-client-a-via-cidr-egress-rule", podNamed(podA), {
      egress: [{ to: [peer({ ipBlock: ipBlock(containingCidr(ips(xa), 4), [hostCidr(ips(xb))]) })] }],
    });
  const cidrExceptNotes =
    "Upstream builds the CIDR as `<x/a's IP>/4` (host bits set; newer upstream masks it, makeLargeCIDRForIP); " +
    "we write the same network canonically. The expectation assumes every pod IP lies in that /4, as upstream does.";

  return [
    {
      slug: "default-deny-ingress",
      title: "should support a 'default-deny-ingress' policy",
      steps: [
        {
          description: "deny-ingress in x selects every pod and allows no ingress",
          apply: [networkPolicy(X, "deny-ingress", {}, { ingress: [] })],
          probes: [check(tcp(80), new Reachability().expectPeer({}, { namespace: X }, false))],
        },
      ],
    },
    {
      slug: "default-deny-all",
      title: "should support a 'default-deny-all' policy",
      tags: ["egress"],
      steps: [
        {
          description: "deny-all in x: no ingress, no egress",
          apply: [networkPolicy(X, "deny-all", {}, { ingress: [], egress: [] })],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({}, { namespace: X }, false)
                .expectPeer({ namespace: X }, {}, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "allow-from-same-namespace-pod-selector",
      title: "should enforce policy to allow traffic from pods within server namespace based on PodSelector",
      steps: [
        {
          description: "x/a accepts only x/b",
          apply: [
            networkPolicy(X, "x-a-allows-x-b", podNamed(podA), {
              ingress: [{ _from: [peer({ podSelector: matchLabels({ pod: "b" }) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false).expect(xb, xa, true))],
        },
      ],
    },
    {
      slug: "allow-ingress-for-target",
      title: "should enforce policy to allow ingress traffic for a target",
      tags: ["multi-policy"],
      steps: [
        {
          description: "deny-all ingress in x, then allow-all-to-a from every pod of every namespace",
          apply: [
            networkPolicy(X, "deny-all", {}, { ingress: [] }),
            networkPolicy(X, "allow-all-to-a", podNamed(podA), {
              ingress: [{ _from: [peer({ podSelector: {}, namespaceSelector: {} })] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectAllIngress(xa, true)
                .expectAllIngress(xb, false)
                .expectAllIngress(xc, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "allow-ingress-from-all-namespaces",
      title: "should enforce policy to allow ingress traffic from pods in all namespaces",
      steps: [
        {
          description: "x/a accepts any pod of any namespace (empty namespaceSelector)",
          apply: [
            networkPolicy(X, "allow-from-another-ns", podNamed(podA), {
              ingress: [{ _from: [peer({ namespaceSelector: matchLabels({}) })] }],
            }),
          ],
          probes: [check(tcp(80), allowAll())],
        },
      ],
    },
    {
      slug: "allow-from-other-namespace-namespace-selector",
      title:
        "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
      steps: [
        {
          description: "x/a accepts only namespace y",
          apply: [
            networkPolicy(X, "allow-client-a-via-ns-selector", podNamed(podA), {
              ingress: [{ _from: [peer({ namespaceSelector: namespaceNamed(Y) })] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
                .expectPeer({ namespace: Z }, { namespace: X, pod: podA }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "pod-selector-match-expressions",
      title: "should enforce policy based on PodSelector with MatchExpressions",
      tags: ["match-expressions"],
      steps: [
        {
          description: "x/a accepts pods with pod In [b] of its own namespace",
          apply: [
            networkPolicy(X, "x-a-allows-x-b", podNamed(podA), {
              ingress: [
                { _from: [peer({ podSelector: matchExpressions(requirement("pod", "In", ["b"])) })] },
              ],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false).expect(xb, xa, true))],
        },
      ],
    },
    {
      slug: "namespace-selector-match-expressions",
      title: "should enforce policy based on NamespaceSelector with MatchExpressions",
      tags: ["match-expressions"],
      steps: [
        {
          description: "x/a accepts namespaces with kubernetes.io/metadata.name In [y]",
          apply: [
            networkPolicy(X, "allow-ns-y-match-selector", podNamed(podA), {
              ingress: [
                { _from: [peer({ namespaceSelector: matchExpressions(requirement(NS_LABEL, "In", [Y])) })] },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
                .expectPeer({ namespace: Z }, { namespace: X, pod: podA }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "pod-selector-or-namespace-selector",
      title: "should enforce policy based on PodSelector or NamespaceSelector",
      tags: ["match-expressions"],
      steps: [
        {
          description: "x/a accepts namespaces NotIn [x], or pod b of x (two peers)",
          apply: [
            networkPolicy(X, "allow-ns-y-match-selector", podNamed(podA), {
              ingress: [
                {
                  _from: [
                    peer({ namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", [X])) }),
                    peer({ podSelector: matchLabels({ pod: "b" }) }),
                  ],
                },
              ],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xa, xa, false).expect(xc, xa, false))],
        },
      ],
    },
    {
      slug: "pod-selector-and-namespace-selector",
      title: "should enforce policy based on PodSelector and NamespaceSelector",
      tags: ["match-expressions"],
      steps: [
        {
          description: "x/a accepts pod b of namespaces NotIn [x] (one peer with both selectors)",
          apply: [
            networkPolicy(X, "allow-ns-y-podselector-and-nsselector", podNamed(podA), {
              ingress: [
                {
                  _from: [
                    peer({
                      namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", [X])),
                      podSelector: matchLabels({ pod: "b" }),
                    }),
                  ],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability().expectAllIngress(xa, false).expect(yb, xa, true).expect(zb, xa, true),
            ),
          ],
        },
      ],
    },
    {
      slug: "multiple-pod-selectors-and-namespace-selectors",
      title: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
      tags: ["match-expressions"],
      steps: [
        {
          description: "x/a accepts pods In [b, c] of namespaces NotIn [x]",
          apply: [
            networkPolicy(X, "allow-ns-y-z-pod-b-c", podNamed(podA), {
              ingress: [
                {
                  _from: [
                    peer({
                      namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", [X])),
                      podSelector: matchExpressions(requirement("pod", "In", ["b", "c"])),
                    }),
                  ],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
                .expect(ya, xa, false)
                .expect(za, xa, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "any-pod-selectors",
      title: "should enforce policy based on any PodSelectors",
      steps: [
        {
          description: "x/a accepts pod b or pod c of x (two peers)",
          apply: [
            networkPolicy(X, "allow-ns-x-pod-b-c", podNamed(podA), {
              ingress: [
                {
                  _from: [
                    peer({ podSelector: matchLabels({ pod: "b" }) }),
                    peer({ podSelector: matchLabels({ pod: "c" }) }),
                  ],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability().expectAllIngress(xa, false).expect(xb, xa, true).expect(xc, xa, true),
            ),
          ],
        },
      ],
    },
    {
      slug: "allow-from-pod-in-other-namespace",
      title:
        "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
      steps: [
        {
          description: "x/a accepts only y/a",
          apply: [allowFromYa(X)],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false).expect(ya, xa, true))],
        },
      ],
    },
    {
      slug: "ports",
      title: "should enforce policy based on Ports",
      steps: [
        {
          description: "x/a accepts namespace y on TCP 81 only",
          apply: [allowPort81FromY()],
          probes: [check(tcp(81), onlyFromYToXa())],
        },
      ],
    },
    {
      slug: "stacked-policies-overlapping-pod-selectors",
      title: "should enforce multiple, stacked policies with overlapping podSelectors",
      tags: ["multi-policy", "update"],
      steps: [
        {
          description: "x/a accepts namespace y on TCP 81 only; port 80 is closed to everyone",
          apply: [allowPort81FromY()],
          probes: [
            check(tcp(81), onlyFromYToXa()),
            check(tcp(80), new Reachability().expectAllIngress(xa, false)),
          ],
        },
        {
          description: "a second policy opens TCP 80 to namespace y as well",
          apply: [
            networkPolicy(X, "allow-client-a-via-ns-selector-80", podNamed(podA), {
              ingress: [
                { _from: [peer({ namespaceSelector: namespaceNamed(Y) })], ports: [policyPort(80, "TCP")] },
              ],
            }),
          ],
          probes: [check(tcp(80), onlyFromYToXa())],
        },
      ],
    },
    {
      slug: "allow-all",
      title: "should support allow-all policy",
      steps: [
        {
          description: "allow-all: every pod of x, one empty ingress rule",
          apply: [networkPolicy(X, "allow-all", matchLabels({}), { ingress: [{}] })],
          probes: [check(tcp(80), allowAll()), check(tcp(81), allowAll())],
        },
      ],
    },
    {
      slug: "ingress-named-port",
      title: "should allow ingress access on one named port",
      tags: ["named-port"],
      steps: [
        {
          description: "every pod of x accepts only the named port serve-81-tcp",
          apply: [
            networkPolicy(X, "allow-all", matchLabels({}), {
              ingress: [{ ports: [policyPort("serve-81-tcp")] }],
            }),
          ],
          probes: [
            check(tcp(81), allowAll()),
            check(tcp(80), new Reachability().expectPeer({}, { namespace: X }, false)),
          ],
        },
      ],
    },
    {
      slug: "ingress-from-namespace-named-port",
      title: "should allow ingress access from namespace on one named port",
      tags: ["named-port"],
      steps: [
        {
          description: "x/a accepts namespace y on the named port serve-80-tcp only",
          apply: [
            networkPolicy(X, "allow-client-a-via-ns-selector-80", podNamed(podA), {
              ingress: [
                {
                  _from: [peer({ namespaceSelector: namespaceNamed(Y) })],
                  ports: [policyPort("serve-80-tcp", "TCP")],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
                .expectPeer({ namespace: Z }, { namespace: X, pod: podA }, false),
            ),
            check(tcp(81), new Reachability().expectAllIngress(xa, false)),
          ],
        },
      ],
    },
    {
      slug: "egress-named-port",
      title: "should allow egress access on one named port",
      tags: ["named-port", "egress"],
      steps: [
        {
          description: "every pod of x may connect only to the named port serve-80-tcp",
          apply: [
            networkPolicy(X, "allow-egress", matchLabels({}), {
              egress: [{ ports: [policyPort("serve-80-tcp")] }],
            }),
          ],
          probes: [
            check(tcp(80), allowAll()),
            check(tcp(81), new Reachability().expectPeer({ namespace: X }, {}, false)),
          ],
        },
      ],
    },
    {
      slug: "updated-policy",
      title: "should enforce updated policy",
      tags: ["update"],
      steps: [
        {
          description: "allow-all-mutate-to-deny-all starts as allow-all ingress",
          apply: [networkPolicy(X, "allow-all-mutate-to-deny-all", matchLabels({}), { ingress: [{}] })],
          probes: [check(tcp(81), allowAll())],
        },
        {
          description: "the same policy is updated to have no ingress rule (deny all)",
          apply: [networkPolicy(X, "allow-all-mutate-to-deny-all", matchLabels({}), { ingress: [] })],
          probes: [check(tcp(81), new Reachability().expectPeer({}, { namespace: X }, false))],
        },
      ],
    },
    {
      slug: "ingress-from-updated-namespace",
      title: "should allow ingress access from updated namespace",
      tags: ["update"],
      steps: [
        {
          description: "x/a accepts namespaces labelled ns2=updated; none is yet",
          apply: [
            networkPolicy(X, "allow-client-a-via-ns-selector", podNamed(podA), {
              ingress: [{ _from: [peer({ namespaceSelector: matchLabels({ ns2: "updated" }) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false))],
        },
        {
          description: "namespace y gets ns2=updated",
          labelNamespace: [{ name: Y, labels: { ns2: "updated" } }],
          probes: [
            check(
              tcp(80),
              new Reachability().expectAllIngress(xa, false).expectPeer({ namespace: Y }, {}, true),
            ),
          ],
        },
      ],
    },
    {
      slug: "ingress-from-updated-pod",
      title: "should allow ingress access from updated pod",
      tags: ["update"],
      steps: [
        {
          description: "x/a accepts pods labelled pod=b,pod2=updated; none is yet",
          apply: [
            networkPolicy(X, "allow-client-a-via-pod-selector", podNamed(podA), {
              ingress: [{ _from: [peer({ podSelector: matchLabels({ pod: "b", pod2: "updated" }) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false))],
        },
        {
          description: "x/b gets pod2=updated",
          labelPod: [{ namespace: X, name: "b", labels: { pod: "b", pod2: "updated" } }],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false).expect(xb, xa, true))],
        },
      ],
    },
    {
      slug: "deny-ingress-from-other-namespaces",
      title: "should deny ingress from pods on other namespaces",
      steps: [
        {
          description: "every pod of x accepts every pod of x (empty podSelector peer) and nothing else",
          apply: [
            networkPolicy(
              X,
              "deny-empty-policy",
              {},
              { ingress: [{ _from: [peer({ podSelector: matchLabels({}) })] }] },
            ),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: Y }, { namespace: X }, false)
                .expectPeer({ namespace: Z }, { namespace: X }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "deny-ingress-to-updated-pod",
      title: "should deny ingress access to updated pod",
      tags: ["update"],
      steps: [
        {
          description: "deny-ingress-via-label-selector selects target=isolated; no pod has it yet",
          apply: [
            networkPolicy(X, "deny-ingress-via-label-selector", matchLabels({ target: "isolated" }), {
              ingress: [],
            }),
          ],
          probes: [check(tcp(80), allowAll())],
        },
        {
          description: "x/a gets target=isolated",
          labelPod: [{ namespace: X, name: "a", labels: { target: "isolated" } }],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false))],
        },
      ],
    },
    {
      slug: "deny-egress-pod-selector",
      title: "should deny egress from pods based on PodSelector",
      tags: ["egress"],
      steps: [
        {
          description: "x/a may connect nowhere",
          apply: [networkPolicy(X, "deny-egress-pod-a", podNamed(podA), { egress: [] })],
          probes: [check(tcp(80), new Reachability().expectAllEgress(xa, false))],
        },
      ],
    },
    {
      slug: "deny-egress-namespace",
      title: "should deny egress from all pods in a namespace",
      tags: ["egress"],
      steps: [
        {
          description: "no pod of x may connect anywhere",
          apply: [networkPolicy(X, "deny-egress-ns-x", {}, { egress: [] })],
          probes: [check(tcp(80), new Reachability().expectPeer({ namespace: X }, {}, false))],
        },
      ],
    },
    {
      slug: "ingress-and-egress-together",
      title: "should work with Ingress, Egress specified together",
      tags: ["egress"],
      steps: [
        {
          description: "x/a accepts only x/b and may connect only to port 80",
          apply: [
            networkPolicy(X, "allow-client-a-via-pod-selector", podNamed(podA), {
              ingress: [{ _from: [peer({ podSelector: matchLabels({ pod: "b" }) })] }],
              egress: [{ ports: [policyPort(80)] }],
              policyTypes: ["Egress", "Ingress"],
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expectAllIngress(xa, false).expect(xb, xa, true)),
            check(
              tcp(81),
              new Reachability().expectAllIngress(xa, false).expectAllEgress(xa, false).expect(xb, xa, true),
            ),
          ],
        },
      ],
    },
    {
      slug: "deny-egress-client-side",
      title:
        "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
      tags: ["egress", "multi-policy"],
      steps: [
        {
          description: "x/a may connect only to y/a; y/a and y/b accept only x/a",
          apply: [
            networkPolicy(X, "allow-to-ns-y-pod-a", podNamed(podA), {
              egress: [{ to: [peer({ namespaceSelector: namespaceNamed(Y), podSelector: podNamed("a") })] }],
            }),
            networkPolicy(Y, "allow-from-xa-on-ya-match-selector", podNamed("a"), {
              ingress: [
                { _from: [peer({ namespaceSelector: namespaceNamed(X), podSelector: podNamed("a") })] },
              ],
            }),
            networkPolicy(Y, "allow-from-xa-on-yb-match-selector", podNamed("b"), {
              ingress: [
                { _from: [peer({ namespaceSelector: namespaceNamed(X), podSelector: podNamed("a") })] },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X, pod: podA }, {}, false)
                .expectPeer({}, { namespace: Y, pod: "a" }, false)
                .expectPeer({ namespace: X, pod: podA }, { namespace: Y, pod: "a" }, true)
                .expectPeer({}, { namespace: Y, pod: "b" }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "egress-to-pod-in-other-namespace",
      title:
        "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
      tags: ["egress"],
      steps: [
        {
          description: "x/a may connect only to y/a",
          apply: [
            networkPolicy(X, "allow-to-ns-y-pod-a", podNamed(podA), {
              egress: [{ to: [peer({ namespaceSelector: namespaceNamed(Y), podSelector: podNamed("a") })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllEgress(xa, false).expect(xa, ya, true))],
        },
      ],
    },
    {
      slug: "ingress-any-port-one-protocol",
      title: "should enforce ingress policy allowing any port traffic to a server on a specific protocol",
      tags: ["udp"],
      steps: [
        {
          description: "x/a accepts any TCP port (a port entry with only protocol: TCP)",
          apply: [
            networkPolicy(X, "allow-ingress-by-proto", podNamed(podA), {
              ingress: [{ ports: [policyPort(undefined, "TCP")] }],
            }),
          ],
          probes: [
            check(tcp(80), allowAll()),
            check(udp(80), new Reachability().expectPeer({}, { namespace: X, pod: podA }, false)),
          ],
        },
      ],
    },
    {
      slug: "ingress-allow-all-precedence",
      title: "should enforce multiple ingress policies with ingress allow-all policy taking precedence",
      tags: ["multi-policy", "update"],
      steps: [
        {
          description: "every pod of x accepts port 80 only",
          apply: [
            networkPolicy(X, "allow-ingress-port-80", matchLabels({}), {
              ingress: [{ ports: [policyPort(80)] }],
            }),
          ],
          probes: [check(tcp(81), new Reachability().expectPeer({}, { namespace: X }, false))],
        },
        {
          description: "a second policy allows all ingress",
          apply: [networkPolicy(X, "allow-ingress", matchLabels({}), { ingress: [{}] })],
          probes: [check(tcp(81), allowAll())],
        },
      ],
    },
    {
      slug: "egress-allow-all-precedence",
      title: "should enforce multiple egress policies with egress allow-all policy taking precedence",
      tags: ["egress", "multi-policy", "update"],
      steps: [
        {
          description: "every pod of x may connect to port 80 only",
          apply: [
            networkPolicy(X, "allow-egress-port-80", matchLabels({}), {
              egress: [{ ports: [policyPort(80)] }],
            }),
          ],
          probes: [check(tcp(81), new Reachability().expectPeer({ namespace: X }, {}, false))],
        },
        {
          description: "a second policy allows all egress",
          apply: [networkPolicy(X, "allow-egress", matchLabels({}), { egress: [{}] })],
          probes: [check(tcp(81), allowAll())],
        },
      ],
    },
    {
      slug: "stop-enforcing-after-delete",
      title: "should stop enforcing policies after they are deleted",
      tags: ["egress", "update"],
      steps: [
        {
          description: "deny-all ingress and egress in x",
          apply: [networkPolicy(X, "deny-all", {}, { ingress: [], egress: [] })],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, {}, false)
                .expectPeer({}, { namespace: X }, false),
            ),
          ],
        },
        {
          description: "every policy is deleted",
          delete: [{ namespace: X, name: "deny-all" }],
          probes: [check(tcp(80), allowAll())],
        },
      ],
    },
    {
      slug: "egress-cidr",
      title: "should allow egress access to server in CIDR block",
      tags: ["ipblock", "egress"],
      needsPodIps: true,
      steps: [
        {
          description: "x/a may connect only to y/b's IP/32",
          apply: [
            networkPolicy(X, "allow-client-a-via-cidr-egress-rule", podNamed(podA), {
              egress: [{ to: [peer({ ipBlock: ipBlock(hostCidr(ips(yb))) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllEgress(xa, false).expect(xa, yb, true))],
        },
      ],
    },
    {
      slug: "egress-cidr-except",
      title: "should enforce except clause while egress access to server in CIDR block",
      tags: ["ipblock", "egress"],
      needsPodIps: true,
      notes: cidrExceptNotes,
      steps: [
        {
          description: "x/a may connect to the /4 around its own IP except x/b's IP/32",
          apply: [cidrExceptPolicy()],
          probes: [check(tcp(80), new Reachability().expect(xa, xb, false))],
        },
      ],
    },
    {
      slug: "egress-cidr-except-overlap",
      title: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
      tags: ["ipblock", "egress", "update"],
      needsPodIps: true,
      notes:
        cidrExceptNotes +
        " Upstream's second step *updates* the same policy (same name) to allow only x/b's IP/32, so the" +
        " CIDR/except overlap is never live in two policies at once; skein/ipblock/nested-except-* cover that.",
      steps: [
        {
          description: "x/a may connect to the /4 around its own IP except x/b's IP/32",
          apply: [cidrExceptPolicy()],
          probes: [check(tcp(80), new Reachability().expect(xa, xb, false))],
        },
        {
          description: "the same policy is replaced: x/a may connect only to x/b's IP/32",
          apply: [
            networkPolicy(X, "allow-client-a-via-cidr-egress-rule", podNamed(podA), {
              egress: [{ to: [peer({ ipBlock: ipBlock(hostCidr(ips(xb))) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expectAllEgress(xa, false).expect(xa, xb, true))],
        },
      ],
    },
    {
      slug: "ingress-egress-independent",
      title:
        "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
      tags: ["egress", "multi-policy", "update"],
      steps: [
        {
          description: "x/a may connect anywhere (egress allow-all)",
          apply: [networkPolicy(X, "allow-egress-for-target", podNamed(podA), { egress: [{}] })],
          probes: [check(tcp(80), allowAll())],
        },
        {
          description: "x/a accepts nothing (ingress deny)",
          apply: [networkPolicy(X, "deny-ingress-via-label-selector", podNamed(podA), { ingress: [] })],
          probes: [check(tcp(80), new Reachability().expectAllIngress(xa, false))],
        },
      ],
    },
    {
      slug: "sctp-not-treated-as-tcp",
      title:
        "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
      tags: ["sctp-policy", "multi-policy"],
      steps: [
        {
          description: "deny-ingress in x, and x/a accepts SCTP 81 only; probe TCP 81",
          apply: [
            networkPolicy(X, "deny-ingress", {}, { ingress: [] }),
            networkPolicy(X, "allow-only-sctp-ingress-on-port-81", podNamed(podA), {
              ingress: [{ ports: [policyPort(81, "SCTP")] }],
            }),
          ],
          probes: [check(tcp(81), new Reachability().expectPeer({}, { namespace: X }, false))],
        },
      ],
    },
    {
      slug: "sctp-policy-isolates",
      title:
        "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
      tags: ["sctp-policy"],
      steps: [
        {
          description: "x/a accepts SCTP 80 only; probe TCP 81",
          apply: [
            networkPolicy(X, "allow-only-sctp-ingress-on-port-80", podNamed(podA), {
              ingress: [{ ports: [policyPort(80, "SCTP")] }],
            }),
          ],
          probes: [check(tcp(81), new Reachability().expectAllIngress(xa, false))],
        },
      ],
    },
    {
      slug: "udp-policy-not-tcp",
      title: "should not allow access by TCP when a policy specifies only UDP",
      steps: [
        {
          description: "x/a accepts UDP 81 only; probe TCP 81",
          apply: [
            networkPolicy(X, "allow-only-udp-ingress-on-port-81", podNamed(podA), {
              ingress: [{ ports: [policyPort(81, "UDP")] }],
            }),
          ],
          probes: [check(tcp(81), new Reachability().expectAllIngress(xa, false))],
        },
      ],
    },
    {
      slug: "default-ns-label-match-labels",
      title:
        "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
      notes:
        "Relies on the API server's kubernetes.io/metadata.name namespace label; modelObjects() sets it explicitly.",
      steps: [
        {
          description: "x/a accepts namespace y by its kubernetes.io/metadata.name label",
          apply: [
            networkPolicy(X, "allow-client-a-via-ns-selector-for-immutable-ns-label", podNamed(podA), {
              ingress: [{ _from: [peer({ namespaceSelector: matchLabels({ [NS_LABEL]: Y }) })] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: podA }, false)
                .expectPeer({ namespace: Z }, { namespace: X, pod: podA }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "default-ns-label-match-expressions",
      title: "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
      tags: ["egress", "match-expressions"],
      notes:
        "Relies on the API server's kubernetes.io/metadata.name namespace label; modelObjects() sets it explicitly.",
      steps: [
        {
          description: "x/a may connect to namespaces NotIn [y]",
          apply: [
            networkPolicy(X, "allow-ns-y-match-selector-for-immutable-ns-label", podNamed(podA), {
              egress: [
                { to: [peer({ namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", [Y])) })] },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability().expectPeer({ namespace: X, pod: podA }, { namespace: Y }, false),
            ),
          ],
        },
      ],
    },
  ];
}

function allowFromYa(namespace: string) {
  return networkPolicy(namespace, "allow-ns-y-pod-a-via-namespace-pod-selector", podNamed("a"), {
    ingress: [{ _from: [peer({ namespaceSelector: namespaceNamed(Y), podSelector: podNamed("a") })] }],
  });
}

/** The three cases upstream repeats per protocol in its UDP and SCTP suites. */
function perProtocolSuite(probeOf: (port: number) => Probe, protocol: "UDP" | "SCTP"): CaseDef[] {
  const xa = `${X}/a`;
  const ya = `${Y}/a`;
  return [
    {
      slug: "default-deny-ingress",
      title: "should support a 'default-deny-ingress' policy",
      steps: [
        {
          description: "deny-all ingress in x",
          apply: [networkPolicy(X, "deny-all", {}, { ingress: [] })],
          probes: [check(probeOf(80), new Reachability().expectPeer({}, { namespace: X }, false))],
        },
      ],
    },
    {
      slug: "ports",
      title: "should enforce policy based on Ports",
      steps: [
        {
          description: `x/a accepts namespace y on ${protocol} 81 only`,
          apply: [
            networkPolicy(X, "allow-ingress-on-port-81-ns-x", podNamed("a"), {
              ingress: [
                {
                  _from: [peer({ namespaceSelector: namespaceNamed(Y) })],
                  ports: [policyPort(81, protocol)],
                },
              ],
            }),
          ],
          probes: [
            check(
              probeOf(81),
              new Reachability()
                .expectPeer({ namespace: X }, { namespace: X, pod: "a" }, false)
                .expectPeer({ namespace: Z }, { namespace: X, pod: "a" }, false),
            ),
          ],
        },
      ],
    },
    {
      slug: "allow-from-pod-in-other-namespace",
      title:
        "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
      steps: [
        {
          description: "x/a accepts only y/a",
          apply: [allowFromYa(X)],
          probes: [check(probeOf(80), new Reachability().expectAllIngress(xa, false).expect(ya, xa, true))],
        },
      ],
    },
  ];
}

const API_SKIP =
  "Exercises the API server (discovery, CRUD, watch, validation) rather than connectivity; no datapath behaviour to check.";

/** Every upstream case, in upstream's order: the TCP suite, the UDP suite, the SCTP suite, then the API suite. */
export function upstreamScenarios(ips: (nsPod: string) => string): Scenario[] {
  const api: Scenario[] = [
    {
      name: "upstream/api/crud",
      upstream: "should support creating NetworkPolicy API operations",
      upstreamContext: CONTEXT_API,
      steps: [],
      tags: ["upstream", "api"],
      skip: API_SKIP,
    },
    {
      name: "upstream/api/endport-validation",
      upstream: "should support creating NetworkPolicy API with endport field",
      upstreamContext: CONTEXT_API,
      steps: [],
      tags: ["upstream", "api", "endport"],
      skip: API_SKIP + " (endPort without port, endPort with a named port, endPort < port must be rejected.)",
    },
  ];
  return [
    ...suite("tcp", CONTEXT_TCP, ["tcp", "feature:NetworkPolicy"], tcpSuite(ips)),
    ...suite(
      "udp",
      CONTEXT_UDP,
      ["udp", "feature:NetworkPolicy", "linux-only"],
      perProtocolSuite(udp, "UDP"),
    ),
    ...suite(
      "sctp",
      CONTEXT_SCTP,
      ["sctp", "feature:NetworkPolicy", "feature:SCTPConnectivity", "linux-only"],
      perProtocolSuite(sctp, "SCTP"),
    ),
    ...api,
  ];
}
