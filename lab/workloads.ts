/**
 * The lab's workload processes (lab/workload): one per pod, node and world namespace, serving the
 * lab ports and running probes from inside its namespace on request over its control socket.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DIST } from "./dist.js";
import { startDetached, type ProcRecord } from "./procs.js";
import { isAlive } from "./workload/workload-client.js";

/** The ports every workload serves. */
export const POD_PORTS = { tcp: [80, 81, 8080], udp: [80, 81, 5353], sctp: [80, 81] };

/**
 * Starts workload `name` inside namespace `netns` (a path), controlled through socket `control`,
 * logging to `dir`. The caller records the returned process and stops it.
 */
export function startWorkload(dir: string, name: string, netns: string, control: string): ProcRecord {
  return startDetached(
    [
      process.execPath,
      join(DIST, "lab", "workload", "workload.js"),
      "--name",
      name,
      "--control",
      control,
      "--tcp",
      POD_PORTS.tcp.join(","),
      "--udp",
      POD_PORTS.udp.join(","),
      "--sctp",
      POD_PORTS.sctp.join(","),
    ],
    {
      netns,
      log: join(dir, `workload-${name.replaceAll("/", "-")}.log`),
      role: `workload ${name}`,
      marker: control,
    },
  );
}

/** Resolves once the workload behind `control` answers. Throws after 10 s. */
export async function waitWorkload(control: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!(await isAlive(control))) {
    if (Date.now() > deadline) throw new Error(`workload at ${control} did not start`);
    await sleep(30);
  }
}
