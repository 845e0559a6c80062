/**
 * BIRD under the agent: one `bird -f -R` process with its own configuration file, control socket
 * and pid file in `dir` (one directory per node: several lab nodes share one machine), restarted
 * with capped backoff when it dies, reconfigured in place (`birdc configure`: no restart, sessions
 * stay up) when the configuration changes. Its stderr (the configuration's `log stderr all`) goes
 * into the agent's log; the import filter's refusals become warnings and are kept for the status.
 *
 * -R (graceful restart recovery) on every start: the kernel protocol does not prune the routes the
 * previous BIRD left in the kernel until the BGP sessions are back, so forwarding goes on.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createInterface } from "node:readline";
import { errorFields, type Logger } from "../log.js";
import { REJECT_MARKER } from "./bird-config.js";
import { birdc, parseProtocols, parseRoutes, type BirdProtocol, type BirdRoute } from "./birdc.js";

export interface BirdDaemonOptions {
  /** State directory: bird.conf, bird.ctl, bird.pid. Created when missing. */
  dir: string;
  log: Logger;
  birdPath?: string;
  birdcPath?: string;
  /** First restart delay after BIRD dies; doubles up to maxBackoffMs; reset after a minute up. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Run BIRD in this network namespace (a /var/run/netns path) through `nsenter`, which execs it:
   * the pid is BIRD's. Default: the agent's own (a lab agent already runs in its node's).
   */
  netns?: string;
}

/** A prefix BIRD's import filter refused. */
export interface RejectedRoute {
  prefix: string;
  from: string;
  at: string;
}

/** Owns one BIRD process; stop() ends it (routes stay: `persist`). */
export class BirdDaemon {
  readonly config: string;
  readonly socket: string;
  readonly pidFile: string;
  readonly #o: Required<Omit<BirdDaemonOptions, "log">> & { log: Logger };
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #backoffMs: number;
  #startedAt = 0;
  #restarts = 0;
  #lastExit: string | null = null;
  #text: string | null = null;
  readonly #rejected: RejectedRoute[] = [];

  constructor(options: BirdDaemonOptions) {
    this.#o = {
      birdPath: "bird",
      birdcPath: "birdc",
      backoffMs: 1000,
      maxBackoffMs: 30000,
      netns: "",
      ...options,
    };
    this.config = join(options.dir, "bird.conf");
    this.socket = join(options.dir, "bird.ctl");
    this.pidFile = join(options.dir, "bird.pid");
    this.#backoffMs = this.#o.backoffMs;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get restarts(): number {
    return this.#restarts;
  }

  get lastExit(): string | null {
    return this.#lastExit;
  }

  /** The last refused prefixes (at most 20), newest last. */
  get rejected(): readonly RejectedRoute[] {
    return this.#rejected;
  }

  /**
   * Makes BIRD run `text`: checks it (`bird -p`), writes it, then starts BIRD or has the running
   * one reload it. Throws when the text does not parse (the file and BIRD stay as they were) or
   * BIRD refuses the reload.
   */
  async apply(text: string): Promise<"started" | "reconfigured" | "unchanged"> {
    if (this.#stopping) throw new Error("BIRD is stopping");
    mkdirSync(this.#o.dir, { recursive: true });
    if (text === this.#text && this.running) return "unchanged";
    const tmp = `${this.config}.new`;
    writeFileSync(tmp, text);
    try {
      await run(this.#o.birdPath, ["-p", "-c", tmp]);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new Error("BIRD refused the rendered configuration", { cause: err });
    }
    renameSync(tmp, this.config);
    this.#text = text;
    if (!this.running) {
      if (this.#restartTimer === undefined) await this.#start();
      return "started";
    }
    const out = await birdc(this.socket, ["configure"], this.#o.birdcPath, 15000);
    if (!/Reconfigur|Reconfiguration in progress|already in progress/i.test(out))
      throw new Error(`birdc configure: ${out.trim()}`);
    return "reconfigured";
  }

  /** `show protocols all`, parsed. Throws when BIRD does not answer. */
  async protocols(): Promise<BirdProtocol[]> {
    return parseProtocols(await birdc(this.socket, ["show", "protocols", "all"], this.#o.birdcPath));
  }

  /** BGP-learned routes of BIRD's table (best paths and alternatives). */
  async bgpRoutes(): Promise<BirdRoute[]> {
    return parseRoutes(
      await birdc(this.socket, ["show", "route", "where", "source", "=", "RTS_BGP"], this.#o.birdcPath),
    );
  }

  async #start(): Promise<void> {
    // A BIRD left by an earlier agent (SIGKILLed: its child outlives it) holds the socket and
    // port 179: end it first. Its routes stay (persist), and -R keeps them until ours converges.
    await this.#endStale();
    const args = ["-f", "-R", "-c", this.config, "-s", this.socket, "-P", this.pidFile];
    const child =
      this.#o.netns === ""
        ? spawn(this.#o.birdPath, args, { stdio: ["ignore", "ignore", "pipe"] })
        : spawn("nsenter", [`--net=${this.#o.netns}`, this.#o.birdPath, ...args], {
            stdio: ["ignore", "ignore", "pipe"],
          });
    this.#child = child;
    this.#startedAt = Date.now();
    const log = this.#o.log;
    createInterface({ input: child.stderr }).on("line", (line) => {
      this.#logLine(line);
    });
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code, sig) => {
        this.#lastExit = sig === null ? `exit ${code ?? "?"}` : `signal ${sig}`;
        if (this.#child === child) this.#child = undefined;
        resolve();
        if (this.#stopping) return;
        if (Date.now() - this.#startedAt > 60000) this.#backoffMs = this.#o.backoffMs;
        const delay = this.#backoffMs;
        this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs);
        log.error("BIRD exited; restarting it (kernel routes stay meanwhile)", {
          pid: child.pid,
          exit: this.#lastExit,
          restartInMs: delay,
        });
        this.#restartTimer = setTimeout(() => {
          this.#restartTimer = undefined;
          this.#restarts++;
          void this.#start().catch((err: unknown) => {
            log.error("BIRD restart failed", errorFields(err));
          });
        }, delay);
      });
    });
    child.once("error", (err) => {
      log.error("BIRD did not start", { bird: this.#o.birdPath, ...errorFields(err) });
    });
    // Ready once the control socket answers (or the process is gone).
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && this.#child === child) {
      try {
        await birdc(this.socket, ["show", "status"], this.#o.birdcPath, 2000);
        log.info("BIRD running", { pid: child.pid, config: this.config, socket: this.socket });
        return;
      } catch {
        await sleep(50);
      }
    }
    if (this.#child !== child)
      throw new Error(`BIRD exited at start (${this.#lastExit ?? "?"}); see the log`);
    throw new Error(`BIRD's control socket ${this.socket} did not answer within 10 s`);
  }

  async #endStale(): Promise<void> {
    if (!existsSync(this.pidFile)) return;
    const pid = Number(readFileSync(this.pidFile, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 1 || pid === this.#child?.pid) return;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      return; // gone
    }
    // Only a BIRD running our configuration file: the pid may have been reused.
    if (!cmdline.includes("bird") || !cmdline.includes(this.config)) return;
    this.#o.log.info("ending a BIRD left by an earlier agent", { pid });
    // As stop() does: without a notification, so that peers keep this node's routes meanwhile.
    try {
      await birdc(this.socket, ["graceful", "restart"], this.#o.birdcPath, 10_000);
    } catch {
      process.kill(pid, "SIGKILL");
    }
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50);
    if (existsSync(`/proc/${pid}`)) process.kill(pid, "SIGKILL");
  }

  #logLine(line: string): void {
    const log = this.#o.log;
    const i = line.indexOf(REJECT_MARKER);
    if (i >= 0) {
      const m = /rejected (\S+) from (\S+?):/.exec(line.slice(i));
      const r = { prefix: m?.[1] ?? "?", from: m?.[2] ?? "?", at: new Date().toISOString() };
      this.#rejected.push(r);
      if (this.#rejected.length > 20) this.#rejected.shift();
      log.warn("BGP route rejected: not another node's pod CIDR (never installed)", r);
      return;
    }
    const level = /<(\w+)>/.exec(line)?.[1] ?? "";
    const msg = line.replace(/^\S+ \S+ <\w+> /, "");
    if (level === "ERR" || level === "FATAL" || level === "BUG") log.error("bird", { line: msg });
    else if (level === "WARN" || level === "AUTH") log.warn("bird", { line: msg });
    else if (level === "INFO" || level === "RMT") log.info("bird", { line: msg });
    else log.debug("bird", { line: msg });
  }

  /**
   * Ends BIRD for a restart (`birdc graceful restart`): it closes its sessions without a
   * notification, so peers keep this node's routes (stale, for the graceful-restart time) until
   * the next BIRD is back, and its kernel routes stay (`persist`). When birdc does not answer (a
   * loaded node) or BIRD does not go within 5 s, SIGKILL: like the graceful restart it sends no
   * notification, so peers keep the routes, whereas SIGTERM would make BIRD withdraw them all.
   * Idempotent.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const child = this.#child;
    if (child === undefined) return;
    try {
      await birdc(this.socket, ["graceful", "restart"], this.#o.birdcPath, 10_000);
    } catch {
      child.kill("SIGKILL");
    }
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    await this.#exited;
    clearTimeout(kill);
  }
}

function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(" ")}: exit ${code ?? "?"}: ${out.trim()}`));
    });
  });
}
