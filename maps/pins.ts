/**
 * The datapath contract shared by skein-cni, the agent and skeinctl: where things are pinned, what
 * the programs are called, which TC slot they occupy.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Default bpffs directory holding Skein's pins. */
export const DEFAULT_BPFFS_ROOT = "/sys/fs/bpf/skein";

/** Program names in the object (and their pin names). */
export const PROGRAMS = {
  fromPod: "skn_from_pod",
  toPod: "skn_to_pod",
  fromVxlan: "skn_from_vxlan",
  toVxlan: "skn_to_vxlan",
  fromUplink: "skn_from_uplink",
  toUplink: "skn_to_uplink",
} as const;
export type ProgramName = (typeof PROGRAMS)[keyof typeof PROGRAMS];
export const PROGRAM_NAMES: readonly ProgramName[] = Object.values(PROGRAMS);

/** Maps pinned under the root (by libbpf, LIBBPF_PIN_BY_NAME). */
export const PINNED_MAPS = [
  "skn_endpoints",
  "skn_ipcache",
  "skn_policy",
  "skn_conntrack2",
  "skn_metrics",
  "skn_events",
  "skn_config",
  "skn_lb_svc",
  "skn_lb_slot",
  "skn_lb_backend",
  "skn_lb_revnat",
  "skn_lb_affinity",
  "skn_lb_maglev",
  "skn_lb_flow",
] as const;
export type PinnedMapName = (typeof PINNED_MAPS)[number];

/**
 * Pins of earlier builds whose layout changed (a changed layout gets a new name, since pinned maps
 * outlive upgrades): a load removes them once nothing new uses them, and so does an unload.
 * skn_conntrack: the 32-byte conntrack value before the remote side's node joined it.
 */
export const RETIRED_PINS = ["skn_conntrack"] as const;

/** Short names skeinctl accepts besides `skn_NAME` and `NAME`. */
export const MAP_ALIASES: Readonly<Record<string, PinnedMapName>> = { conntrack: "skn_conntrack2" };

/** Every Skein filter sits in this TC slot, so an upgrade can replace it in place. */
export const TC_HANDLE = 0x5e1c;
export const TC_PRIORITY = 1;

/**
 * Skein's programs on an interface hook (loader/hook.ts): with tcx, the programs named skn_*; without
 * it, the cls_bpf filter in Skein's slot.
 */
export const SKEIN_HOOKS = {
  owns: (programName: string): boolean => programName.startsWith("skn_"),
  handle: TC_HANDLE,
  priority: TC_PRIORITY,
} as const;

export function pinPath(root: string, name: ProgramName | PinnedMapName): string {
  return join(root, name);
}

/**
 * The compiled datapath object. `SKEIN_BPF_OBJECT` overrides; otherwise the one built next to this
 * module (dist/bpf/skein.bpf.o) or installed beside the bundled executables (bpf/skein.bpf.o).
 */
export function defaultObjectPath(): string {
  const env = process.env.SKEIN_BPF_OBJECT;
  if (env !== undefined && env !== "") return resolve(env);
  const here = dirname(fileURLToPath(import.meta.url));
  const built = join(here, "..", "bpf", "skein.bpf.o");
  const installed = join(here, "bpf", "skein.bpf.o");
  return existsSync(built) || !existsSync(installed) ? built : installed;
}
