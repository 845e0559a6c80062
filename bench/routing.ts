/**
 * npm run bench:routing [-- --runs N --seconds S]
 *
 * Native routing against the underlay and VXLAN, measured close together so that a loaded
 * machine's drift enters the ratios as little as possible: two node pairs (--routing native, and
 * the default VXLAN with --encap bpf) plus node-to-node over the same underlay; each run measures
 * request/response (pinned to CPU 0) for the three back to back, then TCP throughput, rotating the
 * order from run to run. Prints medians with min..max and the per-run ratios against issue 12's
 * targets (native request/response ≥ 0.98 of the underlay, TCP ≥ 0.97). `npm run bench` measures
 * the same beside the kernel baseline and --encap device.
 */
import { runBench, say } from "./harness.js";
import { ratio, rrRate, startRrServer, stats, tcpThroughput, type Stats } from "./measure.js";

const RR_PORT = 7777;

function fmt(s: Stats, unit: "rr" | "bps"): string {
  const f = (x: number) => (unit === "bps" ? (x / 1e9).toFixed(2) : `${Math.round(x)}`);
  return `${f(s.median)} (${f(s.min)}..${f(s.max)})`;
}

runBench("bench:routing", 3, async ({ runs, seconds, rr, lab, servers }) => {
  say(`bench:routing: lab ${lab.id}, ${runs} runs of ${seconds} s, request/response pinned to CPU 0`);
  const v1 = await lab.addNode({ waitReady: false });
  const v2 = await lab.addNode({ waitReady: false });
  const n1 = await lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
  const n2 = await lab.addNode({ waitReady: false, agentArgs: ["--routing=native"] });
  await Promise.all([v1, v2, n1, n2].map((n) => lab.waitAgentReady(n, 60000)));
  const va = await lab.addPod({ namespace: "bench", name: "va", node: v1 });
  const vb = await lab.addPod({ namespace: "bench", name: "vb", node: v2 });
  const na = await lab.addPod({ namespace: "bench", name: "na", node: n1 });
  const nb = await lab.addPod({ namespace: "bench", name: "nb", node: n2 });
  for (const [from, to] of [
    [va, vb],
    [na, nb],
  ] as const) {
    const deadline = Date.now() + 15000;
    while (!(await lab.probe(from, "TCP", to.ip, 8080, 500)).ok)
      if (Date.now() > deadline) throw new Error(`${from.name} cannot reach ${to.name}`);
  }
  for (const ns of [vb.netns, nb.netns, n2.netns]) servers.push(await startRrServer(rr, ns, RR_PORT, 0));
  const paths = [
    { key: "native", client: na.netns, server: nb.netns, host: nb.ip },
    { key: "vxlan", client: va.netns, server: vb.netns, host: vb.ip },
    { key: "underlay", client: n1.netns, server: n2.netns, host: n2.ip },
  ];

  const results: Record<string, number[]> = {};
  const record = (k: string, v: number) => (results[k] ??= []).push(v);
  for (let run = 0; run < runs; run++) {
    say(`run ${run + 1}/${runs}`);
    const order = [...paths.slice(run % paths.length), ...paths.slice(0, run % paths.length)];
    for (const p of order) record(`rr ${p.key}`, await rrRate(rr, p.client, p.host, RR_PORT, seconds, 0));
    for (const p of order) record(`tput ${p.key}`, await tcpThroughput(p.server, p.client, p.host, seconds));
  }
  const r = (k: string) => results[k] ?? [];
  say("\nmeasurement                                  median (min..max)");
  say(`cross-node request/response, --routing native ${fmt(stats(r("rr native")), "rr")} /s`);
  say(`cross-node request/response, VXLAN (bpf)    ${fmt(stats(r("rr vxlan")), "rr")} /s`);
  say(`node-to-node request/response (underlay)    ${fmt(stats(r("rr underlay")), "rr")} /s`);
  say(`cross-node TCP throughput, --routing native ${fmt(stats(r("tput native")), "bps")} Gbit/s`);
  say(`cross-node TCP throughput, VXLAN (bpf)      ${fmt(stats(r("tput vxlan")), "bps")} Gbit/s`);
  say(`node-to-node TCP throughput (underlay)      ${fmt(stats(r("tput underlay")), "bps")} Gbit/s`);
  const show = (label: string, s: Stats, target?: number) => {
    say(
      `${label.padEnd(42)}${s.median.toFixed(3)} (${s.min.toFixed(3)}..${s.max.toFixed(3)})${target === undefined ? "" : `  target ≥ ${target.toFixed(2)}: ${s.median >= target ? "met" : "NOT met"}`}`,
    );
  };
  say("\nratio (per run, median (min..max))");
  show("request/response native / underlay", ratio(r("rr native"), r("rr underlay")), 0.98);
  show("throughput native / underlay", ratio(r("tput native"), r("tput underlay")), 0.97);
  show("request/response VXLAN / underlay", ratio(r("rr vxlan"), r("rr underlay")));
  show("throughput VXLAN / underlay", ratio(r("tput vxlan"), r("tput underlay")));
  show("request/response native / VXLAN", ratio(r("rr native"), r("rr vxlan")));
  show("throughput native / VXLAN", ratio(r("tput native"), r("tput vxlan")));
});
