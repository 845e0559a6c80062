/**
 * A NodeDatapath without a kernel: records every call in order (with whether the agent was ready
 * at that moment), keeps skn_config, the conflist and the ipcache/policy maps in memory, and throws
 * injected errors on demand.
 */
import type { NodeRoute, OverlayDevice } from "../../maps/agent-api.js";
import { parsePrefix } from "../../maps/net.js";
import type { RoutedNode } from "../../agent/node/native-routes.js";
import type { ConflistInput } from "../../maps/cni-conflist.js";
import { vxlanMacFor, type NodeConfig } from "../../maps/config.js";
import type { PinnedLoadReport } from "../../maps/datapath/pinned.js";
import { ipcacheKeyString, type IpcacheEntry } from "../../maps/ipcache.js";
import type { Prefix } from "../../maps/net.js";
import { policyKeyString, type PolicyEntry, type PolicyKey } from "../../maps/policy.js";
import { lbBackendKeyString, type LbBackendEntry } from "../../maps/lb-backend.js";
import { lbMaglevKeyString, type LbMaglevEntry } from "../../maps/lb-maglev.js";
import { lbRevnatKeyString, type LbRevnatEntry } from "../../maps/lb-revnat.js";
import { lbSlotKeyString, type LbSlotEntry, type LbSlotKey } from "../../maps/lb-slot.js";
import { lbSvcKeyString, type LbSvcEntry, type LbSvcKey } from "../../maps/lb-svc.js";
import { FakeMapPort } from "../../maps/reconciler.js";
import type { DatapathMaps, MovedAttachment, NodeDatapath, Uplink } from "../../agent/node-datapath.js";

export interface Call {
  /** Method and its main arguments, e.g. `ensureMasquerade 10.244.0.0/24`. */
  what: string;
  /** What `ready()` said when the call was made. */
  ready: boolean;
}

/** A FakeMapPort that records its writes among the datapath's calls and throws injected errors. */
export class RecordingPort<K, V> extends FakeMapPort<K, V> {
  readonly #name: string;
  readonly #record: (what: string) => void;
  readonly #keyOf: (k: K) => string;
  /** While set, every write throws it. */
  failing: Error | undefined;

  constructor(name: string, keyString: (k: K) => string, record: (what: string) => void) {
    super(keyString);
    this.#name = name;
    this.#keyOf = keyString;
    this.#record = record;
  }

  #fail(): void {
    if (this.failing !== undefined) throw this.failing;
  }

  override set(key: K, value: V): void {
    this.#fail();
    this.#record(`${this.#name} set ${this.#keyOf(key)}`);
    super.set(key, value);
  }

  override delete(key: K): boolean {
    this.#fail();
    this.#record(`${this.#name} delete ${this.#keyOf(key)}`);
    return super.delete(key);
  }

  get(key: string): V | undefined {
    return this.entriesByKey.get(key)?.[1];
  }
}

/** What a test may make fail: the datapath's methods and the maps' own. */
export type Method = keyof NodeDatapath | "writeConfig" | "closeMaps";

export interface FakeOptions {
  /** The node's addresses; the uplink is the interface holding them. */
  addresses: string[];
  uplink?: Uplink;
  /** What tunnelEndpointsOnLink answers. */
  onLink?: boolean;
}

export class FakeNodeDatapath implements NodeDatapath {
  readonly calls: Call[] = [];
  /** Each async operation (child processes and netlink on a node) takes this long. */
  asyncDelayMs = 0;
  readonly ipcache: RecordingPort<Prefix, IpcacheEntry>;
  readonly policy: RecordingPort<PolicyKey, PolicyEntry>;
  /** The Service maps. */
  readonly lb: {
    svc: RecordingPort<LbSvcKey, LbSvcEntry>;
    slot: RecordingPort<LbSlotKey, LbSlotEntry>;
    backend: RecordingPort<number, LbBackendEntry>;
    revnat: RecordingPort<number, LbRevnatEntry>;
    maglev: RecordingPort<number, LbMaglevEntry>;
  };
  /** skn_config as last written. */
  config: NodeConfig | undefined;
  /** Every conflist written. */
  readonly conflists: ConflistInput[] = [];
  addresses: string[];
  uplink: Uplink;
  onLink: boolean;
  /** Service load balancing in BPF: the uplink's programs whatever the encap mode. */
  uplinkHooksAlways = false;
  /** Set by the test: the agent's readiness, recorded with each call. */
  ready: () => boolean = () => false;
  mapsOpen = false;
  readonly #failures = new Map<string, Error[]>();

  constructor(options: FakeOptions) {
    this.addresses = options.addresses;
    this.uplink = options.uplink ?? { ifname: "eth0", ifindex: 2, mtu: 1500 };
    this.onLink = options.onLink ?? true;
    const record = (what: string) => {
      this.calls.push({ what, ready: this.ready() });
    };
    this.ipcache = new RecordingPort("ipcache", ipcacheKeyString, record);
    this.policy = new RecordingPort("policy", policyKeyString, record);
    this.lb = {
      svc: new RecordingPort("lb_svc", lbSvcKeyString, record),
      slot: new RecordingPort("lb_slot", lbSlotKeyString, record),
      backend: new RecordingPort("lb_backend", lbBackendKeyString, record),
      revnat: new RecordingPort("lb_revnat", lbRevnatKeyString, record),
      maglev: new RecordingPort("lb_maglev", lbMaglevKeyString, record),
    };
  }

  /** The next `times` calls of `method` throw `err` (after being recorded). */
  failNext(method: Method, err: Error, times = 1): void {
    const list = this.#failures.get(method) ?? [];
    for (let i = 0; i < times; i++) list.push(err);
    this.#failures.set(method, list);
  }

  /** Calls whose description starts with `prefix`. */
  named(prefix: string): Call[] {
    return this.calls.filter((c) => c.what.startsWith(prefix));
  }

  /** Index of the first call starting with `prefix` (-1: none). */
  first(prefix: string): number {
    return this.calls.findIndex((c) => c.what.startsWith(prefix));
  }

  /** Index of the last call starting with `prefix` (-1: none). */
  last(prefix: string): number {
    return this.calls.findLastIndex((c) => c.what.startsWith(prefix));
  }

  #call(method: Method, ...args: (string | number)[]): void {
    this.calls.push({ what: [method, ...args].join(" "), ready: this.ready() });
    const err = this.#failures.get(method)?.shift();
    if (err !== undefined) throw err;
  }

  load(): PinnedLoadReport {
    this.#call("load");
    return { root: "/fake", programs: [], maps: [] };
  }

  moveAttachments(_report: PinnedLoadReport): Promise<MovedAttachment[]> {
    this.#call("moveAttachments");
    return Promise.resolve([]);
  }

  openMaps(): DatapathMaps {
    this.#call("openMaps");
    this.mapsOpen = true;
    return {
      ipcache: this.ipcache,
      policy: this.policy,
      lb: this.lb,
      writeConfig: (config) => {
        this.#call(
          "writeConfig",
          `flags=${config.flags}`,
          `uplink=${config.uplinkIfindex}`,
          `vxlan=${config.vxlanIfindex}`,
        );
        this.config = config;
      },
      metrics: undefined,
      occupancy: () => ({
        endpoints: { entries: 0, capacity: 1024 },
        conntrack: { entries: 0, capacity: 65536 },
      }),
      close: () => {
        this.#call("closeMaps");
        this.mapsOpen = false;
      },
    };
  }

  uplinkFor(nodeIp: string): Promise<Uplink> {
    return this.#async(() => {
      this.#call("uplinkFor", nodeIp);
      if (!this.addresses.includes(nodeIp))
        throw new Error(`no interface in this network namespace has the node address ${nodeIp}`);
      return this.uplink;
    });
  }

  ensureOverlayDevice(opts: {
    ifname: string;
    port: number;
    nodeIp: string;
    uplinkMtu: number;
  }): Promise<OverlayDevice> {
    return this.#async(() => {
      this.#call("ensureOverlayDevice", opts.ifname, opts.nodeIp, opts.port);
      return { ifname: opts.ifname, ifindex: 7, mac: vxlanMacFor(opts.nodeIp), mtu: opts.uplinkMtu - 50 };
    });
  }

  ensureForwardingSysctls(overlayIfname: string): void {
    this.#call("ensureForwardingSysctls", overlayIfname);
  }

  attachOverlayPrograms(ifname: string): void {
    this.#call("attachOverlayPrograms", ifname);
  }

  attachUplinkPrograms(ifname: string, native = false): void {
    if (native) this.#call("attachUplinkPrograms", ifname, "native");
    else this.#call("attachUplinkPrograms", ifname);
  }

  /** What connectedPrefixes answers (the uplink's prefixes). */
  connected: string[] = ["10.0.0.0/24"];

  connectedPrefixes(ifname: string): Promise<Prefix[]> {
    return this.#async(() => {
      this.#call("connectedPrefixes", ifname);
      return this.connected.map((c) => parsePrefix(c));
    });
  }

  syncNativeRoutes(
    uplink: string,
    nodeIp: string,
    direct: readonly RoutedNode[],
    previousNeighbours: readonly string[],
  ): Promise<{ added: string[]; removed: string[]; neighbours: string[] }> {
    return this.#async(() => {
      this.#call(
        "syncNativeRoutes",
        uplink,
        nodeIp,
        direct.map((n) => `${n.podCidr}>${n.internalIp}`).join(","),
        previousNeighbours.join(","),
      );
      return {
        added: direct.map((n) => n.podCidr),
        removed: [],
        neighbours: direct.map((n) => n.internalIp),
      };
    });
  }

  removeNativeRoutes(): Promise<string[]> {
    return this.#async(() => {
      this.#call("removeNativeRoutes");
      return [];
    });
  }

  nodeRoutes(nodes: readonly RoutedNode[], overlayIfname: string): Promise<NodeRoute[]> {
    return this.#async(() =>
      nodes.map((n) => ({
        node: n.name,
        podCidr: n.podCidr,
        via: null,
        dev: overlayIfname,
        protocol: null,
        source: "vxlan" as const,
      })),
    );
  }

  detachUplinkPrograms(ifname: string): void {
    this.#call("detachUplinkPrograms", ifname);
  }

  syncOverlayRoutes(
    ifname: string,
    nodeIp: string,
    podCidrs: readonly string[],
  ): Promise<{ added: string[]; removed: string[] }> {
    return this.#async(() => {
      this.#call("syncOverlayRoutes", ifname, nodeIp, podCidrs.join(","));
      return { added: [...podCidrs], removed: [] };
    });
  }

  tunnelEndpointsOnLink(uplink: string, ips: readonly string[]): Promise<boolean> {
    return this.#async(() => {
      this.#call("tunnelEndpointsOnLink", uplink, ips.join(","));
      return this.onLink;
    });
  }

  ensureMasquerade(
    localPodCidr: string,
    clusterCidrs: readonly string[],
    overlayIfname: string,
    vxlanPort: number,
  ): Promise<void> {
    return this.#async(() => {
      this.#call("ensureMasquerade", localPodCidr, clusterCidrs.join(","), overlayIfname, vxlanPort);
    });
  }

  localAddresses(): Promise<string[]> {
    return this.#async(() => {
      this.#call("localAddresses");
      return [...this.addresses];
    });
  }

  writeConflist(input: ConflistInput): string {
    this.#call("writeConflist", input.podCidr, input.mtu);
    this.conflists.push(input);
    return "/fake/10-skein.conflist";
  }

  /** Like the kernel's: resolves on a later turn, so watch events may arrive in between. */
  async #async<T>(f: () => T): Promise<T> {
    await new Promise((r) => setImmediate(r));
    // A loaded node, where every child process takes its time.
    if (this.asyncDelayMs > 0) await new Promise((r) => setTimeout(r, this.asyncDelayMs));
    return f();
  }
}
