/**
 * Per-packet cost of Service translation in BPF, with BPF_PROG_TEST_RUN on the real object (no
 * decision recording, as in production): an established pod → ClusterIP packet (skn_lb_svc,
 * skn_lb_flow and skn_lb_backend lookups, DNAT with checksums) against a plain established
 * pod → pod packet, and the backend's reply with and without the reverse translation, each with
 * 1 and 10,000 Services in the maps.
 *
 * Each sample is one program run (repeat 1: the program rewrites the packet, and a repeated run
 * would see the rewritten one); the kernel's own timer around the run gives its nanoseconds, which
 * include the timer's overhead, equal for every case. `npm run bench:lb-packet -- --runs 5`.
 */
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { PrivateDatapath } from "../maps/datapath/private.js";
import { LbMapsWriter } from "../maps/lb-apply.js";
import { IpProto, TcpFlags, ipv4Frame, tcpSegment } from "../maps/packet.js";
import { PROGRAMS } from "../maps/pins.js";
import { LbIdAllocator, buildLb, type EndpointSliceView, type ServiceView } from "../policy/lb-builder.js";
import { formatIPv4 } from "../maps/net.js";
import { stats } from "./measure.js";

const CLIENT = { ip: "10.244.0.10", mac: "02:aa:00:00:00:0a", hostMac: "02:bb:00:00:00:0a" };
const BACKEND = { ip: "10.244.0.11", mac: "02:aa:00:00:00:0b", hostMac: "02:bb:00:00:00:0b" };
const VIP = "10.96.0.50";

function tcp(src: string, sport: number, dst: string, dport: number, flags: number): Buffer {
  const payload = Buffer.alloc(64);
  return ipv4Frame({
    src,
    dst,
    protocol: IpProto.TCP,
    payload: tcpSegment({ src, dst, sport, dport, flags, payload }),
  });
}

function services(n: number): { services: ServiceView[]; endpointSlices: EndpointSliceView[] } {
  const svcs: ServiceView[] = [];
  const slices: EndpointSliceView[] = [];
  for (let i = 0; i < n; i++) {
    const name = `s${i}`;
    const ip = i === 0 ? VIP : formatIPv4(0x0a600000 + 1000 + i);
    svcs.push({
      namespace: "b",
      name,
      clusterIPs: [ip],
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
    });
    slices.push({
      namespace: "b",
      serviceName: name,
      endpoints: [
        { addresses: [i === 0 ? BACKEND.ip : formatIPv4(0x0af40000 + 2 * i)], nodeName: "n1" },
        { addresses: [i === 0 ? BACKEND.ip : formatIPv4(0x0af40001 + 2 * i)], nodeName: "n1" },
      ],
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    });
  }
  return { services: svcs, endpointSlices: slices };
}

function main(): void {
  const { values } = parseArgs({ options: { runs: { type: "string" }, samples: { type: "string" } } });
  const runs = Number(values.runs ?? 3);
  const samples = Number(values.samples ?? 20000);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(samples) || samples < 100)
    throw new Error("--runs N (≥ 1) --samples N (≥ 100)");
  if (process.getuid?.() !== 0) throw new Error("the benchmark needs root");
  using dp = PrivateDatapath.load({});
  for (const [p, identity] of [
    [CLIENT, 300],
    [BACKEND, 301],
  ] as const) {
    dp.endpoints.set(p.ip, { ifindex: 1, flags: 0, mac: p.mac, hostMac: p.hostMac });
    dp.ipcache.set({ ip: p.ip, length: 32 }, { identity, tunnelIp: null, cidrIdentity: 0, flags: 0 });
  }
  const writer = new LbMapsWriter(dp.lb);
  writer.resync();
  const alloc = new LbIdAllocator();
  const prog = dp.programs[PROGRAMS.fromPod];
  const once = (frame: Buffer): number => prog.testRun({ data: frame, ctx: { ifindex: 1 } }).durationNs;
  const median = (frame: Buffer): number => {
    const v: number[] = [];
    for (let i = 0; i < samples; i++) v.push(once(frame));
    return stats(v).median;
  };

  const cases = {
    "pod → pod, established": tcp(CLIENT.ip, 40001, BACKEND.ip, 8080, TcpFlags.ACK),
    "pod → ClusterIP, established (translated)": tcp(CLIENT.ip, 40002, VIP, 80, TcpFlags.ACK),
    "reply pod → pod": tcp(BACKEND.ip, 8080, CLIENT.ip, 40001, TcpFlags.ACK),
    "reply to a ClusterIP flow (reverse-translated)": tcp(BACKEND.ip, 8080, CLIENT.ip, 40002, TcpFlags.ACK),
  };
  process.stdout.write(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; ${runs} runs × ${samples} samples (median ns per packet in each run)\n`,
  );
  for (const n of [1, 10000]) {
    writer.apply(buildLb({ node: { nodeName: "n1", nodeAddresses: [] }, ...services(n) }, alloc));
    // Open both flows (the SYN creates conntrack and the flow's backend).
    once(tcp(CLIENT.ip, 40001, BACKEND.ip, 8080, TcpFlags.SYN));
    once(tcp(CLIENT.ip, 40002, VIP, 80, TcpFlags.SYN));
    const results = new Map<string, number[]>();
    for (let r = 0; r < runs; r++)
      for (const [name, frame] of Object.entries(cases)) {
        const list = results.get(name) ?? [];
        list.push(median(frame));
        results.set(name, list);
      }
    process.stdout.write(`${n} Service(s) in skn_lb_svc:\n`);
    for (const [name, list] of results) {
      const s = stats(list);
      process.stdout.write(`  ${name.padEnd(48)} median ${s.median} ns (runs ${list.join(", ")})\n`);
    }
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`bench:lb-packet: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
