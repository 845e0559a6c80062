/**
 * tcx: BPF programs on an interface's ingress or egress without a qdisc or filter (Linux 6.6+,
 * attach types BPF_TCX_INGRESS/EGRESS), through libbpf 1.1's generic attach, detach and query
 * calls. Like a cls_bpf filter, an attachment lives in the kernel until detached or until the
 * interface is gone; several programs may share a hook, run in order. Acts in the calling thread's
 * network namespace.
 * loader/hook.ts decides between this and a cls_bpf filter.
 */
import { SysError } from "./errors.js";
import { libbpf, progAttachOpts, sizeOf } from "./ffi.js";
import type { Program } from "./program.js";
import type { TcDirection } from "./tc.js";

/** enum bpf_attach_type (Debian 12's uapi headers predate them). */
const attachType: Record<TcDirection, number> = { ingress: 46, egress: 47 };
const BPF_F_REPLACE = 1 << 2;
const BPF_F_BEFORE = 1 << 3;

function label(ifindex: number, direction: TcDirection, ifname?: string): string {
  return `${ifname ?? `ifindex ${ifindex}`} ${direction}`;
}

/**
 * Attaches `program` to the hook. `replace`: swap that attached program for this one in place (the
 * hook never runs without it); otherwise `first` puts it in front of the programs already there, and
 * the default appends it. Throws SysError (EINVAL: a kernel without tcx; EEXIST: already attached).
 */
export function tcxAttach(
  ifindex: number,
  direction: TcDirection,
  program: Program,
  options: { replace?: Program; first?: boolean; ifname?: string } = {},
): void {
  const flags = options.replace !== undefined ? BPF_F_REPLACE : options.first === true ? BPF_F_BEFORE : 0;
  const opts = { sz: sizeOf(progAttachOpts), flags, replace_prog_fd: options.replace?.fd ?? 0 };
  const ret = libbpf().bpf_prog_attach_opts(program.fd, ifindex, attachType[direction], opts) as number;
  if (ret < 0)
    throw new SysError(`attach tcx ${program.name}`, -ret, label(ifindex, direction, options.ifname));
}

/** Detaches `program` from the hook. Returns false when it was not attached there (or no such interface). */
export function tcxDetach(
  ifindex: number,
  direction: TcDirection,
  program: Program,
  ifname?: string,
): boolean {
  const ret = libbpf().bpf_prog_detach2(program.fd, ifindex, attachType[direction]) as number;
  if (ret === -2 /* ENOENT */ || ret === -19 /* ENODEV */) return false;
  if (ret < 0) throw new SysError(`detach tcx ${program.name}`, -ret, label(ifindex, direction, ifname));
  return true;
}

/** Ids of the programs on the hook, in the order they run. Throws SysError (ENODEV: no such interface). */
export function tcxQuery(ifindex: number, direction: TcDirection, ifname?: string): number[] {
  for (let room = 16; ; room *= 4) {
    const ids = Buffer.alloc(room * 4);
    const count = [room];
    const flags = [0];
    const ret = libbpf().bpf_prog_query(ifindex, attachType[direction], 0, flags, ids, count) as number;
    if (ret === -28 /* ENOSPC: more programs than room */ && room < 4096) continue;
    if (ret < 0) throw new SysError("query tcx", -ret, label(ifindex, direction, ifname));
    const n = count[0] ?? 0;
    return Array.from({ length: n }, (_v, i) => ids.readUInt32LE(i * 4));
  }
}
