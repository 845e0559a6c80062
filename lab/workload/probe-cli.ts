/**
 * One probe from inside a pod that runs the lab workload (lab/workload/workload.ts), for drivers that
 * can only run a command in the pod (`kubectl exec`). The workload makes the connection; this asks
 * it to over its control socket and prints its answer as one JSON line.
 *
 *   node probe-cli.js --control /tmp/skein-workload.sock --protocol TCP --host 10.244.1.5 --port 8080 [--timeout-ms 1500]
 *   node probe-cli.js --control /tmp/skein-workload.sock --ping
 *
 * Exit status: 0 reached (or the workload is alive), 1 not reached, 2 usage error or no workload.
 */
import { parseArgs } from "node:util";
import { isAlive, probe } from "./workload-client.js";
import type { ProbeProtocol } from "./workload.js";

/** Exit status of a probe that did not reach its target (as opposed to 2: the probe could not run). */
export const EXIT_UNREACHED = 1;
/** Exit status of a usage error or an unreachable workload. */
export const EXIT_ERROR = 2;

const PROTOCOLS: readonly ProbeProtocol[] = ["TCP", "UDP", "ICMP", "SCTP"];

/** Runs the CLI with `argv`, writing to `out`/`err`. Returns the exit status; never throws. */
export async function runProbeCli(
  argv: string[],
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        control: { type: "string" },
        protocol: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "timeout-ms": { type: "string" },
        ping: { type: "boolean" },
      },
      strict: true,
    }));
  } catch (e) {
    err(`probe-cli: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  }
  const control = values.control;
  if (control === undefined) {
    err("probe-cli: --control PATH is required\n");
    return EXIT_ERROR;
  }
  if (values.ping === true) {
    const alive = await isAlive(control);
    out(JSON.stringify({ ok: alive }) + "\n");
    return alive ? 0 : EXIT_ERROR;
  }
  const protocol = (values.protocol ?? "TCP").toUpperCase() as ProbeProtocol;
  const port = Number(values.port ?? "0");
  const timeoutMs = Number(values["timeout-ms"] ?? "1500");
  if (
    !PROTOCOLS.includes(protocol) ||
    values.host === undefined ||
    !Number.isInteger(port) ||
    port < 0 ||
    port > 65535 ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs <= 0
  ) {
    err(
      "probe-cli: usage: --control PATH --protocol TCP|UDP|ICMP|SCTP --host IP --port N [--timeout-ms MS]\n",
    );
    return EXIT_ERROR;
  }
  try {
    const result = await probe(control, { protocol, host: values.host, port, timeoutMs });
    out(JSON.stringify(result) + "\n");
    return result.ok ? 0 : EXIT_UNREACHED;
  } catch (e) {
    err(`probe-cli: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_ERROR;
  }
}

if (process.argv[1]?.endsWith("probe-cli.js") === true) {
  void runProbeCli(
    process.argv.slice(2),
    (t) => process.stdout.write(t),
    (t) => process.stderr.write(t),
  ).then((code) => {
    process.exitCode = code;
  });
}
