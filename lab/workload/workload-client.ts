/** Talking to a lab workload process over its control socket. */
import { createConnection } from "node:net";
import type { ProbeRequest, ProbeResult, TransferRequest, TransferResult } from "./workload.js";

function request<T>(controlPath: string, body: object, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(controlPath);
    let buf = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`workload ${controlPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(JSON.stringify(body) + "\n"));
    sock.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        try {
          resolve(JSON.parse(buf.slice(0, nl)) as T);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`workload ${controlPath}: ${err.message}`));
    });
  });
}

export function probe(controlPath: string, req: Omit<ProbeRequest, "op">): Promise<ProbeResult> {
  return request<ProbeResult>(controlPath, { op: "probe", ...req }, req.timeoutMs + 5000);
}

export function transfer(controlPath: string, req: Omit<TransferRequest, "op">): Promise<TransferResult> {
  return request<TransferResult>(controlPath, { op: "transfer", ...req }, req.timeoutMs + 5000);
}

export async function isAlive(controlPath: string): Promise<boolean> {
  try {
    await request<{ ok: boolean }>(controlPath, { op: "ping" }, 2000);
    return true;
  } catch {
    return false;
  }
}

/** Opens a TCP connection from the workload and keeps it; returns its id. */
export function holdConnection(
  controlPath: string,
  host: string,
  port: number,
  timeoutMs = 2000,
): Promise<{ ok: boolean; id?: number; error?: string }> {
  return request(controlPath, { op: "hold", host, port, timeoutMs }, timeoutMs + 5000);
}

/** Round trip through a held connection. */
export function exchange(
  controlPath: string,
  id: number,
  timeoutMs = 2000,
): Promise<{ ok: boolean; error?: string; ms: number }> {
  return request(controlPath, { op: "exchange", id, timeoutMs }, timeoutMs + 5000);
}

export function release(controlPath: string, id: number): Promise<{ ok: boolean }> {
  return request(controlPath, { op: "release", id }, 5000);
}
