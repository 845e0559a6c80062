/**
 * npm run bench [-- --runs N --seconds S]
 *
 * On the lab topology, in one run, interleaved: cross-node pod-to-pod TCP throughput and 1-byte
 * request/response rate through Skein and through the kernel-only baseline (kernel VXLAN + host
 * routing, no BPF), node-to-node over the underlay (the physical limit here), and same-node
 * pod-to-pod request/response through Skein and through host-routed veths. Skein runs on two
 * node pairs: one with the default --encap bpf (the datapath's own VXLAN), one with --encap device
 * (through the VXLAN device), so both modes are compared in the same run; a third pair runs
 * --routing native (no encapsulation, routed by the kernel's FIB: issue 12's targets are native
 * request/response ≥ 0.98 and TCP ≥ 0.97 of the underlay). Prints medians with min..max over the
 * runs and the ratios.
 */
import { runBench, say } from "./harness.js";
import { ratio, rrRate, startRrServer, stats, tcpThroughput, type Stats } from "./measure.js";

const RR_PORT = 7777;

function fmt(s: Stats, unit: "rr" | "bps"): string {
  const f = (x: number) => (unit === "bps" ? (x / 1e9).toFixed(2) : `${Math.round(x)}`);
  return `${f(s.median)} (${f(s.min)}..${f(s.max)})`;
}

runBench("bench", 5, async ({ runs, seconds, rr, lab, servers, kernelBaseline }) => {
  say(`bench: lab ${lab.id}, ${runs} runs of ${seconds} s, request/response pinned to CPU 0`);
  const n1 = await lab.addNode({ waitReady: false });
  const n2 = await lab.addNode({ waitReady: false });
  const n3 = await lab.addNode({ waitReady: false, agentArgs: ["--encap=device"] });
  const n4 = await lab.addNode({ waitReady: false, agentArgs: ["--encap=device"] });
  const n5 = await lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
  const n6 = await lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
  await Promise.all([n1, n2, n3, n4, n5, n6].map((n) => lab.waitAgentReady(n, 60000)));
  const p1a = await lab.addPod({ namespace: "bench", name: "p1a", node: n1 });
  const p1b = await lab.addPod({ namespace: "bench", name: "p1b", node: n1 });
  const p2a = await lab.addPod({ namespace: "bench", name: "p2a", node: n2 });
  const p3a = await lab.addPod({ namespace: "bench", name: "p3a", node: n3 });
  const p4a = await lab.addPod({ namespace: "bench", name: "p4a", node: n4 });
  const p5a = await lab.addPod({ namespace: "bench", name: "p5a", node: n5 });
  const p6a = await lab.addPod({ namespace: "bench", name: "p6a", node: n6 });
  for (const [from, to] of [
    [p1a, p2a],
    [p1a, p1b],
    [p3a, p4a],
    [p5a, p6a],
  ] as const) {
    const deadline = Date.now() + 15000;
    while (!(await lab.probe(from, "TCP", to.ip, 8080, 500)).ok)
      if (Date.now() > deadline) throw new Error(`${from.name} cannot reach ${to.name}`);
  }
  const kb = await kernelBaseline("skb");
  const { p1a: k1a, p1b: k1b, p2a: k2a } = kb;
  for (const ns of [p2a.netns, p1b.netns, p4a.netns, p6a.netns, k2a.netns, k1b.netns, n2.netns])
    servers.push(await startRrServer(rr, ns, RR_PORT, 0));

  const results: Record<string, number[]> = {};
  const record = (k: string, v: number) => (results[k] ??= []).push(v);
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}`);
    record("rr cross skein", await rrRate(rr, p1a.netns, p2a.ip, RR_PORT, seconds, 0));
    record("rr cross device", await rrRate(rr, p3a.netns, p4a.ip, RR_PORT, seconds, 0));
    record("rr cross native", await rrRate(rr, p5a.netns, p6a.ip, RR_PORT, seconds, 0));
    record("rr cross kernel", await rrRate(rr, k1a.netns, k2a.ip, RR_PORT, seconds, 0));
    record("rr underlay", await rrRate(rr, n1.netns, n2.ip, RR_PORT, seconds, 0));
    record("rr same skein", await rrRate(rr, p1a.netns, p1b.ip, RR_PORT, seconds, 0));
    record("rr same kernel", await rrRate(rr, k1a.netns, k1b.ip, RR_PORT, seconds, 0));
    record("tput cross skein", await tcpThroughput(p2a.netns, p1a.netns, p2a.ip, seconds));
    record("tput cross device", await tcpThroughput(p4a.netns, p3a.netns, p4a.ip, seconds));
    record("tput cross native", await tcpThroughput(p6a.netns, p5a.netns, p6a.ip, seconds));
    record("tput cross kernel", await tcpThroughput(k2a.netns, k1a.netns, k2a.ip, seconds));
    record("tput underlay", await tcpThroughput(n2.netns, n1.netns, n2.ip, seconds));
  }
  const r = (k: string) => results[k] ?? [];
  say("\nmeasurement                                   median (min..max)");
  say(`cross-node request/response, Skein          ${fmt(stats(r("rr cross skein")), "rr")} /s`);
  say(`cross-node request/response, --encap device ${fmt(stats(r("rr cross device")), "rr")} /s`);
  say(`cross-node request/response, --routing native ${fmt(stats(r("rr cross native")), "rr")} /s`);
  say(`cross-node request/response, kernel VXLAN   ${fmt(stats(r("rr cross kernel")), "rr")} /s`);
  say(`node-to-node request/response (underlay)    ${fmt(stats(r("rr underlay")), "rr")} /s`);
  say(`same-node request/response, Skein           ${fmt(stats(r("rr same skein")), "rr")} /s`);
  say(`same-node request/response, host routing    ${fmt(stats(r("rr same kernel")), "rr")} /s`);
  say(`cross-node TCP throughput, Skein            ${fmt(stats(r("tput cross skein")), "bps")} Gbit/s`);
  say(`cross-node TCP throughput, --encap device   ${fmt(stats(r("tput cross device")), "bps")} Gbit/s`);
  say(`cross-node TCP throughput, --routing native ${fmt(stats(r("tput cross native")), "bps")} Gbit/s`);
  say(`cross-node TCP throughput, kernel VXLAN     ${fmt(stats(r("tput cross kernel")), "bps")} Gbit/s`);
  say(`node-to-node TCP throughput (underlay)      ${fmt(stats(r("tput underlay")), "bps")} Gbit/s`);
  const show = (label: string, s: Stats, target?: number) => {
    say(
      `${label.padEnd(46)}${s.median.toFixed(3)} (${s.min.toFixed(3)}..${s.max.toFixed(3)})${target === undefined ? "" : `  target ≥ ${target.toFixed(2)}: ${s.median >= target ? "met" : "NOT met"}`}`,
    );
  };
  say("\nratio (per run, median (min..max))");
  show("throughput Skein / kernel VXLAN", ratio(r("tput cross skein"), r("tput cross kernel")), 0.95);
  show("request/response Skein / kernel VXLAN", ratio(r("rr cross skein"), r("rr cross kernel")), 1.1);
  show("same-node request/response Skein / host", ratio(r("rr same skein"), r("rr same kernel")), 1.0);
  show("throughput --encap device / kernel VXLAN", ratio(r("tput cross device"), r("tput cross kernel")));
  show("request/response --encap device / kernel", ratio(r("rr cross device"), r("rr cross kernel")));
  show("throughput kernel VXLAN / underlay", ratio(r("tput cross kernel"), r("tput underlay")));
  show("request/response kernel VXLAN / underlay", ratio(r("rr cross kernel"), r("rr underlay")));
  show("throughput Skein / underlay", ratio(r("tput cross skein"), r("tput underlay")));
  show("request/response Skein / underlay", ratio(r("rr cross skein"), r("rr underlay")));
  show("request/response native / underlay", ratio(r("rr cross native"), r("rr underlay")), 0.98);
  show("throughput native / underlay", ratio(r("tput cross native"), r("tput underlay")), 0.97);
  show("request/response native / Skein VXLAN", ratio(r("rr cross native"), r("rr cross skein")));
  show("throughput native / Skein VXLAN", ratio(r("tput cross native"), r("tput cross skein")));
});
