/**
 * Native routing's BGP as the agent sees it: renders BIRD's configuration from the cluster's nodes
 * and the settings, keeps BIRD running it (BirdDaemon), and reads its sessions and learned routes
 * back for the status. The routes themselves go from BIRD into the kernel; the datapath's FIB
 * lookups use them like any other.
 */
import type { BgpSession, BgpStatus } from "../../maps/agent-api.js";
import { errorFields, type Logger } from "../log.js";
import { BirdDaemon } from "./bird.js";
import { neighbours, renderBirdConfig, type BirdNeighbour, type BirdNode } from "./bird-config.js";
import { parseBirdTime, type BirdProtocol } from "./birdc.js";
import type { BgpSettings } from "./bgp-settings.js";

export interface BgpRoutingOptions {
  settings: BgpSettings;
  /** BIRD's state directory (config, control socket, pid file): one per node. */
  dir: string;
  log: Logger;
  birdPath?: string;
  birdcPath?: string;
}

/** Owns the node's BIRD; stop() ends it (its kernel routes stay). */
export class BgpRouting {
  readonly settings: BgpSettings;
  readonly daemon: BirdDaemon;
  readonly #log: Logger;
  #neighbours: BirdNeighbour[] = [];
  #routerId: string | null = null;
  #protocols: BirdProtocol[] = [];
  #prefixPeer = new Map<string, string>();
  #error: string | null = null;

  constructor(o: BgpRoutingOptions) {
    this.settings = o.settings;
    this.#log = o.log;
    this.daemon = new BirdDaemon({
      dir: o.dir,
      log: o.log.with({ component: "bird" }),
      ...(o.birdPath === undefined ? {} : { birdPath: o.birdPath }),
      ...(o.birdcPath === undefined ? {} : { birdcPath: o.birdcPath }),
    });
  }

  /**
   * BIRD configured for `own` among `nodes`, announcing own's pod CIDR from `uplink`'s address.
   * Returns false (logged, in the status) when BIRD could not be configured: the caller retries.
   */
  async sync(own: BirdNode, nodes: readonly BirdNode[], uplink: string): Promise<boolean> {
    try {
      const input = { own, nodes, bgp: this.settings, uplink };
      const text = renderBirdConfig(input);
      const r = await this.daemon.apply(text);
      this.#neighbours = neighbours(input);
      this.#routerId = own.internalIp;
      this.#error = null;
      if (r !== "unchanged")
        this.#log.info(r === "started" ? "BIRD started" : "BIRD reconfigured", {
          asn: this.settings.asn,
          neighbours: this.#neighbours.map((n) => `${n.address}/${n.asn}`).join(","),
          config: this.daemon.config,
        });
      return true;
    } catch (err) {
      const f = errorFields(err);
      this.#error = f.cause === undefined ? f.error : `${f.error}: ${f.cause}`;
      this.#log.error("BGP: BIRD could not be configured; retrying", f);
      return false;
    }
  }

  /** Reads sessions and learned routes from BIRD (for the status). Never throws. */
  async refresh(): Promise<void> {
    if (!this.daemon.running) {
      this.#protocols = [];
      return;
    }
    try {
      this.#protocols = await this.daemon.protocols();
      const byProto = new Map(this.#neighbours.map((n) => [n.protocol, n.address]));
      const m = new Map<string, string>();
      for (const r of await this.daemon.bgpRoutes())
        if (r.primary) m.set(r.prefix, byProto.get(r.protocol) ?? r.from ?? r.protocol);
      this.#prefixPeer = m;
    } catch (err) {
      this.#log.warn("BGP: cannot read BIRD's state", errorFields(err));
    }
  }

  /** The neighbour the best BGP route for `prefix` came from, as of the last refresh. */
  peerOf(prefix: string): string | undefined {
    return this.#prefixPeer.get(prefix);
  }

  status(now = Date.now()): BgpStatus {
    const byName = new Map(this.#protocols.map((p) => [p.name, p]));
    const sessions: BgpSession[] = this.#neighbours.map((n) => {
      const p = byName.get(n.protocol);
      const since = p === undefined ? null : parseBirdTime(p.since);
      return {
        name: n.protocol,
        peer: n.address,
        asn: p?.neighborAs ?? n.asn,
        kind: n.kind,
        ...(n.node === undefined ? {} : { node: n.node }),
        state: p === undefined ? "down" : (p.bgpState ?? p.state),
        since: since === null ? null : since.toISOString(),
        uptimeS: since === null ? null : Math.max(0, Math.round((now - since.getTime()) / 1000)),
        imported: p?.imported ?? null,
        exported: p?.exported ?? null,
        lastError: p?.lastError ?? "",
      };
    });
    const d = this.daemon;
    return {
      asn: this.settings.asn,
      routerId: this.#routerId,
      mesh: this.settings.mesh,
      bird: {
        pid: d.pid,
        running: d.running,
        restarts: d.restarts,
        lastExit: d.lastExit,
        error: this.#error,
      },
      sessions,
      rejected: [...d.rejected],
    };
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}
