/**
 * CLI: `node dist/lab/apiserver/main.js [--listen HOST:PORT] [--seed PATH]... [--history N]
 * [--port-file PATH] [--kubeconfig PATH] [--service-cidr CIDR] [--controllers LIST] [--verbose]`.
 *
 * The EndpointSlice controller (lab/endpointslice-controller.ts) runs in this process by default,
 * on the server's store, as kube-controller-manager would beside kube-apiserver.
 *
 * Prints the server URL on stdout once listening; logs go to stderr. SIGTERM/SIGINT close every
 * connection and exit 0. Exit 2 on bad usage, 1 when the server cannot start.
 */
import { rename, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { startEndpointSliceController } from "../endpointslice-controller.js";
import { ClusterIpAllocator } from "./allocators.js";
import { writeKubeconfig } from "./kubeconfig.js";
import { startLabApiServer, type LabApiServerOptions } from "./server.js";

const USAGE = `usage: lab-apiserver [--listen HOST:PORT] [--seed PATH]... [--history N] [--port-file PATH] [--kubeconfig PATH] [--service-cidr CIDR] [--controllers LIST] [--verbose]
  --listen HOST:PORT  address to bind (default 127.0.0.1:0; port 0 picks a free port)
  --seed PATH         YAML/JSON file or directory to load at start (repeatable)
  --history N         watch events retained per resource for resumption (default 1000)
  --port-file PATH    write the bound port there once listening
  --kubeconfig PATH   write a kubeconfig (context skein-lab) for the server there
  --service-cidr CIDR Services' ClusterIP range (default 10.96.0.0/16)
  --controllers LIST  controllers to run in this process: endpointslice (default) or none
  --verbose           log every request`;

class UsageError extends Error {}

/** Splits `HOST:PORT`, `[v6]:PORT` or `:PORT`. Throws UsageError. */
function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  if (m === null) throw new UsageError(`--listen wants HOST:PORT, got "${value}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--listen port out of range: ${port}`);
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "127.0.0.1" : host, port };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: "string", default: "127.0.0.1:0" },
        seed: { type: "string", multiple: true, default: [] },
        history: { type: "string" },
        "port-file": { type: "string" },
        kubeconfig: { type: "string" },
        "service-cidr": { type: "string" },
        controllers: { type: "string", default: "endpointslice" },
        verbose: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  const options: LabApiServerOptions = { seed: values.seed, logRequests: values.verbose };
  let runSliceController = false;
  try {
    const { host, port } = parseListen(values.listen);
    options.host = host;
    options.port = port;
    if (values.history !== undefined) {
      const n = Number(values.history);
      if (!Number.isInteger(n) || n < 1)
        throw new UsageError(`--history wants a positive integer, got "${values.history}"`);
      options.history = n;
    }
    const cidr = values["service-cidr"];
    if (cidr !== undefined) {
      try {
        new ClusterIpAllocator(cidr);
      } catch (err) {
        throw new UsageError(`--service-cidr: ${err instanceof Error ? err.message : String(err)}`);
      }
      options.serviceCidr = cidr;
    }
    const wanted = values.controllers.split(",").filter((c) => c !== "" && c !== "none");
    for (const c of wanted)
      if (c !== "endpointslice") throw new UsageError(`--controllers: unknown controller "${c}"`);
    runSliceController = wanted.includes("endpointslice");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    return 2;
  }

  let server;
  try {
    server = await startLabApiServer(options);
  } catch (err) {
    process.stderr.write(
      `lab-apiserver: cannot start: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
  const running = server;
  const controller = runSliceController
    ? startEndpointSliceController(running.store, {
        log: (line) => process.stderr.write(`${new Date().toISOString()} warn ${line}\n`),
      })
    : undefined;
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      process.stderr.write(`lab-apiserver: ${signal}, closing\n`);
      controller?.close();
      running.close().then(
        () => {
          resolve(0);
        },
        () => {
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => {
      stop("SIGTERM");
    });
    process.once("SIGINT", () => {
      stop("SIGINT");
    });
  });
  try {
    if (values["port-file"] !== undefined) await writeAtomically(values["port-file"], `${running.port}\n`);
    if (values.kubeconfig !== undefined) await writeKubeconfig(values.kubeconfig, running.url);
  } catch (err) {
    process.stderr.write(`lab-apiserver: ${err instanceof Error ? err.message : String(err)}\n`);
    controller?.close();
    await running.close();
    return 1;
  }
  process.stdout.write(`${running.url}\n`);
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `lab-apiserver: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
