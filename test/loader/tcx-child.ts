/**
 * Run by tcx.test.ts inside the network namespace holding interface `argv[2]` (nsenter): attaches
 * skn_from_pod of a private datapath with tcx, checks query, replace and detach, and pings through
 * the hook (the command in argv[3..]) with and without the program. Prints one JSON line.
 */
import { tcxAttach, tcxDetach, tcxQuery } from "../../loader/index.js";
import { childSetup } from "./hook-fixture.js";

const { ifname, ifindex, a, b, progA, progB, pings, dropped } = childSetup("tcx-child");
using _a = a;
using _b = b;

const before = tcxQuery(ifindex, "ingress", ifname);
const pingBefore = pings();
tcxAttach(ifindex, "ingress", progA, { ifname, first: true });
const attached = tcxQuery(ifindex, "ingress", ifname);
const pingAttached = pings();
const droppedA = dropped(a);
let again = "";
try {
  tcxAttach(ifindex, "ingress", progA, { ifname });
} catch (err) {
  again = err instanceof Error ? err.message : String(err);
}
tcxAttach(ifindex, "ingress", progB, { ifname, replace: progA });
const replaced = tcxQuery(ifindex, "ingress", ifname);
const pingReplaced = pings();
const droppedB = dropped(b);
const detachedOld = tcxDetach(ifindex, "ingress", progA, ifname);
const detached = tcxDetach(ifindex, "ingress", progB, ifname);
const after = tcxQuery(ifindex, "ingress", ifname);
const pingAfter = pings();
process.stdout.write(
  JSON.stringify({
    ids: { a: progA.info().id, b: progB.info().id },
    before,
    attached,
    replaced,
    after,
    again,
    detachedOld,
    detached,
    ping: { before: pingBefore, attached: pingAttached, replaced: pingReplaced, after: pingAfter },
    dropped: { a: droppedA, b: droppedB },
  }) + "\n",
);
