/** Attaching the pinned programs to interfaces, and moving attachments to new programs on upgrade. */
import {
  Program,
  hookAttach,
  hookDetach,
  hookQuery,
  interfaceIndex,
  listLinks,
  type HookKind,
  type Hooked,
  type TcDirection,
} from "../../loader/index.js";
import { PROGRAMS, SKEIN_HOOKS, pinPath, type ProgramName } from "../pins.js";
import type { PinnedLoadReport } from "./pinned.js";

/**
 * Attaches the pinned `ingress`/`egress` programs to `ifname` (tcx where the kernel has it, else
 * Skein's cls_bpf slot), each in place of Skein's program there. Throws SysError.
 */
export function attachPinned(
  root: string,
  ifname: string,
  programs: { ingress?: ProgramName; egress?: ProgramName },
): Hooked[] {
  const ifindex = interfaceIndex(ifname);
  if (ifindex === undefined) throw new Error(`attach ${ifname}: no such interface`);
  const out: Hooked[] = [];
  for (const direction of ["ingress", "egress"] as const) {
    const name = programs[direction];
    if (name === undefined) continue;
    using prog = Program.openPinned(pinPath(root, name));
    out.push(hookAttach({ ifindex, direction, ifname }, prog, SKEIN_HOOKS));
  }
  return out;
}

/** Removes Skein's programs for `programs`' directions from `ifname`, if there. Throws SysError. */
export function detachPinned(
  ifname: string,
  programs: { ingress?: ProgramName; egress?: ProgramName },
): void {
  const ifindex = interfaceIndex(ifname);
  if (ifindex === undefined) return;
  for (const direction of ["ingress", "egress"] as const)
    if (programs[direction] !== undefined) hookDetach({ ifindex, direction, ifname }, SKEIN_HOOKS);
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  direction: TcDirection;
  progId: number;
  /** tcx, or a cls_bpf filter in Skein's slot. */
  kind: HookKind;
}

/** Every interface in this namespace with a Skein program on a hook. */
export async function listAttachments(): Promise<Attachment[]> {
  const out: Attachment[] = [];
  for (const link of await listLinks()) {
    for (const direction of ["ingress", "egress"] as const) {
      const h = hookQuery({ ifindex: link.ifindex, direction, ifname: link.ifname }, SKEIN_HOOKS);
      if (h !== undefined)
        out.push({ ifname: link.ifname, ifindex: link.ifindex, direction, progId: h.progId, kind: h.kind });
    }
  }
  return out;
}

/**
 * After a load that replaced programs, points every hook still running a replaced program at its
 * successor, in place (no interface is ever without a program; a cls_bpf filter moves to tcx where
 * the kernel has it). Returns what moved.
 */
export async function moveAttachmentsToReplacements(
  root: string,
  report: PinnedLoadReport,
): Promise<{ ifname: string; direction: TcDirection; program: ProgramName; from: number; to: number }[]> {
  const successor = new Map<number, { name: ProgramName; id: number }>();
  for (const p of report.programs)
    if (p.action === "replaced" && p.previousId !== undefined)
      successor.set(p.previousId, { name: p.name, id: p.id });
  if (successor.size === 0) return [];
  const moved = [];
  for (const a of await listAttachments()) {
    const next = successor.get(a.progId);
    if (next === undefined) continue;
    using prog = Program.openPinned(pinPath(root, next.name));
    hookAttach({ ifindex: a.ifindex, direction: a.direction, ifname: a.ifname }, prog, SKEIN_HOOKS);
    moved.push({ ifname: a.ifname, direction: a.direction, program: next.name, from: a.progId, to: next.id });
  }
  return moved;
}

export const VXLAN_PROGRAMS = { ingress: PROGRAMS.fromVxlan, egress: PROGRAMS.toVxlan } as const;
export const UPLINK_PROGRAMS = { ingress: PROGRAMS.fromUplink } as const;
/** The uplink with Service load balancing on: NodePort in, its replies out. */
export const UPLINK_LB_PROGRAMS = { ingress: PROGRAMS.fromUplink, egress: PROGRAMS.toUplink } as const;
export const POD_PROGRAMS = { ingress: PROGRAMS.fromPod, egress: PROGRAMS.toPod } as const;
