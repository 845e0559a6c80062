/**
 * Skein's programs on the interface hooks of a network namespace (tcx or cls_bpf), read with the
 * loader in a child process entered into it: hook queries act in the caller's namespace, and tcx
 * attachments do not show in Debian 12's `tc filter show` or `bpftool net show`.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

export interface HookEntry {
  kind: "tcx" | "tc";
  progId: number;
  program: string;
}

/** "IFNAME DIRECTION" → what runs there, for every hook with a Skein program in `netns`. */
export function hooksIn(netns: string): Map<string, HookEntry> {
  const loader = join(process.cwd(), "dist/loader/index.js");
  const pins = join(process.cwd(), "dist/maps/pins.js");
  const out = execFileSync(
    "nsenter",
    [
      `--net=/var/run/netns/${netns}`,
      process.execPath,
      "-e",
      `
      Promise.all([import(${JSON.stringify(loader)}), import(${JSON.stringify(pins)})]).then(async ([l, p]) => {
        const res = {};
        for (const link of await l.listLinks())
          for (const d of ["ingress", "egress"]) {
            const h = l.hookQuery({ ifindex: link.ifindex, direction: d, ifname: link.ifname }, p.SKEIN_HOOKS);
            if (h === undefined) continue;
            const prog = l.Program.fromId(h.progId);
            res[link.ifname + " " + d] = { kind: h.kind, progId: h.progId, program: prog.name };
            prog.close();
          }
        process.stdout.write(JSON.stringify(res));
      });`,
    ],
    { encoding: "utf8" },
  );
  return new Map(Object.entries(JSON.parse(out) as Record<string, HookEntry>));
}
