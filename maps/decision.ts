/** skn_decision: the last verdict in full, written only when settings.recordDecisions is on (bpf/maps/decision.h). */
import { TypedMap, checkLength, layout, u32KeyCodec, type MapCodec } from "./codec.js";
import { readIPv4 } from "./net.js";
import { reasonName } from "./metrics.js";
import type { RawMap } from "../loader/index.js";

export const DECISION_MAP = "skn_decision";

export interface Decision {
  action: number;
  reason: string;
  direction: "ingress" | "egress";
  ifindex: number;
  tunnelIp: string | null;
  tunnelId: number;
  ruleId: number;
  peerIdentity: number;
}

export const decisionCodec: MapCodec<number, Decision> = {
  name: DECISION_MAP,
  key: u32KeyCodec,
  value: {
    layout: layout("skn_decision", 32, [
      { name: "action", offset: 0, size: 4 },
      { name: "reason", offset: 4, size: 4 },
      { name: "dir", offset: 8, size: 4 },
      { name: "ifindex", offset: 12, size: 4 },
      { name: "tunnel_ip_be", offset: 16, size: 4 },
      { name: "tunnel_id", offset: 20, size: 4 },
      { name: "rule_id", offset: 24, size: 4 },
      { name: "peer_identity", offset: 28, size: 4 },
    ]),
    encode() {
      throw new Error("skn_decision is written by the datapath only");
    },
    decode(bytes) {
      const b = checkLength("decision", bytes, 32);
      const tunnel = readIPv4(b, 16);
      return {
        action: b.readUInt32LE(0),
        reason: reasonName(b.readUInt32LE(4)),
        direction: b.readUInt32LE(8) === 0 ? "ingress" : "egress",
        ifindex: b.readUInt32LE(12),
        tunnelIp: tunnel === "0.0.0.0" ? null : tunnel,
        tunnelId: b.readUInt32LE(20),
        ruleId: b.readUInt32LE(24),
        peerIdentity: b.readUInt32LE(28),
      };
    },
  },
};

export class DecisionMap extends TypedMap<number, Decision> {
  constructor(raw: RawMap) {
    super(raw, decisionCodec);
  }

  /** The last verdict recorded; throws when the datapath was loaded without recordDecisions. */
  last(): Decision {
    const d = this.get(0);
    if (d === undefined) throw new Error("skn_decision is empty");
    return d;
  }
}
