/**
 * npm run bench:policy [-- --runs N --seconds S]
 *
 * Does policy cost grow with the number of rules? Request/response between two pods on a lab node
 * with 0, 1,000, 10,000 and 100,000 policy-map entries in place (one connection, and a new
 * connection per round trip, where conntrack misses and the policy map is consulted), next to the
 * same probe through host-routed veths with 0, 1,000 and 5,000 equivalent iptables rules in the
 * FORWARD chain. Then the time from creating 1,000 NetworkPolicies in the API to all of them being
 * programmed in the kernel.
 *
 * The sizes are measured one after the other (filling the map takes time), and this machine's speed
 * drifts over minutes. So every Skein run is paired with a run of the same probe over the
 * host-routed veths (no rules, untouched by Skein's policy map) right after it, and Skein's ratios
 * are of the per-run quotients Skein / reference: machine-wide drift cancels, policy cost does not.
 */
import { execFileSync } from "node:child_process";
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { runLimited } from "../lab/matrix.js";
import { PolicyMap } from "../maps/policy.js";
import { runBench, say } from "./harness.js";
import { rrRate, startRrServer, stats, type Stats } from "./measure.js";

const PORT = 7777;

/** A policy named `name` letting the client into the server on `ports`. */
function clientToServer(name: string, ports: { protocol: "TCP" | "UDP"; port: number }[]): V1NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace: "scale" },
    spec: {
      podSelector: { matchLabels: { app: "server" } },
      policyTypes: ["Ingress"],
      ingress: [{ _from: [{ podSelector: { matchLabels: { app: "client" } } }], ports }],
    },
  };
}

/**
 * Policies i = offset..offset+count-1, each allowing the client on 1,000 ports the probe never uses:
 * TCP for the first 50, UDP for the next 50 (one peer identity offers 65,535 ports per protocol).
 */
function fillerPolicies(count: number, portsEach: number, offset: number): V1NetworkPolicy[] {
  return Array.from({ length: count }, (_v, k) => {
    const i = offset + k;
    return clientToServer(
      `filler-${i}`,
      Array.from({ length: portsEach }, (_w, j) => ({
        protocol: i < 50 ? "TCP" : "UDP",
        port: 10000 + (i % 50) * portsEach + j,
      })),
    );
  });
}

const allowProbe = clientToServer("allow-probe", [{ protocol: "TCP", port: PORT }]);

function fmt(s: Stats): string {
  return `${Math.round(s.median)} (${Math.round(s.min)}..${Math.round(s.max)})`;
}

runBench("bench:policy", 4, async ({ runs, seconds, rr, lab, servers, kernelBaseline }) => {
  const node = await lab.addNode({ agentArgs: ["--policy-map-entries=262144"] });
  const client = await lab.addPod({ namespace: "scale", name: "client", node, labels: { app: "client" } });
  const server = await lab.addPod({ namespace: "scale", name: "server", node, labels: { app: "server" } });
  const kb = await kernelBaseline("skp");
  const { p1a: k1a, p1b: k1b } = kb;
  // One at a time: a server that started is stopped at the end even when the next one fails.
  servers.push(await startRrServer(rr, server.netns, PORT, 0));
  servers.push(await startRrServer(rr, k1b.netns, PORT, 0));
  using policyMap = PolicyMap.openPinned(node.bpffsRoot);
  const waitEntries = async (want: number, timeoutMs: number): Promise<number> => {
    const start = Date.now();
    while (policyMap.count() !== want) {
      if (Date.now() - start > timeoutMs)
        throw new Error(`policy map holds ${policyMap.count()} entries, expected ${want}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return Date.now() - start;
  };
  const measure = async (
    label: string,
    netns: string,
    host: string,
    reference?: { netns: string; host: string },
  ) => {
    const rrs: number[] = [];
    const crrs: number[] = [];
    const rrQ: number[] = [];
    const crrQ: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await rrRate(rr, netns, host, PORT, seconds, 0, "client");
      const c = await rrRate(rr, netns, host, PORT, seconds, 0, "crr");
      rrs.push(r);
      crrs.push(c);
      if (reference !== undefined) {
        rrQ.push(r / (await rrRate(rr, reference.netns, reference.host, PORT, seconds, 0, "client")));
        crrQ.push(c / (await rrRate(rr, reference.netns, reference.host, PORT, seconds, 0, "crr")));
      }
    }
    return {
      label,
      rr: stats(rrs),
      crr: stats(crrs),
      rrQ: stats(rrQ.length > 0 ? rrQ : rrs),
      crrQ: stats(crrQ.length > 0 ? crrQ : crrs),
    };
  };
  const ref = { netns: k1a.netns, host: k1b.ip };

  say(
    `bench:policy: lab ${lab.id}, ${runs} runs of ${seconds} s per size, client and server pinned to CPU 0`,
  );
  // Warm-up, discarded: the first seconds after the lab comes up measure low (agents settling,
  // caches cold), which would flatter every later size against the no-policy figure.
  for (const [netns, host] of [
    [client.netns, server.ip],
    [k1a.netns, k1b.ip],
  ] as const) {
    await rrRate(rr, netns, host, PORT, seconds, 0, "client");
    await rrRate(rr, netns, host, PORT, seconds, 0, "crr");
  }
  const base = await measure("Skein, no policy", client.netns, server.ip, ref);
  const skein = [base];
  await lab.applyPolicy(allowProbe);
  let applied = 0;
  for (const size of [1000, 10000, 100000]) {
    const policiesNeeded = size / 1000;
    const batch = fillerPolicies(policiesNeeded - applied, 1000, applied).map(
      (p) => () => lab.applyPolicy(p),
    );
    await runLimited(batch, 8);
    applied = policiesNeeded;
    await waitEntries(size + 1, 120000);
    skein.push(
      await measure(`Skein, ${size.toLocaleString("en")} policy entries`, client.netns, server.ip, ref),
    );
  }

  const k1 = kb.n1.netns;
  const iptables: Awaited<ReturnType<typeof measure>>[] = [];
  let ib: Awaited<ReturnType<typeof measure>> | undefined;
  for (const rules of [0, 1000, 5000]) {
    const lines = ["*filter", ":FORWARD ACCEPT [0:0]"];
    // Rules that match source and destination but never the probed port: every packet walks them all.
    for (let i = 0; i < rules; i++)
      lines.push(`-A FORWARD -s ${k1a.ip}/32 -d ${k1b.ip}/32 -p tcp --dport ${10000 + i} -j ACCEPT`);
    lines.push("COMMIT", "");
    execFileSync("nsenter", [`--net=/var/run/netns/${k1}`, "iptables-restore"], { input: lines.join("\n") });
    const m = await measure(`host routing, ${rules.toLocaleString("en")} iptables rules`, k1a.netns, k1b.ip);
    ib ??= m;
    iptables.push(m);
  }

  // Programming time: 1,000 new NetworkPolicies, from the first create to the last entry in the kernel.
  for (let i = 0; i < 100; i++) await lab.deletePolicy("scale", `filler-${i}`).catch(() => undefined);
  await waitEntries(1, 120000);
  const thousand = Array.from({ length: 1000 }, (_v, i) =>
    clientToServer(`p-${i}`, [{ protocol: "TCP", port: 20000 + i }]),
  );
  const t0 = Date.now();
  await runLimited(
    thousand.map((p) => () => lab.applyPolicy(p)),
    16,
  );
  const created = Date.now() - t0;
  await waitEntries(1001, 120000);
  const programmed = Date.now() - t0;

  say("\nrequest/response per second, median (min..max)      one connection          new connection each");
  for (const m of skein)
    say(
      `${m.label.padEnd(46)} ${fmt(m.rr).padEnd(24)} ${fmt(m.crr)}   ratio ${(m.rrQ.median / base.rrQ.median).toFixed(3)} / ${(m.crrQ.median / base.crrQ.median).toFixed(3)}`,
    );
  const ipBase = ib ?? base;
  for (const m of iptables)
    say(
      `${m.label.padEnd(46)} ${fmt(m.rr).padEnd(24)} ${fmt(m.crr)}   ratio ${(m.rr.median / ipBase.rr.median).toFixed(3)} / ${(m.crr.median / ipBase.crr.median).toFixed(3)}`,
    );
  const worst = Math.min(...skein.slice(1).map((m) => m.rrQ.median / base.rrQ.median));
  say(
    "(Skein's ratios: medians of the per-run quotients Skein / host-routed reference measured right after, relative to no policy)",
  );
  say(
    `\nSkein: worst request/response ratio with entries in place ${worst.toFixed(3)} (target ≥ 0.97: ${worst >= 0.97 ? "met" : "NOT met"})`,
  );
  say(
    `1,000 NetworkPolicies: created in the API in ${created} ms, all programmed in the kernel ${programmed} ms after the first create`,
  );
});
