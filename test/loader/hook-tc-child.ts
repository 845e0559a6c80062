/**
 * Run by hook.test.ts inside the network namespace holding interface `argv[2]` (nsenter): a Skein
 * program on a cls_bpf filter in Skein's slot (forced, so this runs with or without tcx), replaced
 * in place, detached; pings through the hook (the command in argv[3..]) at every step. Prints one
 * JSON line.
 */
import { hookAttach, hookDetach, hookQuery, tcQuery, tcxQuery, tcxSupported } from "../../loader/index.js";
import { SKEIN_HOOKS, TC_HANDLE, TC_PRIORITY } from "../../maps/pins.js";
import { childSetup } from "./hook-fixture.js";

const { ifname, ifindex, a, b, progA, progB, pings, dropped } = childSetup("hook-tc-child");
using _a = a;
using _b = b;
const slot = { ifindex, direction: "ingress" as const, ifname };
const owner = SKEIN_HOOKS;
const state = () => ({
  query: hookQuery(slot, owner) ?? null,
  // Nothing may land on tcx; a kernel without it has nothing to ask.
  tcx: tcxSupported() ? tcxQuery(ifindex, "ingress", ifname) : [],
  tc: tcQuery({ ifindex, direction: "ingress", handle: TC_HANDLE, priority: TC_PRIORITY }, ifname) ?? null,
  ping: pings(),
});

const steps: Record<string, unknown> = {};
steps.before = state();
steps.attached = { hooked: hookAttach(slot, progA, owner, { kind: "tc" }), ...state(), droppedA: dropped(a) };
steps.replaced = { hooked: hookAttach(slot, progB, owner, { kind: "tc" }), ...state(), droppedB: dropped(b) };
steps.detached = { removed: hookDetach(slot, owner), ...state() };
steps.again = { removed: hookDetach(slot, owner) };
process.stdout.write(JSON.stringify({ ids: { a: progA.info().id, b: progB.info().id }, steps }) + "\n");
