/**
 * skein-cni's process entry: the real environment, stdin, stdout and kernel go to the dispatcher;
 * its answer becomes the exit code. The only module of cni/ that ends the process. Standard I/O
 * goes through fds 0, 1 and 2 directly: process.stdin/stdout/stderr on pipes would load Node's
 * net and stream modules, milliseconds of every invocation.
 */
import { fstatSync, readSync, writeSync } from "node:fs";
import { dispatch } from "./dispatcher.js";
import { trace, traceTo } from "./trace.js";

if (process.env.SKEIN_CNI_TRACE === "1") traceTo((line) => writeSync(2, `${line}\n`));
trace("main module running");

const pause = new Int32Array(new SharedArrayBuffer(4));

function readStdin(): string {
  // Interactive use (no runtime): nothing to read, and reading a terminal would block.
  if (fstatSync(0).isCharacterDevice()) return "";
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EOF") break;
      // A runtime may hand us a non-blocking pipe: wait for the data instead of losing it.
      if (waitForFd(err)) continue;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString("utf8");
}

function waitForFd(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return false;
  Atomics.wait(pause, 0, 0, 5);
  return true;
}

/** Writes all of `text` to `fd`, through short writes and non-blocking pipes. */
function fdWriter(fd: number): { write(text: string): void } {
  return {
    write(text: string): void {
      const data = Buffer.from(text, "utf8");
      for (let off = 0; off < data.length;) {
        try {
          off += writeSync(fd, data, off, data.length - off);
        } catch (err) {
          if (!waitForFd(err)) throw err;
        }
      }
    },
  };
}

// No top-level await: the installed bundle is CommonJS, which starts faster than an ES module.
void dispatch(
  { env: process.env, readStdin, stdout: fdWriter(1), stderr: fdWriter(2) },
  { kernel: async () => new (await import("./linux.js")).LinuxKernel() },
).then((code) => {
  trace(
    () =>
      `${process.env.CNI_COMMAND ?? "?"} done (node bootstrap took ${performance.nodeTiming.bootstrapComplete.toFixed(1)} ms)`,
  );
  // Everything is written (synchronously) and every owner closed: exiting now skips tearing down
  // the environment piece by piece, measurably quicker than letting the event loop run dry.
  process.exit(code);
});
