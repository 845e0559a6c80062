/**
 * What the verbs need from the node: links, addresses, routes, neighbours, TC filters and the
 * endpoints map. `LinuxKernel` (linux.ts) does it for real; unit tests substitute a fake, so the
 * verbs' ordering, undo and error handling are tested without privileges.
 */
import type { Endpoint } from "../maps/endpoints.js";

/** Everything ADD decides before it touches the kernel. */
export interface PodWiring {
  hostIfname: string;
  hostMac: string;
  /** CNI_IFNAME inside the pod. */
  podIfname: string;
  podMac: string;
  /** CNI_NETNS. */
  netns: string;
  mtu: number;
  podIp: string;
}

/** A link as the kernel reports it. */
export interface LinkState {
  ifindex: number;
  mac: string;
  mtu: number;
  /** Administratively up. */
  up: boolean;
}

/** A route as the kernel reports it, written the way `ip -j route` prints it. */
export interface RouteState {
  /** "default" or an address/prefix as iproute2 prints it (host routes without "/32"). */
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
}

/** A neighbour entry as the kernel reports it. */
export interface NeighbourState {
  ip: string;
  mac?: string;
  permanent: boolean;
}

/** One side of an attachment as the kernel has it. `link` is undefined when the interface is gone. */
export interface SideView {
  link?: LinkState;
  /** Addresses in CIDR notation (IPv4 only). */
  addresses: string[];
  routes: RouteState[];
  neighbours: NeighbourState[];
}

/** Skein's programs on an interface's hooks: program names, undefined for none. */
export interface AttachedPrograms {
  ingress?: string;
  egress?: string;
}

/** The pinned datapath as the CNI uses it. Owns program and map fds: close it. */
export interface PodDatapath extends Disposable {
  /** Attaches skn_from_pod (ingress) and skn_to_pod (egress): tcx, or cls_bpf in Skein's slot. */
  attach(ifindex: number, ifname: string): void;
  /** Removes Skein's programs (and a clsact qdisc); an absent link or qdisc is fine. */
  detach(ifindex: number, ifname: string): void;
  attached(ifindex: number, ifname: string): AttachedPrograms;
  endpoint(ip: string): Endpoint | undefined;
  setEndpoint(ip: string, endpoint: Endpoint): void;
  /** Returns false when there was no entry. */
  deleteEndpoint(ip: string): boolean;
  endpoints(): [string, Endpoint][];
  close(): void;
}

/** How a CNI_NETNS path looks from here. */
export type NetnsState = "ok" | "missing" | "not-netns" | "own";

/**
 * The node operations the verbs use; acts in the calling process's network namespace (pod-side
 * ones enter CNI_NETNS). Holds nothing open itself; openDatapath hands out an owner to close.
 */
export interface Kernel {
  /** MTU of the device holding the default route in this netns; undefined without one. */
  uplinkMtu(): number | undefined;
  /** Whether `path` is a network namespace other than the plugin's own. */
  netnsState(path: string): NetnsState;
  /** ifindex of a link in this netns, or undefined. */
  linkIndex(name: string): number | undefined;
  /** Names of every link in this netns. */
  linkNames(): string[];
  /**
   * Creates the veth pair (peer directly inside the pod netns, named podIfname), brings the host
   * side up, adds the host route and the permanent neighbour entry. Either all of it or nothing:
   * on failure the half-made link is removed before the CniError (102) is thrown.
   */
  createHostSide(wiring: PodWiring): void;
  /** Inside the pod: link up, address, gateway and default routes, permanent gateway neighbour. Throws CniError 102. */
  configurePodSide(wiring: PodWiring): void;
  /** Deletes a link in this netns (its veth peer, routes and neighbours go with it). False when absent. */
  deleteLink(name: string): boolean;
  /**
   * deleteLink, settling later: the kernel's part (a veth's removal waits for RCU, tens of ms) runs
   * off the JavaScript thread, so the caller can do other work meanwhile. Rejects with CniError 102.
   */
  deleteLinkAsync(name: string): Promise<boolean>;
  /** Pins under `root` the CNI needs that are missing (empty when the datapath is loaded). */
  missingPins(root: string): string[];
  /** Opens the pinned programs and endpoints map. Throws CniError 11 when not pinned, 100 otherwise. */
  openDatapath(root: string): PodDatapath;
  /** The host side of an attachment. Throws CniError 102 when it cannot be read. */
  inspectHost(hostIfname: string, podIp: string): SideView;
  /** The pod side of an attachment. Throws CniError 102 when it cannot be read. */
  inspectPod(netns: string, podIfname: string): SideView;
}
