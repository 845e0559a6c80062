/**
 * SKEIN_CNI_TRACE=1: one line on stderr per step of a verb, with the time since the process
 * started, so an operator sees where an ADD's milliseconds go (Node start-up, module loading,
 * IPAM, netlink, hooks).
 */
import { performance } from "node:perf_hooks";

const enabled = process.env.SKEIN_CNI_TRACE === "1";

/** Writes `skein-cni: <ms since process start> ms <what>` when tracing is on. */
export function trace(what: string): void {
  if (enabled) process.stderr.write(`skein-cni: ${performance.now().toFixed(1)} ms ${what}\n`);
}
