/**
 * Prometheus metrics (prom-client). Datapath counters are read from the per-CPU metrics map at
 * scrape time; the rest are kept by the agent as it works.
 *
 * Families (Prometheus conventions: counters end in _total, units in names):
 *   skein_datapath_packets_total{reason,direction,verdict}  every (reason, direction), zeros included
 *   skein_datapath_bytes_total{reason,direction,verdict}    verdict = forward | drop
 *   skein_policy_verdicts_total{verdict,direction}          allowed new flows, denied packets
 *   skein_events_lost_total                                 ring-buffer records dropped for lack of room
 *   skein_map_entries{map} skein_map_capacity_entries{map} skein_map_pressure_ratio{map}
 *                                                           (conntrack entries: map="skn_conntrack2")
 *   skein_endpoints skein_identities skein_agent_ready skein_policy_map_overflow_entries
 *   skein_reconcile_duration_seconds{target}                histogram
 *   skein_k8s_watch_errors_total{resource} skein_k8s_watch_restarts_total{resource}
 *   skein_k8s_objects_skipped_total{kind,reason} skein_map_write_failures_total{map}
 *   skein_map_drift_total{map,kind}                         entries the periodic audit found changed behind
 *                                                           the agent's back (altered, extra, missing), then repaired
 *   skein_services skein_service_frontends skein_service_backends    programmed (--service-lb bpf)
 *   skein_service_problems                                  Service inputs the builder left out
 *   skein_service_programming_latency_seconds               histogram: a Service's or EndpointSlice's
 *                                                           event received → its map entries written
 *   skein_service_translation_misses_total{reason,direction} the datapath's Service reasons
 *                                                           (lb_reject, drop_no_backend, any lb_*)
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { DIRECTIONS, REASONS, isDrop, type MetricsMap } from "../maps/metrics.js";

/**
 * The agent's registry. Holds no kernel resource: `datapath` is borrowed from the agent, which sets
 * it once the maps are open and clears it before closing them.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly watchErrors: Counter<"resource">;
  readonly watchRestarts: Counter<"resource">;
  readonly objectsSkipped: Counter<"kind" | "reason">;
  readonly reconcileDuration: Histogram<"target">;
  readonly mapEntries: Gauge<"map">;
  readonly mapCapacity: Gauge<"map">;
  /** entries / capacity per map, computed at scrape time from mapEntries and mapCapacity. */
  readonly mapPressure: Gauge<"map">;
  readonly mapWriteFailures: Counter<"map">;
  readonly mapDrift: Counter<"map" | "kind">;
  readonly policyOverflow: Gauge;
  readonly endpoints: Gauge;
  readonly identities: Gauge;
  readonly ready: Gauge;
  readonly services: Gauge;
  readonly serviceFrontends: Gauge;
  readonly serviceBackends: Gauge;
  readonly serviceProblems: Gauge;
  readonly serviceProgrammingLatency: Histogram;
  /** Set by the agent once the datapath maps are open; read at scrape time. */
  datapath: MetricsMap | undefined;

  constructor() {
    const registers = [this.registry];
    this.watchErrors = new Counter({
      name: "skein_k8s_watch_errors_total",
      help: "Kubernetes watch failures, by resource.",
      labelNames: ["resource"],
      registers,
    });
    this.watchRestarts = new Counter({
      name: "skein_k8s_watch_restarts_total",
      help: "Kubernetes watches restarted by the supervisor, by resource.",
      labelNames: ["resource"],
      registers,
    });
    this.objectsSkipped = new Counter({
      name: "skein_k8s_objects_skipped_total",
      help: "Kubernetes objects the agent could not use (no pod CIDR, malformed CIDR, no IP...), by kind and reason.",
      labelNames: ["kind", "reason"],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: "skein_reconcile_duration_seconds",
      help: "Time to compute and apply desired map and route state, by target.",
      labelNames: ["target"],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.mapEntries = new Gauge({
      name: "skein_map_entries",
      help: "Entries in each BPF map.",
      labelNames: ["map"],
      registers,
    });
    this.mapCapacity = new Gauge({
      name: "skein_map_capacity_entries",
      help: "Capacity (max_entries) of each BPF map.",
      labelNames: ["map"],
      registers,
    });
    const entries = this.mapEntries;
    const capacity = this.mapCapacity;
    this.mapPressure = new Gauge({
      name: "skein_map_pressure_ratio",
      help: "Fill of each BPF map that can run full: entries / capacity (1 = full; an LRU map then evicts, others refuse writes).",
      labelNames: ["map"],
      registers,
      async collect() {
        const caps = new Map((await capacity.get()).values.map((v) => [String(v.labels.map), v.value]));
        this.reset();
        for (const v of (await entries.get()).values) {
          const map = String(v.labels.map);
          const cap = caps.get(map);
          if (cap !== undefined && cap > 0) this.set({ map }, v.value / cap);
        }
      },
    });
    this.mapWriteFailures = new Counter({
      name: "skein_map_write_failures_total",
      help: "Map updates or deletes that failed, by map.",
      labelNames: ["map"],
      registers,
    });
    this.mapDrift = new Counter({
      name: "skein_map_drift_total",
      help: "Map entries the periodic audit found changed behind the agent's back (then repaired), by map and kind.",
      labelNames: ["map", "kind"],
      registers,
    });
    this.policyOverflow = new Gauge({
      name: "skein_policy_map_overflow_entries",
      help: "Desired policy entries that do not fit in the policy map (0 when everything is programmed).",
      registers,
    });
    this.endpoints = new Gauge({ name: "skein_endpoints", help: "Pods wired on this node.", registers });
    this.identities = new Gauge({
      name: "skein_identities",
      help: "Security identities in use in the cluster.",
      registers,
    });
    this.ready = new Gauge({
      name: "skein_agent_ready",
      help: "1 when the agent has programmed the node and written the CNI config.",
      registers,
    });

    this.services = new Gauge({
      name: "skein_services",
      help: "Services with at least one frontend programmed in skn_lb_svc (--service-lb bpf).",
      registers,
    });
    this.serviceFrontends = new Gauge({
      name: "skein_service_frontends",
      help: "Frontends (ClusterIP, NodePort, externalIP, LoadBalancer IP × port) programmed in skn_lb_svc.",
      registers,
    });
    this.serviceBackends = new Gauge({
      name: "skein_service_backends",
      help: "Distinct backends (address, port, protocol) programmed in skn_lb_backend.",
      registers,
    });
    this.serviceProblems = new Gauge({
      name: "skein_service_problems",
      help: "Service inputs left out of the maps (a frontend claimed twice, an unusable port...); skeinctl status lists them.",
      registers,
    });
    this.serviceProgrammingLatency = new Histogram({
      name: "skein_service_programming_latency_seconds",
      help: "Time from a Service or EndpointSlice event reaching the agent to that Service's map entries written.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });

    // prom-client calls collect() with the metric as `this`; these reach the datapath map.
    const datapath = (): MetricsMap | undefined => this.datapath;
    const mirror = (counter: Counter<"reason" | "direction" | "verdict">, field: "packets" | "bytes") => {
      this.#mirror(counter, field);
    };
    new Counter({
      name: "skein_datapath_packets_total",
      help: "Packets the datapath handled, by verdict reason and direction (drop_* reasons are drops).",
      labelNames: ["reason", "direction", "verdict"],
      registers,
      collect() {
        mirror(this, "packets");
      },
    });
    new Counter({
      name: "skein_datapath_bytes_total",
      help: "Bytes the datapath handled, by verdict reason and direction.",
      labelNames: ["reason", "direction", "verdict"],
      registers,
      collect() {
        mirror(this, "bytes");
      },
    });
    new Counter({
      name: "skein_policy_verdicts_total",
      help: "NetworkPolicy decisions of the datapath, by verdict and direction: new flows an enforced policy allowed (verdict=allowed), packets it denied (verdict=denied; a retransmitted denied packet counts again).",
      labelNames: ["verdict", "direction"],
      registers,
      collect() {
        const dp = datapath();
        if (dp === undefined) return;
        this.reset();
        for (const direction of DIRECTIONS) {
          this.inc({ verdict: "allowed", direction }, Number(dp.policyAllowed(direction)));
          this.inc({ verdict: "denied", direction }, Number(dp.get("drop_policy", direction).packets));
        }
      },
    });
    const lbMisses = (counter: Counter<"reason" | "direction">) => {
      this.#lbMisses(counter);
    };
    new Counter({
      name: "skein_service_translation_misses_total",
      help: "Packets to a Service frontend the datapath could not translate to a live backend, by reason (no backend: rejected; backend gone: picked again) and direction.",
      labelNames: ["reason", "direction"],
      registers,
      collect() {
        lbMisses(this);
      },
    });
    new Counter({
      name: "skein_events_lost_total",
      help: "Drop and verdict events lost because the ring buffer was full.",
      registers,
      collect() {
        const dp = datapath();
        if (dp === undefined) return;
        this.reset();
        this.inc(Number(dp.eventsLost()));
      },
    });
  }

  #lbMisses(counter: Counter<"reason" | "direction">): void {
    const dp = this.datapath;
    if (dp === undefined) return;
    counter.reset();
    for (const c of dp.counters())
      if (LB_MISS_REASON.test(c.reason))
        counter.inc({ reason: c.reason, direction: c.direction }, Number(c.packets));
  }

  #mirror(counter: Counter<"reason" | "direction" | "verdict">, field: "packets" | "bytes"): void {
    const dp = this.datapath;
    if (dp === undefined) return;
    counter.reset();
    // Zeros included: a series that appears only on its first drop hides that drop from rate().
    for (const c of dp.counters()) {
      counter.inc(
        { reason: c.reason, direction: c.direction, verdict: isDrop(c.reason) ? "drop" : "forward" },
        Number(c[field]),
      );
    }
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** The datapath's Service reasons (bpf/lib/drop.h): counted as translation misses. */
const LB_MISS_REASON = /^(drop_)?lb_|^drop_no_backend$/;

export { REASONS };
