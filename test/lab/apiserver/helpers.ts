/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument -- JSON from the wire is untyped; the assertions check its shape */
/** Test helpers for the lab API server: raw HTTP, watch streams, kubectl lookup. */
import { execFile } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders, type ClientRequest } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { inCi } from "../../helpers/privileged.js";

const run = promisify(execFile);

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  /** Parsed JSON body (undefined when it is not JSON). */
  json: any;
}

/** One HTTP request on its own connection (no keep-alive pool to leak). */
export function http(
  base: string,
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const headers: Record<string, string> = { Connection: "close", ...options.headers };
    if (options.body !== undefined && headers["Content-Type"] === undefined)
      headers["Content-Type"] = "application/json";
    // Node sends DELETE bodies unframed unless told their length.
    if (options.body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(options.body));
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        const text = body.toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
      });
    });
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** A raw watch stream: parsed events as they arrive; `close()` aborts the connection. */
export class WatchStream {
  readonly events: { type: string; object: any }[] = [];
  ended = false;
  status = 0;
  #req: ClientRequest;
  #waiters: (() => void)[] = [];

  constructor(base: string, path: string, headers: Record<string, string> = {}) {
    this.#req = httpRequest(
      new URL(path, base),
      { headers: { Connection: "close", ...headers }, agent: false },
      (res) => {
        this.status = res.statusCode ?? 0;
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() !== "") this.events.push(JSON.parse(line));
          }
          this.#wake();
        });
        res.on("end", () => {
          this.ended = true;
          this.#wake();
        });
        res.on("error", () => undefined);
      },
    );
    this.#req.on("error", () => {
      this.ended = true;
      this.#wake();
    });
    this.#req.end();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves once `cond()` holds; rejects after `timeoutMs`. */
  async until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `watch stream: condition not met in ${timeoutMs} ms; events: ${JSON.stringify(this.events.map((e) => e.type))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.#req.destroy();
  }
}

/** Polls `cond` every 10 ms until it holds; throws with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** Debian's kubectl, as unpacked by scripts/ensure-kubectl.sh. */
export const DEBIAN_KUBECTL = "/opt/skein-tools/kubernetes-client/usr/bin/kubectl";

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path of Debian's kubectl. When it is missing: in CI this fails (CI must provision it);
 * elsewhere it runs scripts/ensure-kubectl.sh, and skips the suite if that cannot fetch it.
 */
export async function debianKubectl(ctx: Mocha.Context): Promise<string> {
  if (await executable(DEBIAN_KUBECTL)) return DEBIAN_KUBECTL;
  if (inCi()) throw new Error(`${DEBIAN_KUBECTL} is missing: CI must run scripts/ensure-kubectl.sh first`);
  try {
    const { stdout } = await run("bash", [join(REPO, "scripts/ensure-kubectl.sh")], { timeout: 300_000 });
    const path = stdout.trim().split("\n").pop() ?? "";
    if (await executable(path)) return path;
  } catch {
    // fall through to the skip
  }
  ctx.skip();
}
