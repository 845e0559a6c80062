/**
 * Skein's own NetworkPolicy scenarios, beyond upstream: endPort ranges, named ports that mean different
 * numbers on different pods, ipBlock excepts (also across two policies), matchExpressions operators and
 * policyTypes defaulting. Expectations are worked out by hand from the NetworkPolicy spec; the comment
 * above each case says why. scenarios.test.ts replays every case through an independent evaluator.
 *
 * Reminders of the spec used below:
 * - a pod is isolated for a direction when some policy of its namespace selects it with that policy type;
 *   an isolated pod allows what the union of those policies' rules allows, nothing else;
 * - a connection needs the source's egress and the destination's ingress to allow it;
 * - within a rule, peers are OR-ed and ports are OR-ed, peers AND ports; a rule without `from`/`to`
 *   matches every peer, without `ports` every port;
 * - a peer with both selectors means "pods matching podSelector in namespaces matching namespaceSelector";
 *   a podSelector alone means pods of the policy's own namespace;
 * - `except` only shrinks that one ipBlock peer; it never denies what another peer or policy allows;
 * - a port entry without protocol is TCP; a named port resolves against the destination pod's container
 *   ports of that name *and* protocol;
 * - matchLabels and every matchExpressions requirement are AND-ed; NotIn and DoesNotExist match a pod
 *   that lacks the key.
 */

import { SKEIN_NAMED_PORT } from "./model.js";
import {
  anyCidr,
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

const NS_LABEL = "kubernetes.io/metadata.name";
const tcp = (port: number): Probe => ({ port, protocol: "TCP" });
const udp = (port: number): Probe => ({ port, protocol: "UDP" });
const sctp = (port: number): Probe => ({ port, protocol: "SCTP" });
const check = (probe: Probe, r: Reachability): Step["probes"][number] => ({ probe, expected: r.matrix() });
const allowAll = (): Reachability => new Reachability(true);

function skein(name: string, tags: string[], steps: Step[], extra: Partial<Scenario> = {}): Scenario {
  return { name: `skein/${name}`, upstream: "", steps, tags: ["skein", ...tags], ...extra };
}

function endPortCases(): Scenario[] {
  const xa = "x/a";
  const xb = "x/b";
  const rangePolicy = (...ports: [number, number][]) =>
    networkPolicy("x", "skein-endport", podNamed("a"), {
      ingress: [{ ports: ports.map(([from, to]) => policyPort(from, "TCP", to)) }],
    });
  const xaClosed = () => new Reachability().expectAllIngress(xa, false);
  return [
    // x/a is isolated and accepts TCP on [port, endPort] only (inclusive at both ends). Each step replaces
    // the range: 80..81 holds both probed ports; 79..80 ends exactly at 80 so 81 is one past the end;
    // 81..90 starts exactly at 81 so 80 is one before; 80..80 is a one-port range; 1..79 and 82..65535
    // sit on either side of both probed ports.
    skein(
      "endport/ingress-edges",
      ["endport", "update"],
      [
        {
          description: "x/a accepts TCP 80-81",
          apply: [rangePolicy([80, 81])],
          probes: [check(tcp(80), allowAll()), check(tcp(81), allowAll())],
        },
        {
          description: "range replaced by 79-80: 80 is the upper edge, 81 is outside",
          apply: [rangePolicy([79, 80])],
          probes: [check(tcp(80), allowAll()), check(tcp(81), xaClosed())],
        },
        {
          description: "range replaced by 81-90: 81 is the lower edge, 80 is outside",
          apply: [rangePolicy([81, 90])],
          probes: [check(tcp(80), xaClosed()), check(tcp(81), allowAll())],
        },
        {
          description: "range replaced by 80-80 (endPort equal to port)",
          apply: [rangePolicy([80, 80])],
          probes: [check(tcp(80), allowAll()), check(tcp(81), xaClosed())],
        },
        {
          description: "ranges replaced by 1-79 and 82-65535: both probed ports fall between them",
          apply: [rangePolicy([1, 79], [82, 65535])],
          probes: [check(tcp(80), xaClosed()), check(tcp(81), xaClosed())],
        },
      ],
    ),
    // The range is for UDP: TCP to x/a matches no port entry (x/a isolated, so closed), UDP 80 and 81 are
    // inside 70..90 and open to everyone.
    skein(
      "endport/protocol",
      ["endport", "udp"],
      [
        {
          description: "x/a accepts UDP 70-90 only",
          apply: [
            networkPolicy("x", "skein-endport-udp", podNamed("a"), {
              ingress: [{ ports: [policyPort(70, "UDP", 90)] }],
            }),
          ],
          probes: [
            check(tcp(80), xaClosed()),
            check(udp(80), allowAll()),
            check(tcp(81), xaClosed()),
            check(udp(81), allowAll()),
          ],
        },
      ],
    ),
    // Every pod of x may connect to TCP 81..1024 only: port 80 is below the range, so nothing leaves x on
    // 80; 81 is the lower edge, so all traffic flows.
    skein(
      "endport/egress",
      ["endport", "egress"],
      [
        {
          description: "pods of x may connect to TCP 81-1024 only",
          apply: [
            networkPolicy(
              "x",
              "skein-endport-egress",
              {},
              { egress: [{ ports: [policyPort(81, "TCP", 1024)] }] },
            ),
          ],
          probes: [
            check(tcp(80), new Reachability().expectPeer({ namespace: "x" }, {}, false)),
            check(tcp(81), allowAll()),
          ],
        },
      ],
    ),
    // Two rules, OR-ed: namespace y on TCP 80..81, and x/b (podSelector alone = namespace x) on 81..81.
    // Port 80: x/a hears only from y. Port 81: from y and from x/b.
    skein(
      "endport/rules-union",
      ["endport"],
      [
        {
          description: "x/a accepts namespace y on TCP 80-81 and x/b on TCP 81-81",
          apply: [
            networkPolicy("x", "skein-endport-union", podNamed("a"), {
              ingress: [
                {
                  _from: [peer({ namespaceSelector: namespaceNamed("y") })],
                  ports: [policyPort(80, "TCP", 81)],
                },
                { _from: [peer({ podSelector: podNamed("b") })], ports: [policyPort(81, "TCP", 81)] },
              ],
            }),
          ],
          probes: [
            check(tcp(80), xaClosed().expectPeer({ namespace: "y" }, { namespace: "x", pod: "a" }, true)),
            check(
              tcp(81),
              xaClosed()
                .expectPeer({ namespace: "y" }, { namespace: "x", pod: "a" }, true)
                .expect(xb, xa, true),
            ),
          ],
        },
      ],
    ),
    // SCTP 80..81 open on x/a; TCP 80 matches no entry, so x/a is closed to it.
    skein(
      "endport/sctp",
      ["endport", "sctp"],
      [
        {
          description: "x/a accepts SCTP 80-81 only",
          apply: [
            networkPolicy("x", "skein-endport-sctp", podNamed("a"), {
              ingress: [{ ports: [policyPort(80, "SCTP", 81)] }],
            }),
          ],
          probes: [check(sctp(80), allowAll()), check(sctp(81), allowAll()), check(tcp(80), xaClosed())],
        },
      ],
    ),
  ];
}

function namedPortCases(): Scenario[] {
  // The model's `skein-web` TCP port is 80 on pods named a, 81 on pods named b, absent on pods named c.
  const ya = "y/a";
  const yb = "y/b";
  const yc = "y/c";
  const xa = "x/a";
  const web = { "skein-app": "web" };
  return [
    // y/a and y/b share skein-app=web and are selected by one policy allowing the named port skein-web.
    // On y/a that name is 80, on y/b it is 81: port 80 reaches y/a but not y/b, port 81 reaches y/b but
    // not y/a. y/c is not selected, so not isolated. Then y/c joins the label: it is isolated and has no
    // skein-web port, so the rule allows nothing on it and both probes to y/c fail.
    skein(
      "named-port/ingress-differs-per-pod",
      ["named-port", "update"],
      [
        {
          description:
            "y/a and y/b labelled skein-app=web; policy on that label allows the named port skein-web",
          labelPod: [
            { namespace: "y", name: "a", labels: web },
            { namespace: "y", name: "b", labels: web },
          ],
          apply: [
            networkPolicy("y", "skein-web-ingress", matchLabels(web), {
              ingress: [{ ports: [policyPort(SKEIN_NAMED_PORT)] }],
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expectAllIngress(yb, false)),
            check(tcp(81), new Reachability().expectAllIngress(ya, false)),
          ],
        },
        {
          description: "y/c labelled skein-app=web too; it has no skein-web port",
          labelPod: [{ namespace: "y", name: "c", labels: web }],
          probes: [
            check(tcp(80), new Reachability().expectAllIngress(yb, false).expectAllIngress(yc, false)),
            check(tcp(81), new Reachability().expectAllIngress(ya, false).expectAllIngress(yc, false)),
          ],
        },
      ],
    ),
    // x/a may connect only to skein-web, resolved on each destination: port 80 is allowed to every pod
    // named a (x/a itself included), port 81 to every pod named b; pods named c have no such port.
    skein(
      "named-port/egress-differs-per-pod",
      ["named-port", "egress"],
      [
        {
          description: "x/a may connect to the named port skein-web only",
          apply: [
            networkPolicy("x", "skein-web-egress", podNamed("a"), {
              egress: [{ ports: [policyPort(SKEIN_NAMED_PORT)] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectAllEgress(xa, false)
                .expectPeer({ namespace: "x", pod: "a" }, { pod: "a" }, true),
            ),
            check(
              tcp(81),
              new Reachability()
                .expectAllEgress(xa, false)
                .expectPeer({ namespace: "x", pod: "a" }, { pod: "b" }, true),
            ),
          ],
        },
      ],
    ),
    // As above, restricted to namespace y by the peer: port 80 only to y/a, port 81 only to y/b.
    skein(
      "named-port/egress-with-peer",
      ["named-port", "egress"],
      [
        {
          description: "x/a may connect to skein-web of pods in namespace y only",
          apply: [
            networkPolicy("x", "skein-web-egress-y", podNamed("a"), {
              egress: [
                {
                  to: [peer({ namespaceSelector: namespaceNamed("y") })],
                  ports: [policyPort(SKEIN_NAMED_PORT)],
                },
              ],
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expectAllEgress(xa, false).expect(xa, ya, true)),
            check(tcp(81), new Reachability().expectAllEgress(xa, false).expect(xa, yb, true)),
          ],
        },
      ],
    ),
    // skein-web exists only as a TCP port; asking for it over UDP resolves on no pod. x/a is isolated and
    // the only rule matches nothing: closed on every probe, TCP or UDP.
    skein(
      "named-port/protocol-mismatch",
      ["named-port", "udp"],
      [
        {
          description: "x/a allows skein-web over UDP (no pod has a UDP port of that name)",
          apply: [
            networkPolicy("x", "skein-web-udp", podNamed("a"), {
              ingress: [{ ports: [policyPort(SKEIN_NAMED_PORT, "UDP")] }],
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expectAllIngress(xa, false)),
            check(tcp(81), new Reachability().expectAllIngress(xa, false)),
            check(udp(80), new Reachability().expectAllIngress(xa, false)),
          ],
        },
      ],
    ),
    // serve-80-udp with protocol UDP is UDP 80: open on x/a, while TCP 80 and UDP 81 are closed. Then the
    // protocol is dropped: the entry now means TCP, and no TCP port is called serve-80-udp, so nothing
    // matches any more and x/a is closed to UDP 80 as well.
    skein(
      "named-port/protocol-default",
      ["named-port", "udp", "update"],
      [
        {
          description: "x/a allows the named port serve-80-udp over UDP",
          apply: [
            networkPolicy("x", "skein-serve-80-udp", podNamed("a"), {
              ingress: [{ ports: [policyPort("serve-80-udp", "UDP")] }],
            }),
          ],
          probes: [
            check(udp(80), allowAll()),
            check(tcp(80), new Reachability().expectAllIngress(xa, false)),
            check(udp(81), new Reachability().expectAllIngress(xa, false)),
          ],
        },
        {
          description:
            "the same policy without protocol (defaults to TCP): serve-80-udp resolves on no TCP port",
          apply: [
            networkPolicy("x", "skein-serve-80-udp", podNamed("a"), {
              ingress: [{ ports: [policyPort("serve-80-udp")] }],
            }),
          ],
          probes: [
            check(udp(80), new Reachability().expectAllIngress(xa, false)),
            check(tcp(80), new Reachability().expectAllIngress(xa, false)),
          ],
        },
      ],
    ),
  ];
}

function ipBlockCases(ips: (nsPod: string) => string): Scenario[] {
  const xa = "x/a";
  const za = "z/a";
  const any = anyCidr(ips(xa));
  const host = (pod: string) => hostCidr(ips(pod));
  const withIps = { needsPodIps: true };
  return [
    // x/a may connect to the whole address family except y/a's and z/b's host routes: those two are
    // denied, everything else (x/a itself included: its IP is in 0.0.0.0/0 and not excepted) allowed.
    skein(
      "ipblock/egress-except-pods",
      ["ipblock", "egress"],
      [
        {
          description: "x/a may connect to 0.0.0.0/0 except y/a/32 and z/b/32",
          apply: [
            networkPolicy("x", "skein-egress-except", podNamed("a"), {
              egress: [{ to: [peer({ ipBlock: ipBlock(any, [host("y/a"), host("z/b")]) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xa, "y/a", false).expect(xa, "z/b", false))],
        },
      ],
      withIps,
    ),
    // Ingress mirror: z/a accepts every source address except x/a's and x/b's.
    skein(
      "ipblock/ingress-except-pods",
      ["ipblock"],
      [
        {
          description: "z/a accepts 0.0.0.0/0 except x/a/32 and x/b/32",
          apply: [
            networkPolicy("z", "skein-ingress-except", podNamed("a"), {
              ingress: [{ _from: [peer({ ipBlock: ipBlock(any, [host("x/a"), host("x/b")]) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xa, za, false).expect("x/b", za, false))],
        },
      ],
      withIps,
    ),
    // Two policies on x/a. P1 allows everything but the three pods of y. P2's CIDR (y/b/32) sits inside
    // P1's except; policies are a union, so y/b becomes reachable while y/a, y/c stay denied. With P1
    // deleted only P2 is left: x/a reaches y/b alone.
    skein(
      "ipblock/nested-except-egress",
      ["ipblock", "egress", "multi-policy", "update"],
      [
        {
          description: "P1: x/a may connect to 0.0.0.0/0 except the three pods of y",
          apply: [
            networkPolicy("x", "skein-egress-except-y", podNamed("a"), {
              egress: [{ to: [peer({ ipBlock: ipBlock(any, [host("y/a"), host("y/b"), host("y/c")]) })] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability().expectPeer({ namespace: "x", pod: "a" }, { namespace: "y" }, false),
            ),
          ],
        },
        {
          description: "P2: x/a may connect to y/b/32, a CIDR inside P1's except",
          apply: [
            networkPolicy("x", "skein-egress-to-yb", podNamed("a"), {
              egress: [{ to: [peer({ ipBlock: ipBlock(host("y/b")) })] }],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: "x", pod: "a" }, { namespace: "y" }, false)
                .expect(xa, "y/b", true),
            ),
          ],
        },
        {
          description: "P1 deleted: only y/b/32 is left",
          delete: [{ namespace: "x", name: "skein-egress-except-y" }],
          probes: [check(tcp(80), new Reachability().expectAllEgress(xa, false).expect(xa, "y/b", true))],
        },
      ],
      withIps,
    ),
    // Ingress on z/a: P1 excepts the three pods of x, P2 allows x/c/32 back. x/a, x/b denied; x/c, y, z
    // allowed. Deleting P2 closes x/c again.
    skein(
      "ipblock/nested-except-ingress",
      ["ipblock", "multi-policy", "update"],
      [
        {
          description: "P1: z/a accepts 0.0.0.0/0 except the pods of x; P2: z/a accepts x/c/32",
          apply: [
            networkPolicy("z", "skein-ingress-except-x", podNamed("a"), {
              ingress: [
                { _from: [peer({ ipBlock: ipBlock(any, [host("x/a"), host("x/b"), host("x/c")]) })] },
              ],
            }),
            networkPolicy("z", "skein-ingress-from-xc", podNamed("a"), {
              ingress: [{ _from: [peer({ ipBlock: ipBlock(host("x/c")) })] }],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xa, za, false).expect("x/b", za, false))],
        },
        {
          description: "P2 deleted",
          delete: [{ namespace: "z", name: "skein-ingress-from-xc" }],
          probes: [
            check(
              tcp(80),
              new Reachability().expectPeer({ namespace: "x" }, { namespace: "z", pod: "a" }, false),
            ),
          ],
        },
      ],
      withIps,
    ),
    // One rule, two peers: an ipBlock excepting y/a and z/a, and a selector peer for y/a. Peers are OR-ed,
    // so y/a is allowed by the selector although excepted by the ipBlock; z/a stays denied.
    skein(
      "ipblock/except-union-with-selector",
      ["ipblock", "egress"],
      [
        {
          description: "x/a may connect to 0.0.0.0/0 except y/a/32 and z/a/32, or to pod a of namespace y",
          apply: [
            networkPolicy("x", "skein-except-or-selector", podNamed("a"), {
              egress: [
                {
                  to: [
                    peer({ ipBlock: ipBlock(any, [host("y/a"), host("z/a")]) }),
                    peer({ namespaceSelector: namespaceNamed("y"), podSelector: podNamed("a") }),
                  ],
                },
              ],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xa, za, false))],
        },
      ],
      withIps,
    ),
    // ipBlock peer and ports in one rule (AND): x/a accepts TCP 80 from everything but y/b; on 81 no rule
    // matches, so x/a is closed to everyone.
    skein(
      "ipblock/except-with-ports",
      ["ipblock"],
      [
        {
          description: "x/a accepts TCP 80 from 0.0.0.0/0 except y/b/32",
          apply: [
            networkPolicy("x", "skein-except-port-80", podNamed("a"), {
              ingress: [
                { _from: [peer({ ipBlock: ipBlock(any, [host("y/b")]) })], ports: [policyPort(80, "TCP")] },
              ],
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expect("y/b", xa, false)),
            check(tcp(81), new Reachability().expectAllIngress(xa, false)),
          ],
        },
      ],
      withIps,
    ),
  ];
}

function matchExpressionCases(): Scenario[] {
  const [xa, xb, xc, yc] = ["x/a", "x/b", "x/c", "y/c"];
  const tierLabels: NonNullable<Step["labelPod"]> = [
    { namespace: "x", name: "b", labels: { "skein-tier": "web" } },
    { namespace: "y", name: "c", labels: { "skein-tier": "db" } },
  ];
  return [
    // Target pod In [a, b] selects x/a and x/b; the peer pod In [c] (namespace x) lets only x/c in.
    skein(
      "match-expressions/pod-in",
      ["match-expressions"],
      [
        {
          description: "pods In [a, b] of x accept pods In [c] of x",
          apply: [
            networkPolicy("x", "skein-pod-in", matchExpressions(requirement("pod", "In", ["a", "b"])), {
              ingress: [
                { _from: [peer({ podSelector: matchExpressions(requirement("pod", "In", ["c"])) })] },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectAllIngress(xa, false)
                .expectAllIngress(xb, false)
                .expect(xc, xa, true)
                .expect(xc, xb, true),
            ),
          ],
        },
      ],
    ),
    // Target pod NotIn [a] selects x/b and x/c; the peer pod NotIn [c] (namespace x) is x/a and x/b.
    skein(
      "match-expressions/pod-notin",
      ["match-expressions"],
      [
        {
          description: "pods NotIn [a] of x accept pods NotIn [c] of x",
          apply: [
            networkPolicy("x", "skein-pod-notin", matchExpressions(requirement("pod", "NotIn", ["a"])), {
              ingress: [
                { _from: [peer({ podSelector: matchExpressions(requirement("pod", "NotIn", ["c"])) })] },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectAllIngress(xb, false)
                .expectAllIngress(xc, false)
                .expect(xa, xb, true)
                .expect(xb, xb, true)
                .expect(xa, xc, true)
                .expect(xb, xc, true),
            ),
          ],
        },
      ],
    ),
    // x/b gets skein-tier=web, y/c skein-tier=db. Target skein-tier Exists in x is x/b alone; the peer
    // (any namespace) skein-tier DoesNotExist is every pod but x/b and y/c.
    skein(
      "match-expressions/pod-exists-doesnotexist",
      ["match-expressions", "update"],
      [
        {
          description: "x/b (skein-tier Exists) accepts pods of any namespace without skein-tier",
          labelPod: tierLabels,
          apply: [
            networkPolicy("x", "skein-tier-exists", matchExpressions(requirement("skein-tier", "Exists")), {
              ingress: [
                {
                  _from: [
                    peer({
                      namespaceSelector: {},
                      podSelector: matchExpressions(requirement("skein-tier", "DoesNotExist")),
                    }),
                  ],
                },
              ],
            }),
          ],
          probes: [check(tcp(80), new Reachability().expect(xb, xb, false).expect(yc, xb, false))],
        },
      ],
    ),
    // Same labels. Target skein-tier NotIn [web] in y selects y/a and y/b (no key: NotIn matches) and y/c
    // (db). The peer skein-tier In [web] (any namespace) is x/b alone.
    skein(
      "match-expressions/notin-missing-key",
      ["match-expressions", "update"],
      [
        {
          description: "pods of y with skein-tier NotIn [web] accept pods with skein-tier In [web]",
          labelPod: tierLabels,
          apply: [
            networkPolicy(
              "y",
              "skein-tier-notin-web",
              matchExpressions(requirement("skein-tier", "NotIn", ["web"])),
              {
                ingress: [
                  {
                    _from: [
                      peer({
                        namespaceSelector: {},
                        podSelector: matchExpressions(requirement("skein-tier", "In", ["web"])),
                      }),
                    ],
                  },
                ],
              },
            ),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({}, { namespace: "y" }, false)
                .expectPeer({ namespace: "x", pod: "b" }, { namespace: "y" }, true),
            ),
          ],
        },
      ],
    ),
    // Namespace z gets skein-env=prod. x/a accepts namespaces In [y, z]; x/b NotIn [y] (x and z); x/c
    // namespaces where skein-env Exists (z).
    skein(
      "match-expressions/namespace-operators",
      ["match-expressions", "multi-policy", "update"],
      [
        {
          description: "three policies in x with In, NotIn and Exists namespace selectors",
          labelNamespace: [{ name: "z", labels: { "skein-env": "prod" } }],
          apply: [
            networkPolicy("x", "skein-ns-in", podNamed("a"), {
              ingress: [
                {
                  _from: [
                    peer({ namespaceSelector: matchExpressions(requirement(NS_LABEL, "In", ["y", "z"])) }),
                  ],
                },
              ],
            }),
            networkPolicy("x", "skein-ns-notin", podNamed("b"), {
              ingress: [
                {
                  _from: [
                    peer({ namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", ["y"])) }),
                  ],
                },
              ],
            }),
            networkPolicy("x", "skein-ns-exists", podNamed("c"), {
              ingress: [
                {
                  _from: [peer({ namespaceSelector: matchExpressions(requirement("skein-env", "Exists")) })],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability()
                .expectPeer({ namespace: "x" }, { namespace: "x", pod: "a" }, false)
                .expectPeer({ namespace: "y" }, { namespace: "x", pod: "b" }, false)
                .expectPeer({}, { namespace: "x", pod: "c" }, false)
                .expectPeer({ namespace: "z" }, { namespace: "x", pod: "c" }, true),
            ),
          ],
        },
      ],
    ),
    // y/a accepts namespaces where skein-env DoesNotExist: at first every namespace. When x gets
    // skein-env=dev, x drops out.
    skein(
      "match-expressions/namespace-doesnotexist-update",
      ["match-expressions", "update"],
      [
        {
          description: "y/a accepts namespaces without skein-env (all of them)",
          apply: [
            networkPolicy("y", "skein-ns-doesnotexist", podNamed("a"), {
              ingress: [
                {
                  _from: [
                    peer({ namespaceSelector: matchExpressions(requirement("skein-env", "DoesNotExist")) }),
                  ],
                },
              ],
            }),
          ],
          probes: [check(tcp(80), allowAll())],
        },
        {
          description: "namespace x gets skein-env=dev",
          labelNamespace: [{ name: "x", labels: { "skein-env": "dev" } }],
          probes: [
            check(
              tcp(80),
              new Reachability().expectPeer({ namespace: "x" }, { namespace: "y", pod: "a" }, false),
            ),
          ],
        },
      ],
    ),
    // Egress, both selectors in one peer: namespaces NotIn [x] AND pods In [b] → y/b and z/b only.
    skein(
      "match-expressions/egress-namespace-and-pod",
      ["match-expressions", "egress"],
      [
        {
          description: "x/a may connect to pods In [b] of namespaces NotIn [x]",
          apply: [
            networkPolicy("x", "skein-egress-exprs", podNamed("a"), {
              egress: [
                {
                  to: [
                    peer({
                      namespaceSelector: matchExpressions(requirement(NS_LABEL, "NotIn", ["x"])),
                      podSelector: matchExpressions(requirement("pod", "In", ["b"])),
                    }),
                  ],
                },
              ],
            }),
          ],
          probes: [
            check(
              tcp(80),
              new Reachability().expectAllEgress(xa, false).expect(xa, "y/b", true).expect(xa, "z/b", true),
            ),
          ],
        },
      ],
    ),
    // Requirements are AND-ed. The first policy's target {pod: a} AND pod NotIn [a] selects no pod, so it
    // isolates nothing. The second's peer pod In [a, b] AND pod NotIn [b] (any namespace) is the pods
    // named a: x/b accepts x/a, y/a, z/a only.
    skein(
      "match-expressions/and-of-requirements",
      ["match-expressions", "multi-policy"],
      [
        {
          description:
            "a target selector that matches nothing, and a peer selector whose requirements intersect",
          apply: [
            networkPolicy(
              "x",
              "skein-selects-nothing",
              { matchLabels: { pod: "a" }, matchExpressions: [requirement("pod", "NotIn", ["a"])] },
              { ingress: [] },
            ),
            networkPolicy("x", "skein-pods-named-a", podNamed("b"), {
              ingress: [
                {
                  _from: [
                    peer({
                      namespaceSelector: {},
                      podSelector: matchExpressions(
                        requirement("pod", "In", ["a", "b"]),
                        requirement("pod", "NotIn", ["b"]),
                      ),
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
                .expectAllIngress(xb, false)
                .expectPeer({ pod: "a" }, { namespace: "x", pod: "b" }, true),
            ),
          ],
        },
      ],
    ),
  ];
}

function policyTypeCases(): Scenario[] {
  const xa = "x/a";
  return [
    // Without spec.policyTypes the API server sets Ingress always, and Egress when egress rules exist. A
    // policy with only an egress rule therefore also isolates x/a for ingress, with no ingress rule: x/a
    // is closed on every port, and may connect to port 80 only. Replaced by a policy with only an
    // allow-all ingress rule (types default to [Ingress]): nothing is restricted.
    skein(
      "policy-types/defaulted",
      ["egress", "update"],
      [
        {
          description: "x/a policy with one egress rule (port 80) and no policyTypes",
          apply: [
            networkPolicy("x", "skein-no-policy-types", podNamed("a"), {
              egress: [{ ports: [policyPort(80)] }],
              policyTypes: "omit",
            }),
          ],
          probes: [
            check(tcp(80), new Reachability().expectAllIngress(xa, false)),
            check(tcp(81), new Reachability().expectAllIngress(xa, false).expectAllEgress(xa, false)),
          ],
        },
        {
          description: "replaced by one allow-all ingress rule, still no policyTypes",
          apply: [
            networkPolicy("x", "skein-no-policy-types", podNamed("a"), {
              ingress: [{}],
              policyTypes: "omit",
            }),
          ],
          probes: [check(tcp(81), allowAll())],
        },
      ],
      {
        notes:
          "The API server defaults spec.policyTypes; a simulation that feeds these objects to the compiler " +
          "without the API server must apply the same defaulting.",
      },
    ),
  ];
}

/** Skein's own cases; `ips` gives a pod's IP for the ipBlock cases. */
export function skeinScenarios(ips: (nsPod: string) => string): Scenario[] {
  return [
    ...endPortCases(),
    ...namedPortCases(),
    ...ipBlockCases(ips),
    ...matchExpressionCases(),
    ...policyTypeCases(),
  ];
}
