/**
 * Starting the resident CNI server the way a node does (inside the node's network namespace) and
 * stopping it by PID, for tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO, SYSTEM_PATH, netnsPath, type PluginForm } from "./plugin-harness.js";

/** The tsc output of the server entry. */
export const BUILT_SERVER = join(REPO, "dist", "cni", "server-main.js");

/** A running server process. */
export interface RunningServer {
  child: ChildProcess;
  pid: number;
  socketPath: string;
  /** Everything it wrote to stderr so far. */
  log(): string;
  /** Resolves with the exit code (or signal) once it has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `argv` (node + entry, or the installed node + bundle) with `--socket socketPath` inside
 * `nodeNetns`, and waits until it listens. Rejects with its stderr when it exits first.
 */
export function startServer(
  nodeNetns: string,
  socketPath: string,
  argv: readonly string[] = [process.execPath, BUILT_SERVER],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  // nsenter execs the server: the PID is the server's own.
  const child = spawn("nsenter", [`--net=${netnsPath(nodeNetns)}`, "--", ...argv, "--socket", socketPath], {
    env: { PATH: SYSTEM_PATH, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolvePromise) => {
    child.on("exit", (code, signal) => {
      resolvePromise({ code, signal });
    });
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not start within 30 s: ${stderr}`));
    }, 30000);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("listening on")) {
        clearTimeout(timer);
        resolvePromise({
          child,
          pid: child.pid ?? -1,
          socketPath,
          log: () => stderr,
          exited,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
            return exited;
          },
        });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
}

/** Open file descriptors of a process (names of /proc/PID/fd entries' targets). */
export function openFds(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`);
}

/** The test client's command form (dist/test/cni/server-client.js). */
export const CLIENT = join(REPO, "dist", "test", "cni", "server-client.js");

/**
 * The plugin "through the server": the runtime's call goes to the test client, which forwards it
 * to the server on `socketPath` (already running in the node's namespace) as the shim would.
 */
export function serverForm(socketPath: string): PluginForm {
  return {
    name: "server",
    command: () => [process.execPath, CLIENT, socketPath],
    cwd: REPO,
  };
}

/** argv of the installed server bundle in a CNI bin directory. */
export function installedServer(binDir: string): string[] {
  return [join(binDir, "skein-cni.d", "node"), join(binDir, "skein-cni.d", "skein-cni-server.cjs")];
}
