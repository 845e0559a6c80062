/**
 * skein-cni-server's process entry:
 *
 *   skein-cni-server [--socket PATH] [--host-proc DIR]      (socket default /run/skein/cni.sock)
 *
 * Installed form: `skein-cni.d/node skein-cni.d/skein-cni-server.cjs --socket PATH`. Run it in the
 * node's network namespace (the one the runtime runs plugins in). Exits 2 on bad arguments, 1 when
 * it cannot start (the reason on stderr); on SIGTERM or SIGINT it stops accepting, finishes the
 * requests it has, removes the socket and exits 0. The only module of the server that exits.
 */
import { CNI_SERVER_SOCKET } from "../maps/cni-server.js";
import { describe } from "./errors.js";
import { CniServer } from "./server.js";

const USAGE = `usage: skein-cni-server [--socket PATH] [--host-proc DIR]
  --socket PATH     the unix socket the skein-cni shim connects to (default ${CNI_SERVER_SOCKET})
  --host-proc DIR   where the host's /proc is mounted, when this runs in a container without the
                    host's PID namespace: CNI_NETNS paths under /proc/ are opened there
`;

interface Args {
  socketPath: string;
  hostProc?: string;
}

function parseArgs(argv: readonly string[]): Args | string {
  let socketPath = CNI_SERVER_SOCKET;
  let hostProc: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--help" || arg === "-h") return "";
    if (arg === "--socket") {
      const v = argv[++i];
      if (v === undefined || v === "") return "--socket needs a path";
      socketPath = v;
    } else if (arg.startsWith("--socket=")) {
      socketPath = arg.slice("--socket=".length);
      if (socketPath === "") return "--socket needs a path";
    } else if (arg === "--host-proc") {
      hostProc = argv[++i];
      if (hostProc === undefined || !hostProc.startsWith("/")) return "--host-proc needs an absolute path";
    } else return `unknown argument ${JSON.stringify(arg)}`;
  }
  return hostProc === undefined ? { socketPath } : { socketPath, hostProc };
}

async function main(): Promise<void> {
  const parsed = parseArgs(process.argv.slice(2));
  if (typeof parsed === "string") {
    process.stderr.write(parsed === "" ? USAGE : `skein-cni-server: ${parsed}\n${USAGE}`);
    process.exit(parsed === "" ? 0 : 2);
  }
  process.on("unhandledRejection", (err) => {
    process.stderr.write(`skein-cni-server: unhandled rejection: ${describe(err)}\n`);
  });
  let server: CniServer;
  try {
    server = await CniServer.start({ ...parsed, onFatal: () => process.exit(1) });
  } catch (err) {
    process.stderr.write(`skein-cni-server: cannot start: ${describe(err)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`skein-cni-server: ${signal}: stopping\n`);
    void server.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// No top-level await: the installed bundle is CommonJS.
void main();
