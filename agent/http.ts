/**
 * The agent's local HTTP endpoints: /healthz (alive, datapath pinned), /readyz (node programmed),
 * /metrics (Prometheus), and /v1/* for skeinctl (status, identities, rules, pods, cidrs).
 */
import { createServer, type Server } from "node:http";
import type { Agent } from "./agent.js";
import { isDatapathPinned } from "../maps/datapath/pinned.js";
import { errorFields, type Logger } from "./log.js";

export interface Listen {
  host: string;
  port: number;
}

export function parseListen(text: string, what: string): Listen {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(text);
  if (m === null) throw new Error(`${what}: expected HOST:PORT, got ${JSON.stringify(text)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`${what}: port ${port} out of range`);
  const host = m[1] ?? "";
  return { host: host === "" ? "0.0.0.0" : host.replace(/^\[|\]$/g, ""), port };
}

function send(
  res: import("node:http").ServerResponse,
  code: number,
  body: unknown,
  type = "application/json",
): void {
  const text =
    type === "application/json"
      ? JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v)) + "\n"
      : String(body);
  res.writeHead(code, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Serves `agent` on `listen`. Resolves with the listening server; close it to stop. */
export function serveAgent(
  agent: Agent,
  listen: Listen,
  log: Logger,
  options: { metrics?: boolean; api?: boolean } = {},
): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://agent");
    void (async () => {
      try {
        if (req.method !== "GET") {
          send(res, 405, { error: "method not allowed" });
          return;
        }
        switch (url.pathname) {
          case "/healthz": {
            const pinned = isDatapathPinned(agent.options.bpffsRoot);
            send(res, pinned ? 200 : 503, { ok: pinned, datapathPinned: pinned });
            return;
          }
          case "/readyz": {
            const s = agent.status();
            send(res, s.ready ? 200 : 503, { ready: s.ready, reason: s.reason });
            return;
          }
          case "/metrics":
            if (options.metrics === false) break;
            agent.refreshGauges();
            send(res, 200, await agent.metrics.text(), agent.metrics.contentType);
            return;
          case "/v1/status":
            if (options.api === false) break;
            await agent.refreshStatus();
            send(res, 200, agent.status());
            return;
          case "/v1/identities":
            if (options.api === false) break;
            send(
              res,
              200,
              [...agent.options.policy.identities()].map(([id, info]) => ({ id, ...info })),
            );
            return;
          case "/v1/rules": {
            if (options.api === false) break;
            const ids = url.searchParams.getAll("id").map(Number);
            send(
              res,
              200,
              ids.map((id) => ({ id, rule: agent.options.policy.rule(id) ?? null })),
            );
            return;
          }
          case "/v1/pods":
            if (options.api === false) break;
            send(
              res,
              200,
              [...agent.podsByIp()].map(([ip, p]) => ({ ip, ...p })),
            );
            return;
          case "/v1/cidrs":
            // ipBlock prefixes and their CIDR identities (skeinctl names CIDR identities with it).
            if (options.api === false) break;
            send(
              res,
              200,
              [...agent.options.policy.cidrPrefixes()].map(([cidr, id]) => ({ cidr, id })),
            );
            return;
        }
        send(res, 404, { error: `no such endpoint ${url.pathname}` });
      } catch (err) {
        log.warn("http handler failed", { path: url.pathname, ...errorFields(err) });
        if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
