/** skn_metrics: packets and bytes per (reason, direction), per CPU (bpf/maps/metrics.h, bpf/lib/drop.h). */
import { RawMap, numPossibleCpus } from "../loader/index.js";
import { checkLength, layout, type Layout } from "./codec.js";
import { pinPath } from "./pins.js";

export const METRICS_MAP = "skn_metrics";
export const METRICS_ENTRIES = 64;
/** Slot counting ring-buffer records lost for lack of room (packets = events). */
export const METRICS_EVENTS_LOST_SLOT = METRICS_ENTRIES - 1;
/** Slots counting new flows an enforced policy allowed, ingress then egress (packets = flows). */
export const METRICS_POLICY_ALLOWED_SLOT = {
  ingress: METRICS_ENTRIES - 4,
  egress: METRICS_ENTRIES - 3,
} as const;

/** enum skn_reason, in order. A test checks this list against the C enum. */
export const REASONS = [
  "fwd_local",
  "fwd_overlay",
  "fwd_stack",
  "fwd_deliver",
  "arp_reply",
  "pass_non_ip",
  "drop_malformed",
  "drop_spoofed",
  "drop_policy",
  "drop_arp",
  "drop_unsupported",
  "drop_no_tunnel",
  "drop_fragment",
  "drop_tunnel_key",
  "lb_reject",
  "drop_no_backend",
] as const;
export type Reason = (typeof REASONS)[number];

export const DIRECTIONS = ["ingress", "egress"] as const;
export type MetricDirection = (typeof DIRECTIONS)[number];

export function reasonName(code: number): string {
  return REASONS[code] ?? `reason_${code}`;
}

export function isDrop(reason: string): boolean {
  return reason.startsWith("drop_");
}

export const metricsValueLayout: Layout = layout("skn_metrics_value", 16, [
  { name: "packets", offset: 0, size: 8 },
  { name: "bytes", offset: 8, size: 8 },
]);

export interface Counter {
  reason: Reason;
  direction: MetricDirection;
  packets: bigint;
  bytes: bigint;
}

/** The metrics map; sums each slot over all CPUs. Owns the fd: close it. */
export class MetricsMap implements Disposable {
  readonly raw: RawMap;

  /** Takes ownership of `raw`. Throws (and closes it) on a size mismatch. */
  constructor(raw: RawMap) {
    if (raw.info.keySize !== 4 || raw.info.valueSize !== metricsValueLayout.size) {
      raw.close();
      throw new Error(
        `map ${METRICS_MAP}: kernel sizes ${raw.info.keySize}/${raw.info.valueSize} differ from this build's 4/16`,
      );
    }
    this.raw = raw;
  }

  static openPinned(root: string): MetricsMap {
    return new MetricsMap(RawMap.openPinned(pinPath(root, METRICS_MAP)));
  }

  /** Packets and bytes of one slot, summed over CPUs. */
  slot(index: number): { packets: bigint; bytes: bigint } {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index, 0);
    const v = this.raw.lookup(key);
    let packets = 0n;
    let bytes = 0n;
    if (v === undefined) return { packets, bytes };
    checkLength("metrics value", v, 16 * numPossibleCpus());
    for (let cpu = 0; cpu < numPossibleCpus(); cpu++) {
      packets += v.readBigUInt64LE(cpu * 16);
      bytes += v.readBigUInt64LE(cpu * 16 + 8);
    }
    return { packets, bytes };
  }

  /** Every (reason, direction) counter, zero ones included. */
  counters(): Counter[] {
    const out: Counter[] = [];
    REASONS.forEach((reason, r) => {
      DIRECTIONS.forEach((direction, d) => {
        out.push({ reason, direction, ...this.slot(r * 2 + d) });
      });
    });
    return out;
  }

  /** One counter. */
  get(reason: Reason, direction: MetricDirection): { packets: bigint; bytes: bigint } {
    return this.slot(REASONS.indexOf(reason) * 2 + DIRECTIONS.indexOf(direction));
  }

  /** New flows allowed by an enforced policy in `direction`. */
  policyAllowed(direction: MetricDirection): bigint {
    return this.slot(METRICS_POLICY_ALLOWED_SLOT[direction]).packets;
  }

  eventsLost(): bigint {
    return this.slot(METRICS_EVENTS_LOST_SLOT).packets;
  }

  close(): void {
    this.raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
