/**
 * The resident CNI server: the skein-cni shim forwards each invocation (environment, argv, stdin)
 * over a unix socket, and this process runs the same dispatcher as the per-call plugin, in-process,
 * answering stdout, stderr and the exit code (frames: server-codec.ts). Node's start-up (70–80 ms
 * on a loaded node) is paid once instead of on every pod's ADD and DEL.
 *
 * One invocation at a time, in the order their requests completed: IPAM's lock and the setns the
 * kernel code does on the main thread assume one operation at a time. A request whose client went
 * away is still run to its end (the runtime will DEL); its answer is discarded. Nothing of one call
 * outlives it: the dispatcher gets the request's environment and stdin (never this process's), its
 * output is captured, tracing goes to the request's stderr, and the main thread's network namespace
 * is checked after every call (a thread left in a pod's namespace is fatal).
 */
import { accessSync, chmodSync, constants, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { dispatch, type DispatchOptions } from "./dispatcher.js";
import { describe, ErrorCode } from "./errors.js";
import type { Kernel } from "./kernel.js";
import { CURRENT_VERSION } from "./spec.js";
import { traceTo } from "./trace.js";
import {
  encodeResponse,
  envRecord,
  RequestReader,
  type CniRequest,
  type CniResponse,
} from "./server-codec.js";

/** The server could not start; the message says why (shown to the operator as is). */
export class ServerStartError extends Error {
  override readonly name = "ServerStartError";
}

/** How to run a server. */
export interface CniServerOptions {
  /** Filesystem path of the unix socket. Its directory is created (0700) when missing. */
  socketPath: string;
  /** One line per call and per event (no newline); default: this process's stderr. */
  log?: (line: string) => void;
  /** The node to act on; default: the real one (LinuxKernel, loaded on first use). */
  kernel?: DispatchOptions["kernel"];
  /**
   * Called when continuing would be unsafe (the main thread is in another network namespace after
   * a call). The server has stopped accepting; the process should exit non-zero. Default: throws.
   */
  onFatal?: (err: Error) => void;
  /** A client must send its whole request within this time (default 30 s), or it is dropped. */
  requestTimeoutMs?: number;
  /**
   * Where the host's /proc is mounted when the server runs in a container without the host's PID
   * namespace (the DaemonSet mounts it at /host/proc): CNI_NETNS paths under /proc/ (runtimes
   * that name a sandbox by PID) are opened there instead. Results still name the runtime's path.
   */
  hostProc?: string;
}

/**
 * `kernel` opening network namespaces named /proc/... under `hostProc` instead: every method that
 * takes a namespace path maps it; everything else passes through.
 */
export function withHostProc(kernel: Kernel, hostProc: string): Kernel {
  const map = (path: string): string =>
    path.startsWith("/proc/") ? join(hostProc, path.slice("/proc/".length)) : path;
  return {
    uplinkMtu: () => kernel.uplinkMtu(),
    netnsState: (path) => kernel.netnsState(map(path)),
    linkIndex: (name) => kernel.linkIndex(name),
    linkNames: () => kernel.linkNames(),
    createHostSide: (w) => {
      kernel.createHostSide({ ...w, netns: map(w.netns) });
    },
    configurePodSide: (w) => {
      kernel.configurePodSide({ ...w, netns: map(w.netns) });
    },
    deleteLink: (name) => kernel.deleteLink(name),
    deleteLinkAsync: (name) => kernel.deleteLinkAsync(name),
    missingPins: (root) => kernel.missingPins(root),
    openDatapath: (root) => kernel.openDatapath(root),
    inspectHost: (ifname, ip) => kernel.inspectHost(ifname, ip),
    inspectPod: (netns, ifname) => kernel.inspectPod(map(netns), ifname),
  };
}

/** One complete request waiting for its turn. */
interface Job {
  request: CniRequest;
  conn: Socket;
  /** performance.now() when the request was complete. */
  arrivedMs: number;
}

/** What one call produced, for the log line. */
interface CallRecord {
  verb: string;
  attachment: string;
  exitCode: number;
  runMs: number;
  queuedMs: number;
  error?: string;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30000;
const PROBE_TIMEOUT_MS = 2000;

/** Inode of the calling thread's network namespace. */
function threadNetnsInode(): number {
  return statSync("/proc/thread-self/ns/net").ino;
}

/** The CNI error object a malformed request is answered with. */
function badRequestResponse(message: string, socketPath: string): CniResponse {
  const version = message.startsWith("unsupported protocol version");
  const result = {
    cniVersion: CURRENT_VERSION,
    // A shim of another release (a rolling upgrade) is transient; garbage is an I/O failure.
    code: version ? ErrorCode.tryAgainLater : ErrorCode.ioFailure,
    msg: `skein-cni server on ${socketPath} refused the request: ${message}`,
    details: "",
  };
  return {
    exitCode: 1,
    stdout: JSON.stringify(result) + "\n",
    stderr: `skein-cni-server: bad request: ${message}\n`,
  };
}

/** Creates the socket's directory (0700) when missing; throws ServerStartError when it is unusable. */
function prepareDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new ServerStartError(`socket directory ${dir} is not usable: ${describe(err)}`, { cause: err });
  }
}

/** Whether a server answers on `path`: "live", "refused" (stale socket) or another errno code. */
function probe(path: string): Promise<string> {
  return new Promise((resolvePromise) => {
    const c = createConnection(path);
    const done = (outcome: string): void => {
      clearTimeout(timer);
      c.destroy();
      resolvePromise(outcome);
    };
    // A live server busy with a call still accepts (the backlog); silence means something is wrong.
    const timer = setTimeout(() => {
      done("ETIMEDOUT");
    }, PROBE_TIMEOUT_MS);
    c.once("connect", () => {
      done("live");
    });
    c.once("error", (err: NodeJS.ErrnoException) => {
      done(err.code === "ECONNREFUSED" ? "refused" : (err.code ?? err.message));
    });
  });
}

/**
 * Removes a stale socket at `path` (nothing listens on it). Throws ServerStartError when another
 * server answers there, or the path is something else than a socket.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new ServerStartError(`cannot inspect ${path}: ${describe(err)}`, { cause: err });
  }
  if (!isSocket) throw new ServerStartError(`${path} exists and is not a socket (not removing it)`);
  const outcome = await probe(path);
  if (outcome === "live") throw new ServerStartError(`another skein-cni server is running on ${path}`);
  if (outcome !== "refused") throw new ServerStartError(`cannot tell whether ${path} is in use: ${outcome}`);
  try {
    unlinkSync(path);
  } catch (err) {
    throw new ServerStartError(`cannot remove the stale socket ${path}: ${describe(err)}`, { cause: err });
  }
}

/**
 * A listening CNI server. Create with `CniServer.start`; `close()` stops it (the owner must call it:
 * it removes the socket).
 */
export class CniServer {
  readonly socketPath: string;
  readonly #server: Server;
  readonly #log: (line: string) => void;
  readonly #dispatchOptions: DispatchOptions;
  readonly #onFatal: (err: Error) => void;
  readonly #requestTimeoutMs: number;
  readonly #socketIno: number;
  readonly #homeNetns: number;
  readonly #queue: Job[] = [];
  /** Connections whose request is not complete yet: dropped on close. */
  readonly #receiving = new Set<Socket>();
  #running: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #calls = 0;

  private constructor(
    socketPath: string,
    server: Server,
    socketIno: number,
    options: CniServerOptions,
    log: (line: string) => void,
  ) {
    this.socketPath = socketPath;
    this.#server = server;
    this.#socketIno = socketIno;
    this.#log = log;
    let kernel: Kernel | undefined;
    this.#dispatchOptions = {
      kernel:
        options.kernel ??
        (async () => {
          if (kernel === undefined) {
            const linux = new (await import("./linux.js")).LinuxKernel();
            kernel = options.hostProc === undefined ? linux : withHostProc(linux, options.hostProc);
          }
          return kernel;
        }),
    };
    this.#onFatal =
      options.onFatal ??
      ((err) => {
        throw err;
      });
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#homeNetns = threadNetnsInode();
    server.on("connection", (conn) => {
      this.#accept(conn);
    });
  }

  /**
   * Prepares the socket's directory, clears a stale socket, listens (socket mode 0600). Throws
   * ServerStartError naming the problem: directory not usable, another server running, the path
   * taken by something else, or listen failing.
   */
  static async start(options: CniServerOptions): Promise<CniServer> {
    const path = resolve(options.socketPath);
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    prepareDirectory(dirname(path));
    await clearStaleSocket(path);
    const server = createServer({ allowHalfOpen: true });
    // bind() happens inside listen(), synchronously: the socket is born 0600, never reachable wider.
    const umask = process.umask(0o177);
    try {
      server.listen(path);
    } finally {
      process.umask(umask);
    }
    try {
      await new Promise<void>((resolvePromise, reject) => {
        server.once("listening", resolvePromise);
        server.once("error", reject);
      });
      chmodSync(path, 0o600);
    } catch (err) {
      server.close();
      throw new ServerStartError(`cannot listen on ${path}: ${describe(err)}`, { cause: err });
    }
    const server_ = new CniServer(path, server, lstatSync(path).ino, options, log);
    log(`skein-cni-server: listening on ${path} (pid ${process.pid})`);
    return server_;
  }

  /** Calls answered so far. */
  get calls(): number {
    return this.#calls;
  }

  #accept(conn: Socket): void {
    const reader = new RequestReader();
    this.#receiving.add(conn);
    // A client that went away: its answer is discarded, nothing else to do.
    conn.on("error", () => undefined);
    conn.on("close", () => this.#receiving.delete(conn));
    conn.setTimeout(this.#requestTimeoutMs, () => {
      if (this.#receiving.has(conn)) conn.destroy();
    });
    const onData = (chunk: Buffer): void => {
      const state = reader.push(chunk);
      if (state.kind === "partial") return;
      this.#receiving.delete(conn);
      conn.setTimeout(0);
      conn.off("data", onData);
      conn.pause();
      if (state.kind === "error") {
        this.#log(`skein-cni-server: bad request: ${state.message}`);
        conn.end(encodeResponse(badRequestResponse(state.message, this.socketPath)));
        return;
      }
      this.#queue.push({ request: state.request, conn, arrivedMs: performance.now() });
      this.#running ??= this.#drain();
    };
    conn.on("data", onData);
  }

  async #drain(): Promise<void> {
    try {
      for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) await this.#run(job);
    } finally {
      this.#running = undefined;
    }
  }

  async #run(job: Job): Promise<void> {
    const startedMs = performance.now();
    const env = envRecord(job.request.env);
    let stdout = "";
    let stderr = "";
    const io = {
      env,
      readStdin: () => job.request.stdin,
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
    };
    traceTo(env.SKEIN_CNI_TRACE === "1" ? (line) => (stderr += `${line}\n`) : undefined, job.arrivedMs);
    let exitCode: number;
    try {
      exitCode = await dispatch(io, this.#dispatchOptions);
    } catch (err) {
      // dispatch() never rejects; should it, the client still gets a CNI error.
      exitCode = 1;
      stdout =
        JSON.stringify({ cniVersion: CURRENT_VERSION, code: ErrorCode.internal, msg: describe(err) }) + "\n";
    } finally {
      traceTo(undefined);
    }
    this.#calls++;
    const record: CallRecord = {
      verb: env.CNI_COMMAND ?? "?",
      attachment: env.CNI_CONTAINERID === undefined ? "" : `${env.CNI_CONTAINERID}/${env.CNI_IFNAME ?? ""}`,
      exitCode,
      runMs: performance.now() - startedMs,
      queuedMs: startedMs - job.arrivedMs,
    };
    if (exitCode !== 0) record.error = errorSummary(stdout);
    if (!job.conn.destroyed) job.conn.end(encodeResponse({ exitCode, stdout, stderr }));
    this.#logCall(record);
    this.#checkNetns();
  }

  #logCall(r: CallRecord): void {
    this.#log(
      `skein-cni-server: ${r.verb}${r.attachment === "" ? "" : ` ${r.attachment}`} exit ${r.exitCode}` +
        ` in ${r.runMs.toFixed(1)} ms (queued ${r.queuedMs.toFixed(1)} ms)${r.error === undefined ? "" : `: ${r.error}`}`,
    );
  }

  #checkNetns(): void {
    let now: number | undefined;
    try {
      now = threadNetnsInode();
    } catch {
      now = undefined;
    }
    if (now === this.#homeNetns) return;
    const err = new Error(
      `the main thread is no longer in the server's network namespace (inode ${this.#homeNetns}, now ${now ?? "unreadable"}); stopping`,
    );
    this.#log(`skein-cni-server: fatal: ${err.message}`);
    void this.close().finally(() => {
      this.#onFatal(err);
    });
  }

  /**
   * Stops accepting, drops connections that have not sent a whole request, finishes every request
   * already received, removes the socket (when it is still ours). Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#server.close();
      for (const conn of this.#receiving) conn.destroy();
      this.#receiving.clear();
      while (this.#running !== undefined) await this.#running;
      try {
        // A newer server may already have replaced a socket we lost: remove only our own.
        if (lstatSync(this.socketPath).ino === this.#socketIno) unlinkSync(this.socketPath);
      } catch {
        // already gone
      }
      this.#log(`skein-cni-server: stopped after ${this.#calls} calls`);
    })();
    return this.#closing;
  }
}

/** "[code] msg" of a CNI error object on stdout, or its first line. */
function errorSummary(stdout: string): string {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown };
    return `[${String(e.code)}] ${String(e.msg)}`;
  } catch {
    return stdout.split("\n")[0] ?? "";
  }
}
