/**
 * Where one owner's program sits on an interface's ingress or egress: tcx when the kernel has it
 * (Linux 6.6+; cheaper per packet than a cls_bpf filter), else a direct-action cls_bpf filter in
 * the owner's slot (handle, priority). Attaching over a cls_bpf filter of the owner moves it to
 * tcx: the tcx program runs first, and the filter is then removed. Acts in the calling thread's
 * network namespace.
 */
import { SysError } from "./errors.js";
import { Program } from "./program.js";
import { ensureClsact, tcAttach, tcDetach, tcQuery, type TcDirection } from "./tc.js";
import { tcxAttach, tcxDetach, tcxQuery } from "./tcx.js";

export interface HookSlot {
  ifindex: number;
  direction: TcDirection;
  ifname?: string;
}

/** Whose programs these are: a test on program names, and the cls_bpf slot used without tcx. */
export interface HookOwner {
  owns(programName: string): boolean;
  handle: number;
  priority: number;
}

export type HookKind = "tcx" | "tc";

export interface Hooked {
  kind: HookKind;
  progId: number;
}

let tcxAvailable: boolean | undefined;

/** Does this kernel have tcx? Asked once (a query on loopback), then remembered. */
export function tcxSupported(): boolean {
  if (tcxAvailable === undefined) {
    try {
      tcxQuery(1, "ingress", "lo");
      tcxAvailable = true;
    } catch (err) {
      if (!(err instanceof SysError && err.code === "EINVAL")) throw err;
      tcxAvailable = false;
    }
  }
  return tcxAvailable;
}

function tcSlot(slot: HookSlot, owner: HookOwner) {
  return { ifindex: slot.ifindex, direction: slot.direction, handle: owner.handle, priority: owner.priority };
}

/** The owner's tcx programs on the hook (ids), in run order; none on an interface that is gone. */
function ownedTcx(slot: HookSlot, owner: HookOwner): number[] {
  let ids: number[];
  try {
    ids = tcxQuery(slot.ifindex, slot.direction, slot.ifname);
  } catch (err) {
    if (err instanceof SysError && err.code === "ENODEV") return [];
    throw err;
  }
  return ids.filter((id) => {
    try {
      using p = Program.fromId(id);
      return owner.owns(p.name);
    } catch {
      return false; // Gone between the query and the look: not ours to touch.
    }
  });
}

/**
 * Puts `program` on the hook, in place of the owner's program there if any (never leaving the hook
 * without one). `kind: "tc"` forces a cls_bpf filter even where tcx exists. Throws SysError.
 */
export function hookAttach(
  slot: HookSlot,
  program: Program,
  owner: HookOwner,
  options: { kind?: HookKind } = {},
): Hooked {
  const id = program.info().id;
  if (options.kind !== "tc" && tcxSupported()) {
    const [current, ...extra] = ownedTcx(slot, owner);
    if (current === undefined) {
      tcxAttach(slot.ifindex, slot.direction, program, { first: true, ...ifname(slot) });
    } else if (current !== id) {
      using old = Program.fromId(current);
      tcxAttach(slot.ifindex, slot.direction, program, { replace: old, ...ifname(slot) });
    }
    for (const e of extra) detachById(slot, e);
    // A filter from before tcx no longer runs (tcx decides first); remove it.
    tcDetach(tcSlot(slot, owner), slot.ifname);
    return { kind: "tcx", progId: id };
  }
  ensureClsact(slot.ifindex, slot.ifname);
  const f = tcAttach(tcSlot(slot, owner), program, { replace: true, ...ifname(slot) });
  return { kind: "tc", progId: f.progId };
}

/** Removes the owner's programs from the hook, tcx and cls_bpf. Returns whether there was any. */
export function hookDetach(slot: HookSlot, owner: HookOwner): boolean {
  let any = false;
  if (tcxSupported())
    for (const id of ownedTcx(slot, owner)) {
      detachById(slot, id);
      any = true;
    }
  return tcDetach(tcSlot(slot, owner), slot.ifname) || any;
}

/** The owner's program on the hook: tcx first, then the cls_bpf slot; undefined when none. */
export function hookQuery(slot: HookSlot, owner: HookOwner): Hooked | undefined {
  if (tcxSupported()) {
    const [id] = ownedTcx(slot, owner);
    if (id !== undefined) return { kind: "tcx", progId: id };
  }
  const progId = tcQuery(tcSlot(slot, owner), slot.ifname);
  return progId === undefined || progId === 0 ? undefined : { kind: "tc", progId };
}

function detachById(slot: HookSlot, id: number): void {
  using p = Program.fromId(id);
  tcxDetach(slot.ifindex, slot.direction, p, slot.ifname);
}

function ifname(slot: HookSlot): { ifname?: string } {
  return slot.ifname === undefined ? {} : { ifname: slot.ifname };
}
