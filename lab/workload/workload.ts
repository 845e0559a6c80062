/**
 * The lab's stand-in for a container: one process per pod (or node, or world) network namespace.
 * It serves TCP and UDP on the given ports (answering with its name and the peer it saw), and it
 * runs probes on request from inside its namespace. Requests arrive as JSON lines on a Unix socket,
 * which reaches across network namespaces because it lives in the filesystem.
 *
 *   node workload.js --name x/a --control /run/skein-lab/ID/x-a.sock --tcp 80,81 --udp 80,81
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { rmSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { probeSctp, serveSctp } from "./sctp.js";

export type ProbeProtocol = "TCP" | "UDP" | "ICMP" | "SCTP";

export interface ProbeRequest {
  op: "probe";
  protocol: ProbeProtocol;
  host: string;
  port: number;
  timeoutMs: number;
}

export interface ProbeResult {
  ok: boolean;
  /** What the server answered (its name and the source address it saw). */
  reply?: { name: string; peer: string };
  error?: string;
  ms: number;
}

export interface TransferRequest {
  op: "transfer";
  host: string;
  port: number;
  bytes: number;
  writeSize: number;
  timeoutMs: number;
}

export interface TransferResult {
  ok: boolean;
  /** sha256 of what was sent and of what the server reported receiving. */
  sent?: string;
  received?: string;
  bytes?: number;
  error?: string;
  ms: number;
}

/** A server answers a TCP connection with one JSON line: {name, peer}; "sink\n" switches it to counting mode. */
function serveTcp(name: string, port: number): void {
  // Half-open: a sink client ends its side first and then reads the digest.
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sock.setNoDelay(true);
    let mode: "idle" | "sink" = "idle";
    let received = 0;
    const hash = import("node:crypto").then((c) => c.createHash("sha256"));
    let head = "";
    sock.on("data", (chunk: Buffer) => {
      if (mode === "sink") {
        received += chunk.length;
        void hash.then((h) => h.update(chunk));
        return;
      }
      head += chunk.toString("latin1");
      const nl = head.indexOf("\n");
      if (nl < 0) return;
      const cmd = head.slice(0, nl);
      const rest = Buffer.from(head.slice(nl + 1), "latin1");
      if (cmd.startsWith("sink")) {
        mode = "sink";
        received += rest.length;
        void hash.then((h) => h.update(rest));
      } else if (cmd.startsWith("echo")) {
        // Held connections: everything after the first line comes back unchanged.
        sock.removeAllListeners("data");
        sock.on("data", (d: Buffer) => sock.write(d));
        if (rest.length > 0) sock.write(rest);
      } else {
        sock.end(JSON.stringify({ name, peer: sock.remoteAddress ?? "" }) + "\n");
      }
    });
    sock.on("end", () => {
      if (mode === "sink")
        void hash.then((h) =>
          sock.end(JSON.stringify({ name, bytes: received, sha256: h.digest("hex") }) + "\n"),
        );
    });
    sock.on("error", () => sock.destroy());
  });
  server.on("error", (err) => process.stderr.write(`tcp ${port}: ${err.message}\n`));
  server.listen(port, "0.0.0.0");
}

function serveUdp(name: string, port: number): void {
  const sock = createSocket("udp4");
  sock.on("message", (_msg, rinfo) => {
    sock.send(JSON.stringify({ name, peer: rinfo.address }), rinfo.port, rinfo.address);
  });
  sock.on("error", (err) => process.stderr.write(`udp ${port}: ${err.message}\n`));
  sock.bind(port, "0.0.0.0");
}

/**
 * The completion of one client operation: the first outcome wins, stops the timeout, runs `close`
 * and resolves with the milliseconds since `start`; with no outcome within `timeoutMs` it resolves
 * as a timeout.
 */
function settleOnce<R extends { ok: boolean; error?: string; ms: number }>(opts: {
  start: number;
  timeoutMs: number;
  close: () => void;
  resolve: (r: R) => void;
}): (r: Omit<R, "ms">) => void {
  let done = false;
  const finish = (r: Omit<R, "ms">) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    opts.close();
    opts.resolve({ ...r, ms: Math.round(performance.now() - opts.start) } as R);
  };
  const timer = setTimeout(() => {
    finish({ ok: false, error: "timeout" } as Omit<R, "ms">);
  }, opts.timeoutMs);
  return finish;
}

function probeTcp(req: ProbeRequest): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    let data = "";
    const sock: Socket = createConnection({ host: req.host, port: req.port });
    const finish = settleOnce<ProbeResult>({
      start,
      timeoutMs: req.timeoutMs,
      close: () => sock.destroy(),
      resolve,
    });
    sock.on("connect", () => sock.write("hello\n"));
    sock.on("data", (d: Buffer) => {
      data += d.toString();
      if (data.includes("\n")) {
        try {
          finish({
            ok: true,
            reply: JSON.parse(data.slice(0, data.indexOf("\n"))) as { name: string; peer: string },
          });
        } catch {
          finish({ ok: false, error: "bad reply" });
        }
      }
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      finish({ ok: false, error: err.code ?? err.message });
    });
  });
}

/**
 * A connected UDP socket, as resolvers use for DNS: the kernel hands it only datagrams from the
 * address it connected to (a Service's reply must come back from the ClusterIP, not the backend),
 * and an ICMP unreachable surfaces as ECONNREFUSED at once instead of a timeout.
 */
function probeUdp(req: ProbeRequest): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const sock = createSocket("udp4");
    let resend: NodeJS.Timeout | undefined;
    const finish = settleOnce<ProbeResult>({
      start,
      timeoutMs: req.timeoutMs,
      close: () => {
        clearInterval(resend);
        sock.close();
      },
      resolve,
    });
    sock.on("message", (msg) => {
      try {
        finish({ ok: true, reply: JSON.parse(msg.toString()) as { name: string; peer: string } });
      } catch {
        finish({ ok: false, error: "bad reply" });
      }
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      finish({ ok: false, error: err.code ?? err.message });
    });
    // UDP may lose the first datagram while a neighbour resolves; resend a few times.
    const send = () => {
      try {
        sock.send("hello");
      } catch {
        // Closed by a timeout while the name was still resolving.
      }
    };
    sock.connect(req.port, req.host, () => {
      send();
      resend = setInterval(send, Math.max(50, Math.floor(req.timeoutMs / 4)));
    });
  });
}

function probeIcmp(req: ProbeRequest): Promise<ProbeResult> {
  const start = performance.now();
  const wait = Math.max(1, Math.ceil(req.timeoutMs / 1000));
  return new Promise((resolve) => {
    execFile("ping", ["-n", "-c", "1", "-W", String(wait), req.host], (err) => {
      resolve({
        ok: err === null,
        ...(err === null ? {} : { error: "no reply" }),
        ms: Math.round(performance.now() - start),
      });
    });
  });
}

function transfer(req: TransferRequest): Promise<TransferResult> {
  const start = performance.now();
  return import("node:crypto").then(
    ({ createHash, randomBytes }) =>
      new Promise<TransferResult>((resolve) => {
        const sent = createHash("sha256");
        let reply = "";
        const sock = createConnection({ host: req.host, port: req.port });
        const finish = settleOnce<TransferResult>({
          start,
          timeoutMs: req.timeoutMs,
          close: () => sock.destroy(),
          resolve,
        });
        sock.on("error", (err: NodeJS.ErrnoException) => {
          finish({ ok: false, error: err.code ?? err.message });
        });
        sock.on("data", (d: Buffer) => (reply += d.toString()));
        sock.on("end", () => {
          try {
            const r = JSON.parse(reply.trim()) as { bytes: number; sha256: string };
            const digest = sent.digest("hex");
            finish({
              ok: r.sha256 === digest && r.bytes === req.bytes,
              sent: digest,
              received: r.sha256,
              bytes: r.bytes,
            });
          } catch {
            finish({ ok: false, error: `bad reply ${JSON.stringify(reply)}` });
          }
        });
        sock.on("connect", () => {
          sock.write("sink\n");
          let left = req.bytes;
          const pump = () => {
            while (left > 0) {
              const chunk = randomBytes(Math.min(req.writeSize, left));
              left -= chunk.length;
              sent.update(chunk);
              if (!sock.write(chunk)) {
                sock.once("drain", pump);
                return;
              }
            }
            sock.end();
          };
          pump();
        });
      }),
  );
}

/** Connections held open for tests of established flows, by id. */
const held = new Map<number, Socket>();
let nextHeld = 1;

export interface HoldRequest {
  op: "hold";
  host: string;
  port: number;
  timeoutMs: number;
}

export interface ExchangeRequest {
  op: "exchange";
  id: number;
  timeoutMs: number;
}

function hold(req: HoldRequest): Promise<{ ok: boolean; id?: number; error?: string }> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: req.host, port: req.port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, error: "timeout" });
    }, req.timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.setNoDelay(true);
      sock.write("echo\n");
      const id = nextHeld++;
      held.set(id, sock);
      sock.on("error", () => undefined);
      sock.on("close", () => held.delete(id));
      resolve({ ok: true, id });
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, error: err.code ?? err.message });
    });
  });
}

/** Sends a token through a held connection and waits for it to come back. */
function exchange(req: ExchangeRequest): Promise<{ ok: boolean; error?: string; ms: number }> {
  const start = performance.now();
  const sock = held.get(req.id);
  if (sock === undefined) return Promise.resolve({ ok: false, error: "connection closed", ms: 0 });
  const token = `t${Math.random().toString(36).slice(2)}\n`;
  return new Promise((resolve) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes(token)) finish({ ok: true });
    };
    const finish = (r: { ok: boolean; error?: string }) => {
      clearTimeout(timer);
      sock.off("data", onData);
      resolve({ ...r, ms: Math.round(performance.now() - start) });
    };
    const timer = setTimeout(() => {
      finish({ ok: false, error: "timeout" });
    }, req.timeoutMs);
    sock.on("data", onData);
    sock.write(token);
  });
}

async function handle(line: string): Promise<unknown> {
  const req = JSON.parse(line) as
    | ProbeRequest
    | TransferRequest
    | HoldRequest
    | ExchangeRequest
    | { op: "ping" }
    | { op: "release"; id: number };
  switch (req.op) {
    case "ping":
      return { ok: true, pid: process.pid };
    case "hold":
      return hold(req);
    case "exchange":
      return exchange(req);
    case "release":
      held.get(req.id)?.destroy();
      held.delete(req.id);
      return { ok: true };
    case "probe":
      if (req.protocol === "TCP") return probeTcp(req);
      if (req.protocol === "UDP") return probeUdp(req);
      if (req.protocol === "SCTP") {
        const start = performance.now();
        const ok = await probeSctp(req.host, req.port, req.timeoutMs);
        return { ok, ...(ok ? {} : { error: "no INIT-ACK" }), ms: Math.round(performance.now() - start) };
      }
      return probeIcmp(req);
    case "transfer":
      return transfer(req);
  }
}

function serveControl(path: string): void {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let buf = "";
    sock.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        handle(line)
          .then((r) => sock.write(JSON.stringify(r) + "\n"))
          .catch((err: unknown) => sock.write(JSON.stringify({ ok: false, error: String(err) }) + "\n"));
      }
    });
    sock.on("error", () => sock.destroy());
  });
  server.listen(path);
  const cleanup = () => {
    rmSync(path, { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", cleanup);
  process.on("SIGINT", cleanup);
}

function ports(text: string | undefined): number[] {
  return (text ?? "")
    .split(",")
    .filter((p) => p !== "")
    .map(Number);
}

if (process.argv[1]?.endsWith("workload.js") === true) {
  const { values } = parseArgs({
    options: {
      name: { type: "string" },
      control: { type: "string" },
      tcp: { type: "string" },
      udp: { type: "string" },
      sctp: { type: "string" },
    },
  });
  const name = values.name ?? "workload";
  for (const p of ports(values.tcp)) serveTcp(name, p);
  for (const p of ports(values.udp)) serveUdp(name, p);
  if (ports(values.sctp).length > 0) serveSctp(ports(values.sctp), (l) => process.stderr.write(l + "\n"));
  if (values.control !== undefined) serveControl(values.control);
}
