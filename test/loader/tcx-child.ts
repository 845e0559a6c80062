/**
 * Run by tcx.test.ts inside the network namespace holding interface `argv[2]` (nsenter): attaches
 * skn_from_pod of a private datapath with tcx, checks query, replace and detach, and pings through
 * the hook (the command in argv[3..]) with and without the program. Prints one JSON line.
 */
import { spawnSync } from "node:child_process";
import { interfaceIndex, tcxAttach, tcxDetach, tcxQuery } from "../../loader/index.js";
import { PrivateDatapath } from "../../agent/datapath/private.js";
import { PROGRAMS } from "../../maps/pins.js";

const [ifname, ...ping] = process.argv.slice(2);
if (ifname === undefined || ping.length === 0) throw new Error("usage: tcx-child IFNAME PING-COMMAND...");
const ifindex = interfaceIndex(ifname);
if (ifindex === undefined) throw new Error(`no interface ${ifname}`);
using a = PrivateDatapath.load({});
using b = PrivateDatapath.load({});
const progA = a.programs[PROGRAMS.fromPod];
const progB = b.programs[PROGRAMS.fromPod];
const pings = () => spawnSync(ping[0]!, ping.slice(1), { stdio: "ignore" }).status === 0;
const dropped = (dp: PrivateDatapath) => Number(dp.metrics.get("drop_spoofed", "egress").packets);

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
