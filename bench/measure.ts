/** Running request/response and throughput measurements inside network namespaces. */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nsExec } from "./kernel-baseline.js";

/** Compiles bench/rr.c into `dir` and returns the executable's path. */
export function buildRr(dir: string): string {
  const source = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "bench", "rr.c");
  const out = join(dir, "rr");
  execFileSync("clang-16", ["-O2", "-Wall", "-o", out, source]);
  return out;
}

export interface Server {
  stop(): void;
}

/** Starts the rr server in `netns`, pinned to `cpu`. */
export async function startRrServer(rr: string, netns: string, port: number, cpu: number): Promise<Server> {
  const child: ChildProcess = spawn(
    "nsenter",
    [`--net=/var/run/netns/${netns}`, "taskset", "-c", String(cpu), rr, "server", String(port)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => {
      resolve();
    });
    child.once("exit", (code) => {
      reject(new Error(`rr server in ${netns} exited with ${code}`));
    });
  });
  return { stop: () => child.kill("SIGKILL") };
}

/**
 * Round trips per second from `netns` to host:port, pinned to `cpu`: over one connection ("client"),
 * or each on a new connection ("crr").
 */
export async function rrRate(
  rr: string,
  netns: string,
  host: string,
  port: number,
  seconds: number,
  cpu: number,
  mode: "client" | "crr" = "client",
): Promise<number> {
  const out = await nsExec(netns, [
    "taskset",
    "-c",
    String(cpu),
    rr,
    mode,
    host,
    String(port),
    String(seconds),
  ]);
  const n = Number(out.trim());
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`rr client in ${netns}: unexpected output ${JSON.stringify(out)}`);
  return n;
}

/** TCP throughput in bits/s measured by iperf3 from `clientNs` to the server it starts in `serverNs`. */
export async function tcpThroughput(
  serverNs: string,
  clientNs: string,
  host: string,
  seconds: number,
  port = 5201,
): Promise<number> {
  const server = spawn(
    "nsenter",
    [`--net=/var/run/netns/${serverNs}`, "iperf3", "-s", "-1", "-p", String(port), "-A", "1"],
    { stdio: "ignore" },
  );
  try {
    let lastError: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const out = await nsExec(clientNs, [
          "iperf3",
          "-c",
          host,
          "-p",
          String(port),
          "-t",
          String(seconds),
          "-A",
          "0",
          "-J",
        ]);
        const r = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
        return r.end.sum_received.bits_per_second;
      } catch (err) {
        lastError = err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  } finally {
    server.kill("SIGKILL");
  }
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  values: number[];
}

/** Median, min and max of at least one value. Throws RangeError for none. */
export function stats(values: number[]): Stats {
  const v = [...values].sort((a, b) => a - b);
  const at = (i: number): number => {
    const x = v[i];
    if (x === undefined) throw new RangeError("stats of no values");
    return x;
  };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
  return { median, min: at(0), max: at(v.length - 1), values };
}

/** Element-wise ratios a[i] / b[i] of two equally long series, summarised. */
export function ratio(a: readonly number[], b: readonly number[]): Stats {
  if (a.length !== b.length) throw new RangeError(`ratio of series of ${a.length} and ${b.length} values`);
  return stats(a.map((x, i) => x / (b[i] ?? Number.NaN)));
}
