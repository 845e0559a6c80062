/**
 * Removing a lab: everything its state records, in reverse order of making, best effort (CNI's
 * rule for DEL): what is gone already counts as removed, every other failure is collected and the
 * walk goes on. The lab's directory goes only when nothing failed, so another teardown can finish.
 */
import { existsSync } from "node:fs";
import { attachmentOf, hasPluginConfig, invokeCni } from "./cni.js";
import { removeLabBpffs, stopCniServer, stopNodeBird, unloadNodeBpffs } from "./nodes.js";
import { stop, type ProcRecord } from "./procs.js";
import type { LabRecord } from "./state.js";
import { deleteLink, deleteNetns, netnsPath } from "./topology.js";

/** Tears down the lab of `record`. Resolves with the problems met (none: the lab is gone). */
export async function teardownLab(record: LabRecord): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const s = record.state;
  const stopProc = async (what: string, rec: ProcRecord | null | undefined) => {
    if (rec !== null && rec !== undefined) await attempt(what, () => stop(rec));
  };
  const delNetns = (name: string) => attempt(`netns ${name}`, () => deleteNetns(name));
  for (const p of [...s.pods]) {
    await stopProc(`workload ${p.name}`, p.workload);
    const node = s.nodes.find((n) => n.name === p.node);
    // Without its node's namespace or plugin configuration, DEL cannot run; the namespace goes anyway.
    if (node !== undefined && existsSync(netnsPath(node.netns)) && hasPluginConfig(node))
      await attempt(`CNI DEL ${p.name}`, () => invokeCni(s.cniBin, node, "DEL", attachmentOf(p)));
    await delNetns(p.netns);
  }
  for (const n of s.nodes) {
    await stopProc(`agent ${n.name}`, n.agent);
    // After the pods' DELs, which may have gone through it.
    await attempt(`cni-server ${n.name}`, () => stopCniServer(n));
    await attempt(`bird ${n.name}`, () => stopNodeBird(n));
    await stopProc(`workload ${n.name}`, n.workload);
  }
  await stopProc("router bird", s.racks?.bird);
  await stopProc("apiserver", s.api?.proc);
  await stopProc("world workload", s.world?.workload);
  for (const n of s.nodes) {
    await delNetns(n.netns);
    await attempt(`bpffs ${n.bpffsRoot}`, () => {
      unloadNodeBpffs(n);
      return Promise.resolve();
    });
  }
  await attempt("bpffs lab root", () => {
    removeLabBpffs(s.id);
    return Promise.resolve();
  });
  if (s.racks?.router != null) await delNetns(s.racks.router);
  if (s.world !== null) await delNetns(s.world.netns);
  const rootLink = s.rootLink;
  if (rootLink !== null) await attempt(`link ${rootLink}`, () => deleteLink(rootLink));
  if (s.underlay !== null) await delNetns(s.underlay);
  if (problems.length === 0) record.remove();
  else record.save();
  return problems;
}
