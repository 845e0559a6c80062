/**
 * SKEIN_CNI_TRACE=1: one line per step of a verb, with the time since the call started, so an
 * operator sees where an ADD's milliseconds go (Node start-up, module loading, IPAM, netlink,
 * hooks). The entry decides where lines go and what "started" means: main.ts sends them straight
 * to fd 2 (process.stderr would load Node's stream stack) timed from process start; the resident
 * server sends them to the request's stderr timed from the request's arrival. Off until an entry
 * turns it on: this module reads no environment itself.
 */

/** Receives one finished trace line (without newline). */
export type TraceSink = (line: string) => void;

let sink: TraceSink | undefined;
let originMs = 0;

/**
 * Sends trace lines to `to` (undefined: tracing off), timed from `startedMs` (a
 * performance.now() value; 0 = process start). Returns the previous sink, for restoring.
 */
export function traceTo(to: TraceSink | undefined, startedMs = 0): TraceSink | undefined {
  const previous = sink;
  sink = to;
  originMs = startedMs;
  return previous;
}

/** Emits `skein-cni: <ms since start> ms <what>` when tracing is on; `what` may be lazy. */
export function trace(what: string | (() => string)): void {
  if (sink === undefined) return;
  const text = typeof what === "string" ? what : what();
  sink(`skein-cni: ${(performance.now() - originMs).toFixed(1)} ms ${text}`);
}
