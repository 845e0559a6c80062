/**
 * The real node: rtnetlink in-process (loader/netlink.ts) for links, addresses, routes and
 * neighbours, with the pod side reached through a socket opened inside CNI_NETNS (setns on this
 * thread, then straight back); libbpf through loader/ for TC hooks and the endpoints map. No child
 * process on any verb: each one costs milliseconds, a netlink round trip microseconds. Acts in the
 * plugin's own network namespace: the one the runtime runs it in.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  DisposalStack,
  Netns,
  Program,
  Rtnetlink,
  SysError,
  destroyClsact,
  filesystemType,
  hookAttach,
  hookDetach,
  hookQuery,
  interfaceIndex,
  type NlLink,
  type NlNeighbour,
  type NlRoute,
  type TcDirection,
} from "../loader/index.js";
import { EndpointsMap, ENDPOINTS_MAP, type Endpoint } from "../maps/endpoints.js";
import { PROGRAMS, SKEIN_HOOKS, pinPath } from "../maps/pins.js";
import { CniError, ErrorCode, describe } from "./errors.js";

import type {
  AttachedPrograms,
  Kernel,
  LinkState,
  NeighbourState,
  NetnsState,
  PodDatapath,
  PodWiring,
  RouteState,
  SideView,
} from "./kernel.js";
import { GATEWAY_IP } from "./names.js";

const NSFS_MAGIC = 0x6e736673;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_UNIVERSE = 0;
const NUD_PERMANENT = 0x80;
const SCOPE_NAMES: Record<number, string> = { 200: "site", 253: "link", 254: "host", 255: "nowhere" };

/** Pins the CNI opens: both pod programs and the endpoints map. */
export const REQUIRED_PINS = [PROGRAMS.fromPod, PROGRAMS.toPod, ENDPOINTS_MAP] as const;

function toLink(l: NlLink): LinkState {
  return { ifindex: l.ifindex, mac: l.mac, mtu: l.mtu, up: l.up };
}

/** A route the way `ip -j route` prints it: "default", host routes without "/32", scope by name. */
function toRoute(r: NlRoute, names: ReadonlyMap<number, string>): RouteState {
  const route: RouteState = {
    dst: r.dstLen === 0 ? "default" : r.dstLen === 32 ? r.dst : `${r.dst}/${r.dstLen}`,
  };
  if (r.gateway !== undefined) route.gateway = r.gateway;
  if (r.oif !== undefined) route.dev = names.get(r.oif) ?? `if${r.oif}`;
  const scope = SCOPE_NAMES[r.scope];
  if (scope !== undefined) route.scope = scope;
  return route;
}

function toNeighbour(n: NlNeighbour): NeighbourState {
  const out: NeighbourState = { ip: n.ip, permanent: (n.state & NUD_PERMANENT) !== 0 };
  if (n.mac !== undefined) out.mac = n.mac;
  return out;
}

/** Opens CNI_NETNS. Throws CniError 102 naming it. */
function openPodNetns(path: string): Netns {
  try {
    return Netns.open(path);
  } catch (err) {
    throw new CniError(ErrorCode.interfaceFailure, `cannot open network namespace ${path}`, describe(err), {
      cause: err,
    });
  }
}

/** Opens an rtnetlink socket inside the pod's namespace. Throws CniError 102. */
function podNetlink(ns: Netns): Rtnetlink {
  try {
    return Rtnetlink.openIn(ns);
  } catch (err) {
    throw new CniError(
      ErrorCode.interfaceFailure,
      `cannot enter network namespace ${ns.path}`,
      describe(err),
      {
        cause: err,
      },
    );
  }
}

class PinnedPodDatapath implements PodDatapath {
  readonly #stack: DisposalStack;
  readonly #fromPod: Program;
  readonly #toPod: Program;
  readonly #endpoints: EndpointsMap;

  constructor(stack: DisposalStack, fromPod: Program, toPod: Program, endpoints: EndpointsMap) {
    this.#stack = stack;
    this.#fromPod = fromPod;
    this.#toPod = toPod;
    this.#endpoints = endpoints;
  }

  attach(ifindex: number, ifname: string): void {
    for (const [direction, program] of [
      ["ingress", this.#fromPod],
      ["egress", this.#toPod],
    ] as const) {
      hookAttach({ ifindex, direction, ifname }, program, SKEIN_HOOKS);
    }
  }

  detach(ifindex: number, ifname: string): void {
    for (const direction of ["ingress", "egress"] as const)
      hookDetach({ ifindex, direction, ifname }, SKEIN_HOOKS);
    destroyClsact(ifindex, ifname);
  }

  attached(ifindex: number, ifname: string): AttachedPrograms {
    const out: AttachedPrograms = {};
    for (const direction of ["ingress", "egress"] as TcDirection[]) {
      const id = hookQuery({ ifindex, direction, ifname }, SKEIN_HOOKS)?.progId;
      if (id === undefined) continue;
      const program = Program.fromId(id);
      try {
        out[direction] = program.name;
      } finally {
        program.close();
      }
    }
    return out;
  }

  endpoint(ip: string): Endpoint | undefined {
    return this.#endpoints.get(ip);
  }

  setEndpoint(ip: string, endpoint: Endpoint): void {
    this.#endpoints.set(ip, endpoint);
  }

  deleteEndpoint(ip: string): boolean {
    return this.#endpoints.delete(ip);
  }

  endpoints(): [string, Endpoint][] {
    return [...this.#endpoints.entries()];
  }

  close(): void {
    this.#stack.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The Kernel of the node the plugin runs on. Holds nothing open between calls; stateless. */
export class LinuxKernel implements Kernel {
  uplinkMtu(): number | undefined {
    try {
      using nl = Rtnetlink.open();
      const oif = nl.routes().find((r) => r.dstLen === 0 && r.oif !== undefined)?.oif;
      if (oif === undefined) return undefined;
      const mtu = nl.links().find((l) => l.ifindex === oif)?.mtu;
      return mtu === undefined || mtu === 0 ? undefined : mtu;
    } catch (err) {
      throw new CniError(ErrorCode.interfaceFailure, "cannot read the default route", describe(err), {
        cause: err,
      });
    }
  }

  netnsState(path: string): NetnsState {
    let st;
    try {
      st = statSync(path);
    } catch {
      return "missing";
    }
    try {
      if (filesystemType(path) !== NSFS_MAGIC) return "not-netns";
    } catch {
      return "missing";
    }
    const own = statSync("/proc/self/ns/net");
    return own.dev === st.dev && own.ino === st.ino ? "own" : "ok";
  }

  linkIndex(name: string): number | undefined {
    return interfaceIndex(name);
  }

  linkNames(): string[] {
    // /proc/net follows the reading thread's network namespace (unlike /sys/class/net).
    return readFileSync("/proc/net/dev", "utf8")
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0]?.trim() ?? "")
      .filter((n) => n !== "");
  }

  createHostSide(w: PodWiring): void {
    using podNs = openPodNetns(w.netns);
    using nl = Rtnetlink.open();
    try {
      nl.createVeth(
        { name: w.hostIfname, mac: w.hostMac, mtu: w.mtu },
        { name: w.podIfname, mac: w.podMac, mtu: w.mtu, netnsFd: podNs.fd },
      );
    } catch (err) {
      // The host name was free a moment ago (ADD checked): EEXIST is the pod's interface name.
      if (err instanceof SysError && err.code === "EEXIST" && nl.link(w.hostIfname) === undefined)
        throw new CniError(
          ErrorCode.interfaceFailure,
          `interface ${w.podIfname} already exists in ${w.netns}`,
          describe(err),
          { cause: err },
        );
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot create veth pair ${w.hostIfname}/${w.podIfname}`,
        describe(err),
        { cause: err },
      );
    }
    try {
      const host = nl.link(w.hostIfname);
      if (host === undefined) throw new Error(`${w.hostIfname} vanished right after it was created`);
      nl.setLink(host.ifindex, w.hostIfname, { up: true });
      nl.addRoute({ dst: w.podIp, dstLen: 32, oif: host.ifindex, scope: RT_SCOPE_LINK }, w.hostIfname);
      nl.replaceNeighbour(host.ifindex, w.hostIfname, w.podIp, w.podMac);
    } catch (err) {
      // The pair exists: take it away again so this step is all or nothing.
      let cleanup = "";
      try {
        nl.deleteLink(w.hostIfname);
      } catch (undoErr) {
        cleanup = `; removing ${w.hostIfname} failed too: ${describe(undoErr)}`;
      }
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot set up host side ${w.hostIfname}`,
        describe(err) + cleanup,
        { cause: err },
      );
    }
  }

  configurePodSide(w: PodWiring): void {
    using podNs = openPodNetns(w.netns);
    using nl = podNetlink(podNs);
    try {
      const pod = nl.link(w.podIfname);
      if (pod === undefined) throw new Error(`${w.podIfname} is missing`);
      const dev = w.podIfname;
      nl.setLink(pod.ifindex, dev, { up: true });
      nl.addAddress(pod.ifindex, dev, w.podIp, 32);
      nl.addRoute({ dst: GATEWAY_IP, dstLen: 32, oif: pod.ifindex, scope: RT_SCOPE_LINK }, dev);
      nl.addRoute(
        { dst: "0.0.0.0", dstLen: 0, gateway: GATEWAY_IP, oif: pod.ifindex, scope: RT_SCOPE_UNIVERSE },
        dev,
      );
      nl.replaceNeighbour(pod.ifindex, dev, GATEWAY_IP, w.hostMac);
    } catch (err) {
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot configure ${w.podIfname} in ${w.netns}`,
        describe(err),
        { cause: err },
      );
    }
  }

  deleteLink(name: string): boolean {
    try {
      using nl = Rtnetlink.open();
      return nl.deleteLink(name);
    } catch (err) {
      throw new CniError(ErrorCode.interfaceFailure, `cannot delete ${name}`, describe(err), { cause: err });
    }
  }

  async deleteLinkAsync(name: string): Promise<boolean> {
    // A socket of its own: the other one may be busy on this thread meanwhile.
    const nl = Rtnetlink.open();
    try {
      return await nl.deleteLinkOnWorker(name);
    } catch (err) {
      throw new CniError(ErrorCode.interfaceFailure, `cannot delete ${name}`, describe(err), { cause: err });
    } finally {
      nl.close();
    }
  }

  missingPins(root: string): string[] {
    return REQUIRED_PINS.filter((name) => !existsSync(pinPath(root, name)));
  }

  openDatapath(root: string): PodDatapath {
    const stack = new DisposalStack();
    try {
      const fromPod = stack.use(Program.openPinned(pinPath(root, PROGRAMS.fromPod)));
      const toPod = stack.use(Program.openPinned(pinPath(root, PROGRAMS.toPod)));
      const endpoints = stack.use(EndpointsMap.openPinned(root));
      return new PinnedPodDatapath(stack, fromPod, toPod, endpoints);
    } catch (err) {
      stack.dispose();
      if (err instanceof SysError && err.code === "ENOENT")
        throw new CniError(
          ErrorCode.tryAgainLater,
          `Skein datapath is not loaded under ${root}`,
          describe(err),
          { cause: err },
        );
      throw new CniError(
        ErrorCode.datapathFailure,
        `cannot open the Skein datapath under ${root}`,
        describe(err),
        { cause: err },
      );
    }
  }

  inspectHost(hostIfname: string, podIp: string): SideView {
    try {
      using nl = Rtnetlink.open();
      return inspect(nl, hostIfname, (r) => r.dstLen === 32 && r.dst === podIp);
    } catch (err) {
      throw new CniError(ErrorCode.interfaceFailure, `cannot inspect ${hostIfname}`, describe(err), {
        cause: err,
      });
    }
  }

  inspectPod(netns: string, podIfname: string): SideView {
    using podNs = openPodNetns(netns);
    using nl = podNetlink(podNs);
    try {
      return inspect(nl, podIfname, () => true);
    } catch (err) {
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot inspect ${podIfname} in ${netns}`,
        describe(err),
        { cause: err },
      );
    }
  }
}

/** A link with its addresses, the routes `wanted` picks and its neighbours; empty when the link is gone. */
function inspect(nl: Rtnetlink, ifname: string, wanted: (r: NlRoute) => boolean): SideView {
  const link = nl.link(ifname);
  if (link === undefined) return { addresses: [], routes: [], neighbours: [] };
  const names = new Map(nl.links().map((l) => [l.ifindex, l.name]));
  return {
    link: toLink(link),
    addresses: nl.addresses(link.ifindex).map((a) => `${a.address}/${a.prefixlen}`),
    routes: nl
      .routes()
      .filter(wanted)
      .map((r) => toRoute(r, names)),
    neighbours: nl.neighbours(link.ifindex).map(toNeighbour),
  };
}
