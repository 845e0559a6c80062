/**
 * skein-cni's process entry: the real environment, stdin, stdout and kernel go to the dispatcher;
 * its answer becomes the exit code. The only module of cni/ that ends the process.
 */
import { readSync } from "node:fs";
import { dispatch } from "./dispatcher.js";
import { trace } from "./trace.js";

trace("main module running");

const pause = new Int32Array(new SharedArrayBuffer(4));

function readStdin(): string {
  // Interactive use (no runtime): nothing to read, and reading a terminal would block.
  if (process.stdin.isTTY) return "";
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EOF") break;
      if (code === "EAGAIN") {
        // A runtime handed us a non-blocking pipe: wait for the data instead of losing it.
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString("utf8");
}

// No top-level await: the installed bundle is CommonJS, which starts faster than an ES module.
void dispatch(
  { env: process.env, readStdin, stdout: process.stdout, stderr: process.stderr },
  { kernel: async () => new (await import("./linux.js")).LinuxKernel() },
).then((code) => {
  process.exitCode = code;
  trace(
    `${process.env.CNI_COMMAND ?? "?"} done (node bootstrap took ${performance.nodeTiming.bootstrapComplete.toFixed(1)} ms)`,
  );
});
