/**
 * What the loader's hook tests share. In the test: two network namespaces of its own joined by a
 * veth pair (useVethPair), and a child run inside the second one (runInPeer). In the child
 * (childSetup): the interface, two private datapaths whose skn_from_pod drops every packet as
 * spoofed (they know no endpoint), a ping through the hook and the drop counter.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { interfaceIndex, ip, type Program } from "../../loader/index.js";
import { PrivateDatapath } from "../../maps/datapath/private.js";
import { PROGRAMS } from "../../maps/pins.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

/** Registers before/after hooks making `a` (address .1) in one namespace and `b` (.2) in another. */
export function useVethPair(prefix: string, a: string, b: string, net: string): { nsA: string; nsB: string } {
  const names = { nsA: uniqueName(`${prefix}a`), nsB: uniqueName(`${prefix}b`) };
  before(async function () {
    requireRoot(this);
    await ip(["netns", "add", names.nsA]);
    await ip(["netns", "add", names.nsB]);
    await ip(["-n", names.nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", names.nsB]);
    await ip(["-n", names.nsA, "addr", "add", `${net}.1/30`, "dev", a]);
    await ip(["-n", names.nsB, "addr", "add", `${net}.2/30`, "dev", b]);
    await ip(["-n", names.nsA, "link", "set", a, "up"]);
    await ip(["-n", names.nsB, "link", "set", b, "up"]);
  });
  after(async function () {
    for (const ns of [names.nsA, names.nsB]) await ip(["netns", "del", ns]).catch(() => undefined);
  });
  return names;
}

/** Runs dist/test/loader/`child` in nsB on interface `b`, pinging nsB's address from nsA; its JSON line. */
export function runInPeer(
  child: string,
  pair: { nsA: string; nsB: string },
  b: string,
  net: string,
): unknown {
  const script = resolve(fileURLToPath(import.meta.url), "..", child);
  const ping = ["nsenter", `--net=/var/run/netns/${pair.nsA}`, "ping", "-c", "1", "-W", "1", `${net}.2`];
  const out = execFileSync(
    "nsenter",
    [`--net=/var/run/netns/${pair.nsB}`, process.execPath, script, b, ...ping],
    {
      encoding: "utf8",
    },
  );
  return JSON.parse(out);
}

export interface ChildSetup {
  ifname: string;
  ifindex: number;
  a: PrivateDatapath;
  b: PrivateDatapath;
  progA: Program;
  progB: Program;
  pings: () => boolean;
  dropped: (dp: PrivateDatapath) => number;
}

/** In the child: argv IFNAME PING-COMMAND..., two private datapaths (the caller closes them). */
export function childSetup(name: string): ChildSetup {
  const [ifname, ...ping] = process.argv.slice(2);
  if (ifname === undefined || ping.length === 0) throw new Error(`usage: ${name} IFNAME PING-COMMAND...`);
  const ifindex = interfaceIndex(ifname);
  if (ifindex === undefined) throw new Error(`no interface ${ifname}`);
  const a = PrivateDatapath.load({});
  const b = PrivateDatapath.load({});
  return {
    ifname,
    ifindex,
    a,
    b,
    progA: a.programs[PROGRAMS.fromPod],
    progB: b.programs[PROGRAMS.fromPod],
    pings: () => spawnSync(ping[0]!, ping.slice(1), { stdio: "ignore" }).status === 0,
    dropped: (dp) => Number(dp.metrics.get("drop_spoofed", "egress").packets),
  };
}
