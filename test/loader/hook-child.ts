/**
 * Run by hook.test.ts inside the network namespace holding interface `argv[2]` (nsenter): a Skein
 * program on a cls_bpf filter, moved to tcx by the next attach, replaced, detached; pings through
 * the hook (the command in argv[3..]) at every step. Prints one JSON line.
 */
import { hookAttach, hookDetach, hookQuery, tcQuery, tcxQuery } from "../../loader/index.js";
import { SKEIN_HOOKS, TC_HANDLE, TC_PRIORITY } from "../../maps/pins.js";
import { childSetup } from "./hook-fixture.js";

const { ifname, ifindex, a, b, progA, progB, pings, dropped } = childSetup("hook-child");
using _a = a;
using _b = b;
const slot = { ifindex, direction: "ingress" as const, ifname };
const owner = SKEIN_HOOKS;
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
