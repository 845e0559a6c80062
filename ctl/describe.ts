/** Words for numbers: protocols, reasons, flags, identities, durations, as skeinctl prints them. */
import { IpProto } from "../maps/packet.js";
import { CtFlag } from "../maps/conntrack.js";
import { ConfigFlag } from "../maps/config.js";
import { isCidrIdentity, isPodIdentity, reservedIdentityName } from "../maps/identities.js";
import { IpcacheFlag } from "../maps/ipcache.js";
import { REASONS, type Reason } from "../maps/metrics.js";

/** IpProto's names by number. */
const PROTOCOLS: ReadonlyMap<number, string> = new Map(
  Object.entries(IpProto).map(([name, proto]) => [proto, name]),
);

/** `TCP`, `UDP`, ... or `proto-N`. */
export function protocolName(proto: number): string {
  return PROTOCOLS.get(proto) ?? `proto-${proto}`;
}

/** True for protocols whose events carry ports. */
export function hasPorts(proto: number): boolean {
  return proto === IpProto.TCP || proto === IpProto.UDP || proto === IpProto.SCTP;
}

/** What each datapath reason means (bpf/lib/drop.h), for people. A reason without text fails to compile. */
export const REASON_TEXT: Readonly<Record<Reason, string>> = {
  fwd_local: "redirected to a pod on this node",
  fwd_overlay: "encapsulated towards another node",
  fwd_stack: "handed to the host network stack",
  fwd_deliver: "delivered into a pod from the stack or the overlay",
  arp_reply: "ARP request for the gateway answered",
  pass_non_ip: "ARP or other non-IPv4 frame passed on",
  drop_malformed: "truncated or inconsistent headers",
  drop_spoofed: "source address is not the sending pod's",
  drop_policy: "denied by NetworkPolicy",
  drop_arp: "ARP that is not a request for the gateway",
  drop_unsupported: "IPv6 or another protocol Skein does not route",
  drop_no_tunnel: "no tunnel endpoint known for a remote destination",
  drop_fragment: "non-first fragment on an enforced endpoint",
  drop_tunnel_key: "tunnel metadata missing or unusable",
  lb_reject: "to a Service without endpoints: answered with ICMP port unreachable",
  drop_no_backend:
    "a Service frontend without a usable backend: its entry missing (the agent is rewriting it), or reached from the world with none (for externalTrafficPolicy Local: none on this node)",
};

/** The text of a reason by name; undefined for a name the datapath does not have. */
export function reasonText(reason: string): string | undefined {
  return (REASONS as readonly string[]).includes(reason) ? REASON_TEXT[reason as Reason] : undefined;
}

/** Names of the bits set in `flags`, from a { name: bit } table; unknown bits as hex. */
export function flagNames(flags: number, table: Readonly<Record<string, number>>): string[] {
  const out: string[] = [];
  let rest = flags;
  for (const [name, bit] of Object.entries(table)) {
    if ((flags & bit) !== 0) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) out.push(`0x${(rest >>> 0).toString(16)}`);
  return out;
}

/** Flag words of an ipcache entry. */
export function ipcacheFlagNames(flags: number): string[] {
  return flagNames(flags, {
    "enforce-ingress": IpcacheFlag.enforceIngress,
    "enforce-egress": IpcacheFlag.enforceEgress,
  });
}

/** Flag words of a conntrack entry. */
export function conntrackFlagNames(flags: number): string[] {
  return flagNames(flags, {
    "initiator-b": CtFlag.initiatorB,
    "seen-reply": CtFlag.seenReply,
    closing: CtFlag.closing,
    "tunnel-b": CtFlag.tunnelB,
    "via-stack": CtFlag.viaStack,
    lb: CtFlag.lb,
    "lb-hairpin": CtFlag.lbHairpin,
    nodeport: CtFlag.nodePort,
  });
}

/** Flag words of the config map. */
export function configFlagNames(flags: number): string[] {
  return flagNames(flags, {
    "verdict-events": ConfigFlag.verdictEvents,
    "tunnel-onlink": ConfigFlag.tunnelOnLink,
  });
}

/** What kind of identity a number is. */
export function identityKind(id: number): "reserved" | "pod" | "cidr" | "unknown" {
  if (reservedIdentityName(id) !== undefined) return "reserved";
  if (isPodIdentity(id)) return "pod";
  if (isCidrIdentity(id)) return "cidr";
  return "unknown";
}

/** `k=v,k=v`, sorted by key. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** Seconds as `4m12s`, `3h02m`, `1.3s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "-";
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  if (seconds < 86400)
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(seconds / 86400)}d${String(Math.floor((seconds % 86400) / 3600)).padStart(2, "0")}h`;
}

/** `entries / capacity` as a percentage with one decimal, or null when capacity is 0. */
export function pressurePercent(entries: number, capacity: number): number | null {
  return capacity <= 0 ? null : Math.round((entries / capacity) * 1000) / 10;
}

/** Now on the clock bpf_ktime_get_ns() reads (CLOCK_MONOTONIC; Node's hrtime uses it on Linux). */
export function monotonicNowNs(): bigint {
  return process.hrtime.bigint();
}

/** Wall-clock time of a bpf_ktime_get_ns() timestamp. */
export function wallClockOf(tsNs: bigint, nowNs = monotonicNowNs(), nowMs = Date.now()): Date {
  return new Date(nowMs - Number(nowNs - tsNs) / 1e6);
}
