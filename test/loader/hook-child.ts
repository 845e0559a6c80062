/**
 * Run by hook.test.ts inside the network namespace holding interface `argv[2]` (nsenter): a Skein
 * program on a cls_bpf filter, moved to tcx by the next attach, replaced, detached; pings through
 * the hook (the command in argv[3..]) at every step. Prints one JSON line.
 */
import { spawnSync } from "node:child_process";
import { hookAttach, hookDetach, hookQuery, interfaceIndex, tcQuery, tcxQuery } from "../../loader/index.js";
import { PrivateDatapath } from "../../agent/datapath/private.js";
import { PROGRAMS, TC_HANDLE, TC_PRIORITY } from "../../maps/pins.js";

const [ifname, ...ping] = process.argv.slice(2);
if (ifname === undefined || ping.length === 0) throw new Error("usage: hook-child IFNAME PING-COMMAND...");
const ifindex = interfaceIndex(ifname);
if (ifindex === undefined) throw new Error(`no interface ${ifname}`);
const slot = { ifindex, direction: "ingress" as const, ifname };
const owner = { owns: (name: string) => name.startsWith("skn_"), handle: TC_HANDLE, priority: TC_PRIORITY };
using a = PrivateDatapath.load({});
using b = PrivateDatapath.load({});
const progA = a.programs[PROGRAMS.fromPod];
const progB = b.programs[PROGRAMS.fromPod];
const pings = () => spawnSync(ping[0]!, ping.slice(1), { stdio: "ignore" }).status === 0;
const dropped = (dp: PrivateDatapath) => Number(dp.metrics.get("drop_spoofed", "egress").packets);
const tcSlot = () =>
  tcQuery({ ifindex, direction: "ingress", handle: TC_HANDLE, priority: TC_PRIORITY }, ifname) ?? null;
const state = () => ({
  query: hookQuery(slot, owner) ?? null,
  tcx: tcxQuery(ifindex, "ingress", ifname),
  tc: tcSlot(),
  ping: pings(),
});

const steps: Record<string, unknown> = {};
// First with nothing attached: traffic flows, and the neighbour entry is resolved (the program
// drops ARP that is not for the pod gateway, so it would count drop_arp instead).
steps.before = state();
steps.asTc = { hooked: hookAttach(slot, progA, owner, { kind: "tc" }), ...state(), droppedA: dropped(a) };
steps.moved = { hooked: hookAttach(slot, progB, owner), ...state(), droppedB: dropped(b) };
steps.replaced = { hooked: hookAttach(slot, progA, owner), ...state() };
steps.detached = { removed: hookDetach(slot, owner), ...state() };
steps.again = { removed: hookDetach(slot, owner) };
process.stdout.write(JSON.stringify({ ids: { a: progA.info().id, b: progB.info().id }, steps }) + "\n");
