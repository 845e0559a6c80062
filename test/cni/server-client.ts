/**
 * A test client of the resident CNI server, speaking the shim's protocol (cni/server-codec.ts):
 * as a library (callServer, sendRaw) and as a command that behaves like the shim without its
 * fallback, so plugin tests can run "through the server" as a runtime would run the shim:
 *
 *   node dist/test/cni/server-client.js SOCKET     (environment and stdin forwarded; exits with the answer's code)
 */
import { readFileSync, realpathSync, writeSync } from "node:fs";
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";
import { decodeResponse, encodeRequest } from "../../cni/server-codec.js";

/** What the server answered, with the client's view of the time it took. */
export interface ServerAnswer {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
  /** connect() to the end of the response, ms. */
  ms: number;
}

/** How a raw exchange ended. */
export interface RawOutcome {
  /** Everything the server sent before closing. */
  bytes: Buffer;
  /** The connection failed (errno code), rather than closing normally. */
  error?: string;
}

/**
 * Connects, writes `chunks` (with `gapMs` between them), half-closes when `end` (default true), and
 * collects the bytes until the server closes. `onSent` runs once everything is written.
 */
export function sendRaw(
  socketPath: string,
  chunks: readonly Buffer[],
  options: { end?: boolean; gapMs?: number; onSent?: () => void; timeoutMs?: number } = {},
): Promise<RawOutcome> {
  return new Promise((resolvePromise) => {
    const got: Buffer[] = [];
    const c = createConnection(socketPath);
    let settled = false;
    const finish = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolvePromise(
        error === undefined ? { bytes: Buffer.concat(got) } : { bytes: Buffer.concat(got), error },
      );
    };
    const timer = setTimeout(() => {
      finish("ETIMEDOUT");
    }, options.timeoutMs ?? 60000);
    c.on("data", (d: Buffer) => got.push(d));
    c.on("end", () => {
      finish();
    });
    c.on("close", () => {
      finish();
    });
    c.on("error", (err: NodeJS.ErrnoException) => {
      finish(err.code ?? err.message);
    });
    c.on("connect", () => {
      void (async () => {
        for (const [i, chunk] of chunks.entries()) {
          if (i > 0 && (options.gapMs ?? 0) > 0) await new Promise((r) => setTimeout(r, options.gapMs));
          if (c.destroyed) return;
          c.write(chunk);
        }
        if (options.end ?? true) c.end();
        options.onSent?.();
      })();
    });
  });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return text.trim() === "" ? undefined : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    return undefined;
  }
}

/**
 * One CNI call through the server: `env` as the shim's whole environment, `stdin` as its stdin.
 * Rejects when the connection fails or the server closes without a complete answer.
 */
export async function callServer(
  socketPath: string,
  env: Readonly<Record<string, string>>,
  stdin: string,
  options: { onSent?: () => void } = {},
): Promise<ServerAnswer> {
  const frame = encodeRequest({
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    args: [],
    stdin: Buffer.from(stdin, "utf8"),
  });
  const started = performance.now();
  const raw = await sendRaw(
    socketPath,
    [frame],
    options.onSent === undefined ? {} : { onSent: options.onSent },
  );
  const ms = performance.now() - started;
  if (raw.error !== undefined && raw.bytes.length === 0)
    throw new Error(`server on ${socketPath}: ${raw.error}`);
  const r = decodeResponse(raw.bytes);
  const stdout = r.stdout.toString("utf8");
  return { exitCode: r.exitCode, stdout, stderr: r.stderr.toString("utf8"), json: parseJson(stdout), ms };
}

function writeAll(fd: number, text: string): void {
  const data = Buffer.from(text, "utf8");
  for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
}

/** The command form: like the shim, without the fallback (a failure to reach the server exits 98). */
async function cli(): Promise<number> {
  const socketPath = process.argv[2];
  if (socketPath === undefined) {
    writeAll(2, "usage: server-client SOCKET\n");
    return 2;
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  let stdin = "";
  try {
    stdin = readFileSync(0, "utf8");
  } catch {
    stdin = "";
  }
  try {
    const answer = await callServer(socketPath, env, stdin);
    writeAll(1, answer.stdout);
    writeAll(2, answer.stderr);
    return answer.exitCode;
  } catch (err) {
    writeAll(2, `server-client: ${err instanceof Error ? err.message : String(err)}\n`);
    return 98;
  }
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url))
  void cli().then((code) => process.exit(code));
