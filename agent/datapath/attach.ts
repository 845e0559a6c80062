/** Attaching the pinned programs to interfaces, and moving attachments to new programs on upgrade. */
import {
  Program,
  ensureClsact,
  interfaceIndex,
  listLinks,
  tcAttach,
  tcDetach,
  tcQuery,
  type TcDirection,
  type TcFilter,
} from "../../loader/index.js";
import { PROGRAMS, TC_HANDLE, TC_PRIORITY, pinPath, type ProgramName } from "../../maps/pins.js";
import type { PinnedLoadReport } from "./pinned.js";

/**
 * Attaches the pinned `ingress`/`egress` programs to `ifname` in our TC slot (creating clsact).
 * With `replace`, existing filters in the slot are swapped atomically. Throws SysError.
 */
export function attachPinned(
  root: string,
  ifname: string,
  programs: { ingress?: ProgramName; egress?: ProgramName },
  options: { replace?: boolean } = {},
): TcFilter[] {
  const ifindex = interfaceIndex(ifname);
  if (ifindex === undefined) throw new Error(`attach ${ifname}: no such interface`);
  ensureClsact(ifindex, ifname);
  const out: TcFilter[] = [];
  for (const direction of ["ingress", "egress"] as const) {
    const name = programs[direction];
    if (name === undefined) continue;
    using prog = Program.openPinned(pinPath(root, name));
    out.push(
      tcAttach({ ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY }, prog, {
        ifname,
        replace: options.replace ?? true,
      }),
    );
  }
  return out;
}

/** Removes Skein's filters for `programs`' directions from `ifname`, if there. Throws SysError. */
export function detachPinned(
  ifname: string,
  programs: { ingress?: ProgramName; egress?: ProgramName },
): void {
  const ifindex = interfaceIndex(ifname);
  if (ifindex === undefined) return;
  for (const direction of ["ingress", "egress"] as const)
    if (programs[direction] !== undefined)
      tcDetach({ ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY }, ifname);
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  direction: TcDirection;
  progId: number;
}

/** Every interface in this namespace with a filter in Skein's TC slot. */
export async function listAttachments(): Promise<Attachment[]> {
  const out: Attachment[] = [];
  for (const link of await listLinks()) {
    for (const direction of ["ingress", "egress"] as const) {
      const progId = tcQuery(
        { ifindex: link.ifindex, direction, handle: TC_HANDLE, priority: TC_PRIORITY },
        link.ifname,
      );
      if (progId !== undefined) out.push({ ifname: link.ifname, ifindex: link.ifindex, direction, progId });
    }
  }
  return out;
}

/**
 * After a load that replaced programs, points every filter still running a replaced program at its
 * successor, in place (BPF_TC_F_REPLACE: no interface is ever without a program).
 * Returns what moved.
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
    tcAttach({ ifindex: a.ifindex, direction: a.direction, handle: TC_HANDLE, priority: TC_PRIORITY }, prog, {
      ifname: a.ifname,
      replace: true,
    });
    moved.push({ ifname: a.ifname, direction: a.direction, program: next.name, from: a.progId, to: next.id });
  }
  return moved;
}

export const VXLAN_PROGRAMS = { ingress: PROGRAMS.fromVxlan, egress: PROGRAMS.toVxlan } as const;
export const UPLINK_PROGRAMS = { ingress: PROGRAMS.fromUplink } as const;
export const POD_PROGRAMS = { ingress: PROGRAMS.fromPod, egress: PROGRAMS.toPod } as const;
