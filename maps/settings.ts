/**
 * skn_settings: `const volatile` globals fixed at load time (bpf/lib/settings.h). They are the only
 * variable in .rodata, at offset 0 (a test checks that against BTF).
 */
import { checkLength, layout } from "./codec.js";
import { parsePrefix, readIPv4, writeIPv4 } from "./net.js";

export const SETTINGS_VAR = "skn_settings";

export interface DatapathSettings {
  /** Idle lifetime of an answered TCP flow. */
  ctTcpEstablishedS: number;
  /** ... of a TCP flow not answered yet. */
  ctTcpOpeningS: number;
  /** ... after FIN or RST. */
  ctTcpClosingS: number;
  /** ... of UDP, SCTP, ICMP and other flows. */
  ctOtherS: number;
  /** Write every verdict to skn_decision (tests, `skeinctl policy simulate`). */
  recordDecisions: boolean;
  /**
   * The cluster's Service CIDR ("10.96.0.0/12"), "" for none: the egress policy of a new flow from a
   * pod into it is judged after the node translated it, on the backend (bpf/lib/services.h).
   */
  serviceCidr: string;
  /**
   * Native routing (`--routing native`): from_pod routes remote pods' packets unencapsulated by
   * the kernel's FIB, and from_uplink delivers native packets for local pods (bpf/lib/native.h).
   */
  routingNative: boolean;
}

export const DEFAULT_SETTINGS: DatapathSettings = {
  ctTcpEstablishedS: 21600,
  ctTcpOpeningS: 60,
  ctTcpClosingS: 10,
  ctOtherS: 60,
  recordDecisions: false,
  serviceCidr: "",
  routingNative: false,
};

/** Bytes of skn_settings (the start of .rodata). */
export const SETTINGS_SIZE = 32;

export const settingsLayout = layout("skn_settings", SETTINGS_SIZE, [
  { name: "ct_tcp_established_s", offset: 0, size: 4 },
  { name: "ct_tcp_opening_s", offset: 4, size: 4 },
  { name: "ct_tcp_closing_s", offset: 8, size: 4 },
  { name: "ct_other_s", offset: 12, size: 4 },
  { name: "record_decisions", offset: 16, size: 4 },
  { name: "service_net_be", offset: 20, size: 4 },
  { name: "service_prefix_len", offset: 24, size: 4 },
  { name: "routing_native", offset: 28, size: 4 },
]);

/** Throws RangeError for a malformed serviceCidr. */
export function encodeSettings(s: DatapathSettings): Buffer {
  const b = Buffer.alloc(SETTINGS_SIZE);
  b.writeUInt32LE(s.ctTcpEstablishedS, 0);
  b.writeUInt32LE(s.ctTcpOpeningS, 4);
  b.writeUInt32LE(s.ctTcpClosingS, 8);
  b.writeUInt32LE(s.ctOtherS, 12);
  b.writeUInt32LE(s.recordDecisions ? 1 : 0, 16);
  if (s.serviceCidr !== "") {
    const p = parsePrefix(s.serviceCidr);
    if (p.length === 0)
      throw new RangeError(`service CIDR ${s.serviceCidr}: a /0 would defer every destination`);
    writeIPv4(b, 20, p.ip);
    b.writeUInt32LE(p.length, 24);
  }
  b.writeUInt32LE(s.routingNative ? 1 : 0, 28);
  return b;
}

export function decodeSettings(bytes: Uint8Array): DatapathSettings {
  const b = checkLength("settings", bytes, SETTINGS_SIZE);
  const prefixLength = b.readUInt32LE(24);
  return {
    ctTcpEstablishedS: b.readUInt32LE(0),
    ctTcpOpeningS: b.readUInt32LE(4),
    ctTcpClosingS: b.readUInt32LE(8),
    ctOtherS: b.readUInt32LE(12),
    recordDecisions: b.readUInt32LE(16) !== 0,
    serviceCidr: prefixLength === 0 ? "" : `${readIPv4(b, 20)}/${prefixLength}`,
    routingNative: b.readUInt32LE(28) !== 0,
  };
}
