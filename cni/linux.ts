/**
 * The real node: iproute2 for links, addresses, routes and neighbours (one process per namespace
 * and step), libbpf through loader/ for TC filters and the endpoints map (in-process, in the
 * plugin's own network namespace: the one the runtime runs it in).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  DisposalStack,
  Program,
  SysError,
  destroyClsact,
  filesystemType,
  hookAttach,
  hookDetach,
  hookQuery,
  interfaceIndex,
  batchArg as q,
  ipBatchSync,
  ipComplaint,
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

/** Pins the CNI opens: both pod programs and the endpoints map. */
export const REQUIRED_PINS = [PROGRAMS.fromPod, PROGRAMS.toPod, ENDPOINTS_MAP] as const;

type Json = Record<string, unknown>;

function parseJsonLines(stdout: string): unknown[][] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const v: unknown = JSON.parse(l);
      return Array.isArray(v) ? (v as unknown[]) : [];
    });
}

function records(list: unknown[] | undefined): Json[] {
  return (list ?? []).filter((x): x is Json => typeof x === "object" && x !== null);
}

function str(o: Json, key: string): string | undefined {
  const v = o[key];
  return typeof v === "string" ? v : undefined;
}

function toLink(o: Json | undefined): LinkState | undefined {
  if (o === undefined) return undefined;
  const flags = Array.isArray(o.flags) ? (o.flags as unknown[]) : [];
  return {
    ifindex: typeof o.ifindex === "number" ? o.ifindex : 0,
    mac: str(o, "address") ?? "",
    mtu: typeof o.mtu === "number" ? o.mtu : 0,
    up: flags.includes("UP"),
  };
}

function toAddresses(o: Json | undefined): string[] {
  const info = records(Array.isArray(o?.addr_info) ? (o.addr_info as unknown[]) : []);
  return info
    .filter((a) => a.family === "inet")
    .map((a) => `${str(a, "local") ?? ""}/${String(a.prefixlen)}`);
}

function toRoutes(list: unknown[] | undefined): RouteState[] {
  return records(list).map((r) => {
    const route: RouteState = { dst: str(r, "dst") ?? "" };
    const gateway = str(r, "gateway");
    const dev = str(r, "dev");
    const scope = str(r, "scope");
    if (gateway !== undefined) route.gateway = gateway;
    if (dev !== undefined) route.dev = dev;
    if (scope !== undefined) route.scope = scope;
    return route;
  });
}

function toNeighbours(list: unknown[] | undefined): NeighbourState[] {
  return records(list).map((n) => {
    const state = Array.isArray(n.state) ? (n.state as unknown[]) : [];
    const neighbour: NeighbourState = { ip: str(n, "dst") ?? "", permanent: state.includes("PERMANENT") };
    const mac = str(n, "lladdr");
    if (mac !== undefined) neighbour.mac = mac;
    return neighbour;
  });
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

/** The Kernel of the node the plugin runs on. Holds nothing open; stateless. */
export class LinuxKernel implements Kernel {
  uplinkMtu(): number | undefined {
    const out = ipBatchSync(["route show default", "link show"], { json: true });
    if (!out.ok)
      throw new CniError(
        ErrorCode.interfaceFailure,
        "cannot read the default route",
        ipComplaint(out.stderr),
      );
    const [routes, links] = parseJsonLines(out.stdout);
    const dev = records(routes)
      .map((r) => str(r, "dev"))
      .find((d) => d !== undefined);
    if (dev === undefined) return undefined;
    const link = records(links).find((l) => l.ifname === dev);
    return typeof link?.mtu === "number" ? link.mtu : undefined;
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
    const host = q(w.hostIfname);
    const out = ipBatchSync([
      `link add ${host} address ${w.hostMac} mtu ${w.mtu} type veth peer name ${q(w.podIfname)} address ${w.podMac} mtu ${w.mtu} netns ${q(w.netns)}`,
      `link set ${host} up`,
      `route add ${w.podIp}/32 dev ${host} scope link`,
      `neigh replace ${w.podIp} lladdr ${w.podMac} dev ${host} nud permanent`,
    ]);
    if (out.ok) return;
    const complaint = ipComplaint(out.stderr);
    if (out.failedLine === undefined || out.failedLine > 1 || this.linkIndex(w.hostIfname) !== undefined) {
      // The pair exists: take it away again so this step is all or nothing.
      let cleanup = "";
      try {
        this.deleteLink(w.hostIfname);
      } catch (err) {
        cleanup = `; removing ${w.hostIfname} failed too: ${describe(err)}`;
      }
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot set up host side ${w.hostIfname}`,
        complaint + cleanup,
      );
    }
    if (/File exists/i.test(complaint))
      throw new CniError(
        ErrorCode.interfaceFailure,
        `interface ${w.podIfname} already exists in ${w.netns}`,
        complaint,
      );
    throw new CniError(
      ErrorCode.interfaceFailure,
      `cannot create veth pair ${w.hostIfname}/${w.podIfname}`,
      complaint,
    );
  }

  configurePodSide(w: PodWiring): void {
    const dev = q(w.podIfname);
    const out = ipBatchSync(
      [
        `link set ${dev} up`,
        `addr add ${w.podIp}/32 dev ${dev}`,
        `route add ${GATEWAY_IP} dev ${dev} scope link`,
        `route add default via ${GATEWAY_IP} dev ${dev}`,
        `neigh replace ${GATEWAY_IP} lladdr ${w.hostMac} dev ${dev} nud permanent`,
      ],
      { netns: w.netns },
    );
    if (!out.ok)
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot configure ${w.podIfname} in ${w.netns}`,
        ipComplaint(out.stderr),
      );
  }

  deleteLink(name: string): boolean {
    if (this.linkIndex(name) === undefined) return false;
    const out = ipBatchSync([`link del ${q(name)}`]);
    if (out.ok) return true;
    if (/Cannot find device|No such device/i.test(out.stderr)) return false;
    throw new CniError(ErrorCode.interfaceFailure, `cannot delete ${name}`, ipComplaint(out.stderr));
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
    if (this.linkIndex(hostIfname) === undefined) return { addresses: [], routes: [], neighbours: [] };
    const dev = q(hostIfname);
    const out = ipBatchSync(
      [`addr show dev ${dev}`, `route show exact ${podIp}/32`, `neigh show dev ${dev}`],
      {
        json: true,
      },
    );
    if (!out.ok)
      throw new CniError(ErrorCode.interfaceFailure, `cannot inspect ${hostIfname}`, ipComplaint(out.stderr));
    const [links, routes, neighbours] = parseJsonLines(out.stdout);
    const link = records(links)[0];
    const view: SideView = {
      addresses: toAddresses(link),
      routes: toRoutes(routes),
      neighbours: toNeighbours(neighbours),
    };
    const state = toLink(link);
    if (state !== undefined) view.link = state;
    return view;
  }

  inspectPod(netns: string, podIfname: string): SideView {
    const dev = q(podIfname);
    const out = ipBatchSync([`addr show dev ${dev}`, `route show`, `neigh show dev ${dev}`], {
      json: true,
      netns,
    });
    if (!out.ok) {
      if (/does not exist|Cannot find device/i.test(out.stderr))
        return { addresses: [], routes: [], neighbours: [] };
      throw new CniError(
        ErrorCode.interfaceFailure,
        `cannot inspect ${podIfname} in ${netns}`,
        ipComplaint(out.stderr),
      );
    }
    const [links, routes, neighbours] = parseJsonLines(out.stdout);
    const link = records(links)[0];
    const view: SideView = {
      addresses: toAddresses(link),
      routes: toRoutes(routes),
      neighbours: toNeighbours(neighbours),
    };
    const state = toLink(link);
    if (state !== undefined) view.link = state;
    return view;
  }
}
