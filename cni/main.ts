/**
 * skein-cni's process entry: the real environment, stdin, stdout and kernel go to the dispatcher;
 * its answer becomes the exit code. The only module of cni/ that ends the process.
 */
import { readSync } from "node:fs";
import { dispatch } from "./dispatcher.js";

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

process.exitCode = await dispatch(
  { env: process.env, readStdin, stdout: process.stdout, stderr: process.stderr },
  { kernel: async () => new (await import("./linux.js")).LinuxKernel() },
);
if (process.env.SKEIN_CNI_TRACE === "1")
  process.stderr.write(
    `skein-cni: ${process.env.CNI_COMMAND ?? "?"} done ${performance.now().toFixed(1)} ms after process start ` +
      `(node bootstrap ${performance.nodeTiming.bootstrapComplete.toFixed(1)} ms)\n`,
  );
