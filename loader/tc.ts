/**
 * TC clsact hooks and direct-action cls_bpf filters (what `tc filter show` lists). The filter
 * lives in the kernel, not in a file descriptor: attaching is a step with its own value type.
 * All calls act in the calling thread's network namespace.
 */
import { SysError, check } from "./errors.js";
import { libbpf, sizeOf, tcHook, tcOpts } from "./ffi.js";
import { withLibbpfLog } from "./log.js";
import type { Program } from "./program.js";

export type TcDirection = "ingress" | "egress";

const attachPoint: Record<TcDirection, number> = { ingress: 1, egress: 2 };
const BPF_TC_INGRESS_EGRESS = 3;
const BPF_TC_F_REPLACE = 1;

/** Where a filter sits: one (interface, direction, handle, priority). */
export interface TcSlot {
  ifindex: number;
  direction: TcDirection;
  handle: number;
  priority: number;
}

/** A filter attached by us. Plain data: the kernel keeps it until detached or the link is gone. */
export interface TcFilter extends TcSlot {
  progId: number;
}

/** Runs a tc call with libbpf's printing captured: "no qdisc" and "exists" are answers, not news. */
function quietly(fn: () => number): number {
  const out = withLibbpfLog(fn);
  if ("error" in out) throw out.error;
  return out.result;
}

/** bpf_tc_opts naming a slot, with no program: what detach and query take. */
function slotOpts(slot: TcSlot) {
  return {
    sz: sizeOf(tcOpts),
    prog_fd: 0,
    flags: 0,
    prog_id: 0,
    handle: slot.handle,
    priority: slot.priority,
  };
}

function hook(ifindex: number, point: number) {
  return { sz: sizeOf(tcHook), ifindex, attach_point: point, parent: 0 };
}

function label(slot: { ifindex: number; direction?: TcDirection }, ifname?: string): string {
  return `${ifname ?? `ifindex ${slot.ifindex}`}${slot.direction === undefined ? "" : ` ${slot.direction}`}`;
}

/** Creates the clsact qdisc on an interface; a qdisc already there is fine. Throws SysError. */
export function ensureClsact(ifindex: number, ifname?: string): void {
  const ret = quietly(() => libbpf().bpf_tc_hook_create(hook(ifindex, BPF_TC_INGRESS_EGRESS)) as number);
  if (ret === -17 /* EEXIST */) return;
  check(ret, "create clsact qdisc", label({ ifindex }, ifname));
}

/** Removes the clsact qdisc and every filter on it; absent interface or qdisc is fine. */
export function destroyClsact(ifindex: number, ifname?: string): void {
  const ret = quietly(() => libbpf().bpf_tc_hook_destroy(hook(ifindex, BPF_TC_INGRESS_EGRESS)) as number);
  if (ret === -2 || ret === -19 /* ENODEV */ || ret === -22 /* EINVAL: no qdisc */) return;
  check(ret, "destroy clsact qdisc", label({ ifindex }, ifname));
}

/**
 * Attaches `program` as a direct-action filter. With `replace`, an existing filter in the same slot
 * is swapped atomically (the interface is never without a program); without it, an occupied slot
 * fails with EEXIST. Throws SysError naming the interface and direction.
 */
export function tcAttach(
  slot: TcSlot,
  program: Program,
  options: { replace?: boolean; ifname?: string } = {},
): TcFilter {
  const opts = {
    ...slotOpts(slot),
    prog_fd: program.fd,
    flags: options.replace === true ? BPF_TC_F_REPLACE : 0,
  };
  const ret = libbpf().bpf_tc_attach(hook(slot.ifindex, attachPoint[slot.direction]), opts) as number;
  if (ret < 0) throw new SysError(`attach tc ${program.name}`, -ret, label(slot, options.ifname));
  return { ...slot, progId: opts.prog_id };
}

/** Removes the filter in `slot`. Returns false when there was none (or no such interface). */
export function tcDetach(slot: TcSlot, ifname?: string): boolean {
  const opts = slotOpts(slot);
  const ret = quietly(
    () => libbpf().bpf_tc_detach(hook(slot.ifindex, attachPoint[slot.direction]), opts) as number,
  );
  if (ret === -2 || ret === -19 || ret === -22) return false;
  check(ret, "detach tc filter", label(slot, ifname));
  return true;
}

/** The program id in `slot`, or undefined when the slot (or the interface) is empty. */
export function tcQuery(slot: TcSlot, ifname?: string): number | undefined {
  const opts = slotOpts(slot);
  const ret = quietly(
    () => libbpf().bpf_tc_query(hook(slot.ifindex, attachPoint[slot.direction]), opts) as number,
  );
  if (ret === -2 || ret === -19 || ret === -22) return undefined;
  check(ret, "query tc filter", label(slot, ifname));
  return opts.prog_id;
}
