/**
 * An in-memory Kernel for unit tests: links, routes, neighbours, TC slots and endpoint entries as
 * plain data, so the verbs' ordering, rollback and idempotence are tested without privileges.
 */
import type { Endpoint } from "../../maps/endpoints.js";
import { PROGRAMS } from "../../maps/pins.js";
import { CniError, ErrorCode } from "../../cni/errors.js";
import type {
  AttachedPrograms,
  Kernel,
  NetnsState,
  PodDatapath,
  PodWiring,
  SideView,
} from "../../cni/kernel.js";
import { GATEWAY_IP } from "../../cni/names.js";

export interface FakeLink {
  ifindex: number;
  wiring: PodWiring;
  hostRoute: boolean;
  hostNeighbour: boolean;
  podConfigured: boolean;
  clsact: boolean;
  attached: AttachedPrograms;
}

export class FakeKernel implements Kernel {
  /** Host veths by name. */
  readonly links = new Map<string, FakeLink>();
  /** Interfaces that already exist in pod namespaces: `${netns}/${ifname}`. */
  readonly occupied = new Set<string>();
  readonly endpointEntries = new Map<string, Endpoint>();
  /** bpffs roots whose datapath is "loaded". */
  readonly loadedRoots = new Set<string>();
  /** Netns paths that do not exist (everything else does). */
  readonly missingNetns = new Set<string>();
  uplink: number | undefined = 1500;
  /** Every mutating call, in order. */
  readonly calls: string[] = [];
  /** Makes the named method throw (once it has been called `after` times). */
  failures = new Map<string, CniError>();
  openDatapaths = 0;
  private nextIndex = 10;

  uplinkMtu(): number | undefined {
    return this.uplink;
  }

  netnsState(path: string): NetnsState {
    return this.missingNetns.has(path) ? "missing" : "ok";
  }

  linkIndex(name: string): number | undefined {
    return this.links.get(name)?.ifindex;
  }

  linkNames(): string[] {
    return ["lo", ...this.links.keys()];
  }

  private maybeFail(method: string): void {
    const err = this.failures.get(method);
    if (err !== undefined) throw err;
  }

  createHostSide(w: PodWiring): void {
    this.calls.push(`createHostSide ${w.hostIfname}`);
    this.maybeFail("createHostSide");
    if (this.occupied.has(`${w.netns}/${w.podIfname}`) || this.links.has(w.hostIfname))
      throw new CniError(ErrorCode.interfaceFailure, `interface ${w.podIfname} already exists in ${w.netns}`);
    this.links.set(w.hostIfname, {
      ifindex: this.nextIndex++,
      wiring: w,
      hostRoute: true,
      hostNeighbour: true,
      podConfigured: false,
      clsact: false,
      attached: {},
    });
  }

  configurePodSide(w: PodWiring): void {
    this.calls.push(`configurePodSide ${w.podIfname}`);
    this.maybeFail("configurePodSide");
    const link = this.links.get(w.hostIfname);
    if (link === undefined) throw new CniError(ErrorCode.interfaceFailure, `no ${w.podIfname}`);
    link.podConfigured = true;
  }

  deleteLink(name: string): boolean {
    this.calls.push(`deleteLink ${name}`);
    this.maybeFail("deleteLink");
    return this.links.delete(name);
  }

  /** Runs deleteLink once the caller yields, as the real one finishes while the caller works on. */
  async deleteLinkAsync(name: string): Promise<boolean> {
    await Promise.resolve();
    return this.deleteLink(name);
  }

  missingPins(root: string): string[] {
    return this.loadedRoots.has(root) ? [] : [PROGRAMS.fromPod, PROGRAMS.toPod, "skn_endpoints"];
  }

  openDatapath(root: string): PodDatapath {
    if (!this.loadedRoots.has(root)) throw new CniError(ErrorCode.tryAgainLater, `not loaded under ${root}`);
    this.maybeFail("openDatapath");
    this.openDatapaths++;
    const linkByIndex = (ifindex: number): FakeLink | undefined =>
      [...this.links.values()].find((l) => l.ifindex === ifindex);
    let closed = false;
    const handle: PodDatapath = {
      attach: (ifindex) => {
        this.calls.push(`attach ${ifindex}`);
        this.maybeFail("attach");
        const link = linkByIndex(ifindex);
        if (link === undefined) throw new Error(`no ifindex ${ifindex}`);
        link.clsact = true;
        link.attached = { ingress: PROGRAMS.fromPod, egress: PROGRAMS.toPod };
      },
      detach: (ifindex) => {
        this.calls.push(`detach ${ifindex}`);
        const link = linkByIndex(ifindex);
        if (link !== undefined) {
          link.clsact = false;
          link.attached = {};
        }
      },
      attached: (ifindex) => ({ ...(linkByIndex(ifindex)?.attached ?? {}) }),
      endpoint: (ip) => this.endpointEntries.get(ip),
      setEndpoint: (ip, e) => {
        this.calls.push(`setEndpoint ${ip}`);
        this.maybeFail("setEndpoint");
        this.endpointEntries.set(ip, e);
      },
      deleteEndpoint: (ip) => {
        this.calls.push(`deleteEndpoint ${ip}`);
        return this.endpointEntries.delete(ip);
      },
      endpoints: () => [...this.endpointEntries.entries()],
      close: () => {
        if (!closed) this.openDatapaths--;
        closed = true;
      },
      [Symbol.dispose]: () => {
        handle.close();
      },
    };
    return handle;
  }

  inspectHost(hostIfname: string, podIp: string): SideView {
    const link = this.links.get(hostIfname);
    if (link === undefined) return { addresses: [], routes: [], neighbours: [] };
    const w = link.wiring;
    return {
      link: { ifindex: link.ifindex, mac: w.hostMac, mtu: w.mtu, up: true },
      addresses: [],
      routes: link.hostRoute && podIp === w.podIp ? [{ dst: w.podIp, dev: hostIfname, scope: "link" }] : [],
      neighbours: link.hostNeighbour ? [{ ip: w.podIp, mac: w.podMac, permanent: true }] : [],
    };
  }

  inspectPod(netns: string, podIfname: string): SideView {
    const link = [...this.links.values()].find(
      (l) => l.wiring.netns === netns && l.wiring.podIfname === podIfname,
    );
    if (link === undefined || !link.podConfigured) return { addresses: [], routes: [], neighbours: [] };
    const w = link.wiring;
    return {
      link: { ifindex: 2, mac: w.podMac, mtu: w.mtu, up: true },
      addresses: [`${w.podIp}/32`],
      routes: [
        { dst: "default", gateway: GATEWAY_IP, dev: podIfname },
        { dst: GATEWAY_IP, dev: podIfname, scope: "link" },
      ],
      neighbours: [{ ip: GATEWAY_IP, mac: w.hostMac, permanent: true }],
    };
  }
}
