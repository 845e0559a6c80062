/**
 * The lab's API server (lab/apiserver) as a process in the root namespace, listening on the
 * underlay so that every node's agent reaches it, and the kubeconfig pointing at it.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeKubeconfig } from "./apiserver/kubeconfig.js";
import { DIST } from "./dist.js";
import { isRunning, startDetached } from "./procs.js";
import type { LabRecord } from "./state.js";
import { rootAddr } from "./topology.js";

/** The kubeconfig of the lab whose directory is `dir` (the agents', kubectl's, client-node's). */
export function kubeconfigPath(dir: string): string {
  return join(dir, "kubeconfig");
}

/**
 * Starts the API server on the root namespace's underlay address (an ephemeral port; ClusterIPs
 * from `serviceCidr`, the server's default when absent), records it,
 * waits for its port, records the URL and writes the kubeconfig. Throws when it exits or is not
 * listening within 15 s; the process stays recorded for teardown.
 */
export async function startApiServer(record: LabRecord, opts: { serviceCidr?: string } = {}): Promise<void> {
  const portFile = join(record.dir, "api.port");
  const log = join(record.dir, "apiserver.log");
  const host = rootAddr(record.state.subnet);
  rmSync(portFile, { force: true });
  const proc = startDetached(
    [
      process.execPath,
      join(DIST, "lab", "apiserver", "main.js"),
      "--listen",
      `${host}:0`,
      "--port-file",
      portFile,
      ...(opts.serviceCidr === undefined ? [] : ["--service-cidr", opts.serviceCidr]),
    ],
    { log, role: "apiserver", marker: portFile },
  );
  const api = { proc, url: "" };
  record.state.api = api;
  record.save();
  const deadline = Date.now() + 15000;
  while (!existsSync(portFile) || readFileSync(portFile, "utf8").trim() === "") {
    if (!isRunning(proc)) throw new Error(`lab API server exited: see ${log}`);
    if (Date.now() > deadline) throw new Error("lab API server did not start within 15 s");
    await sleep(50);
  }
  api.url = `http://${host}:${readFileSync(portFile, "utf8").trim()}`;
  record.save();
  await writeKubeconfig(kubeconfigPath(record.dir), api.url);
}
