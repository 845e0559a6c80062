/**
 * libbpf's log. libbpf has one global print callback; we install it once and route its lines to
 * whoever is collecting (an object load capturing its verifier log), or drop debug noise.
 */
import { libbpf, libc, registerCallback, type Pointer } from "./ffi.js";

const LIBBPF_WARN = 0;

let installed = false;
const sinks: string[][] = [];
const lineBuffer = Buffer.alloc(64 * 1024);

function onPrint(level: number, fmt: Pointer, ap: Pointer): number {
  const n = libc().vsnprintf(lineBuffer, lineBuffer.length, fmt, ap) as number;
  const text = lineBuffer.subarray(0, Math.max(0, Math.min(n, lineBuffer.length - 1))).toString("utf8");
  const sink = sinks.at(-1);
  if (sink !== undefined) sink.push(text);
  else if (level === LIBBPF_WARN && process.env.SKEIN_LIBBPF_QUIET === undefined) process.stderr.write(text);
  return 0;
}

function install(): void {
  if (installed) return;
  installed = true;
  const cb = registerCallback(onPrint, "print");
  libbpf().libbpf_set_print(cb);
}

/**
 * Runs `fn` while collecting everything libbpf prints (debug level included, so a verifier log
 * is complete). Returns the result and the text. Calls nest; the innermost collects.
 */
export function withLibbpfLog<T>(fn: () => T): { result: T; log: string } | { error: unknown; log: string } {
  install();
  const sink: string[] = [];
  sinks.push(sink);
  try {
    const result = fn();
    return { result, log: sink.join("") };
  } catch (error) {
    return { error, log: sink.join("") };
  } finally {
    sinks.pop();
  }
}
