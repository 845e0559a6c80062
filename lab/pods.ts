/**
 * A lab pod's sandbox: a network namespace of its own, wired by skein-cni ADD in its node as a
 * runtime would, and unwired by DEL (which stops its workload first). Starting the workload and
 * writing the Pod object are the façade's.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ip } from "../loader/index.js";
import { attachmentOf, invokeCni } from "./cni.js";
import { stop } from "./procs.js";
import type { LabNode, LabPod, LabRecord, LabState } from "./state.js";
import { netnsName } from "./topology.js";

/**
 * Pod `namespace/name` on `node`, not made yet: its namespace and control socket named after a
 * hash of namespace/name, a container id unique to this lab and moment, labels app=<name> unless given.
 */
export function planPod(
  record: LabRecord,
  opts: { namespace: string; name: string; node: LabNode; labels?: Record<string, string> },
): LabPod {
  const { namespace, name } = opts;
  const short = createHash("sha256").update(`${namespace}/${name}`).digest("hex").slice(0, 8);
  return {
    namespace,
    name,
    node: opts.node.name,
    netns: netnsName(record.state.id, `p${short}`),
    containerId: createHash("sha256")
      .update(`${record.state.id}/${namespace}/${name}/${Date.now()}`)
      .digest("hex"),
    ip: "",
    labels: opts.labels ?? { app: name },
    workload: null,
    control: join(record.dir, `pod-${short}.sock`),
  };
}

/**
 * Makes the pod's namespace (recorded with the pod as soon as it exists) and runs the lab's
 * skein-cni ADD in `node`; sets the pod's IP from the result. Throws when ADD fails or returns no
 * address (the namespace stays recorded for teardown).
 */
export async function wirePod(record: LabRecord, pod: LabPod, node: LabNode): Promise<void> {
  await ip(["netns", "add", pod.netns]);
  record.state.pods.push(pod);
  record.save();
  await ip(["-n", pod.netns, "link", "set", "lo", "up"]);
  const result = await invokeCni(record.state.cniBin, node, "ADD", attachmentOf(pod));
  pod.ip = resultAddress(result);
}

/**
 * Stops the pod's workload, runs CNI DEL in its node (a failure is logged, not thrown), deletes its
 * namespace and forgets the pod.
 */
export async function unwirePod(record: LabRecord, pod: LabPod, log: (line: string) => void): Promise<void> {
  if (pod.workload !== null) await stop(pod.workload);
  const node = record.state.nodes.find((n) => n.name === pod.node);
  if (node !== undefined)
    await invokeCni(record.state.cniBin, node, "DEL", attachmentOf(pod)).catch((err: unknown) => {
      log(`DEL ${pod.name}: ${String(err)}`);
    });
  await ip(["netns", "del", pod.netns]).catch(() => undefined);
  record.state.pods = record.state.pods.filter((p) => p !== pod);
  record.save();
}

/** Pod "namespace/name" (or "name" in default) of `state`. Throws when there is none. */
export function findPod(state: LabState, nsName: string): LabPod {
  const [namespace, name] = nsName.includes("/") ? nsName.split("/") : ["default", nsName];
  const p = state.pods.find((x) => x.namespace === namespace && x.name === name);
  if (p === undefined) throw new Error(`no pod ${nsName} in lab ${state.id}`);
  return p;
}

/** The first address of an ADD result, without its prefix length. Throws when there is none. */
function resultAddress(result: Record<string, unknown>): string {
  const address = ((result.ips as { address: string }[] | undefined)?.[0]?.address ?? "").split("/")[0] ?? "";
  if (address === "") throw new Error(`skein-cni ADD returned no address: ${JSON.stringify(result)}`);
  return address;
}
