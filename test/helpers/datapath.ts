/** Running crafted frames through the real programs (BPF_PROG_TEST_RUN) and reading what they decided. */
import { PrivateDatapath } from "../../maps/datapath/private.js";
import type { Decision } from "../../maps/decision.js";
import type { ProgramName } from "../../maps/pins.js";
import type { SkbContext } from "../../loader/index.js";

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** A private datapath recording every decision. The caller closes it. */
export function loadTestDatapath(): PrivateDatapath {
  return PrivateDatapath.load({ settings: { recordDecisions: true } });
}

export interface RunResult {
  retval: number;
  out: Buffer;
  decision: Decision;
}

export function run(
  dp: PrivateDatapath,
  program: ProgramName,
  frame: Uint8Array,
  ctx: SkbContext = { ifindex: 1 },
): RunResult {
  const r = dp.programs[program].testRun({ data: frame, ctx });
  return { retval: r.retval, out: r.dataOut, decision: dp.decision.last() };
}
