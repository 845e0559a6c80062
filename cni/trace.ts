/**
 * SKEIN_CNI_TRACE=1: one line on stderr per step of a verb, with the time since the process
 * started, so an operator sees where an ADD's milliseconds go (Node start-up, module loading,
 * IPAM, netlink, hooks). Written straight to fd 2: process.stderr would load Node's stream stack.
 */
import { writeSync } from "node:fs";

const enabled = process.env.SKEIN_CNI_TRACE === "1";

/** Writes `skein-cni: <ms since process start> ms <what>` when tracing is on; `what` may be lazy. */
export function trace(what: string | (() => string)): void {
  if (!enabled) return;
  const text = typeof what === "string" ? what : what();
  writeSync(2, `skein-cni: ${performance.now().toFixed(1)} ms ${text}\n`);
}
