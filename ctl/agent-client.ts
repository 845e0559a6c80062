/**
 * skeinctl's client of the agent's local HTTP API (maps/agent-api.ts). Read-only; every call has a
 * timeout, and an agent that does not answer becomes an AgentUnreachableError that says how to fix
 * it, never a hang or a stack trace.
 */
import {
  DEFAULT_AGENT_ADDR,
  type AgentCidr,
  type AgentIdentity,
  type AgentPod,
  type AgentRule,
  type AgentStatus,
} from "../maps/agent-api.js";
import { CtlError, type CtlContext } from "./cli.js";

export type { AgentCidr, AgentIdentity, AgentPod, AgentRule, AgentStatus };

/** The agent's health and API address when skeinctl runs on the node (agent --health-addr). */
export const DEFAULT_AGENT_URL = `http://${DEFAULT_AGENT_ADDR}`;
const TIMEOUT_MS = 3000;

/** The agent URL of a command invocation (`--agent`, default DEFAULT_AGENT_URL), without a trailing slash. */
export function agentUrl(ctx: CtlContext): string {
  const v = ctx.values.agent;
  const url = typeof v === "string" && v !== "" ? v : DEFAULT_AGENT_URL;
  if (!/^https?:\/\/[^/]+/.test(url))
    throw new CtlError(
      `--agent must be an http:// URL such as ${DEFAULT_AGENT_URL}, not ${JSON.stringify(url)}`,
    );
  return url.replace(/\/+$/, "");
}

/** The agent did not answer (not running, wrong address, or stuck). The message names the fix. */
export class AgentUnreachableError extends CtlError {
  override readonly name: string = "AgentUnreachableError";
  readonly url: string;
  /** Why, in a few words (`connect ECONNREFUSED 127.0.0.1:9879`, `timeout after 3000 ms`). */
  readonly why: string;

  constructor(url: string, why: string, options?: { cause?: unknown }) {
    super(
      `skein-agent at ${url} did not answer (${why}): is it running on this node? ` +
        `(check 'kubectl -n skein-system get pods -l app.kubernetes.io/name=skein -o wide', or pass --agent http://HOST:PORT if its --health-addr differs)`,
      options,
    );
    this.url = url;
    this.why = why;
  }
}

/** /readyz and /healthz bodies. */
export interface AgentHealth {
  /** HTTP status of /healthz (200: alive with the datapath pinned). */
  healthzStatus: number;
  datapathPinned: boolean;
  /** HTTP status of /readyz (200: node programmed). */
  readyzStatus: number;
  ready: boolean;
  reason: string;
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"))
    return `no answer within ${timeoutMs} ms`;
  const cause =
    err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.message !== undefined) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** A client of one agent. Holds no resources. */
export class AgentClient {
  readonly url: string;
  readonly timeoutMs: number;

  constructor(url: string, timeoutMs = TIMEOUT_MS) {
    this.url = url;
    this.timeoutMs = timeoutMs;
  }

  /** GET `path`: the status and parsed JSON body (unchecked). Throws AgentUnreachableError when no answer comes. */
  async request(path: string): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(this.url + path, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new AgentUnreachableError(this.url, describeFetchError(err, this.timeoutMs), { cause: err });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new AgentUnreachableError(this.url, describeFetchError(err, this.timeoutMs), { cause: err });
    }
    try {
      return { status: res.status, body: JSON.parse(text) as unknown };
    } catch {
      throw new CtlError(
        `skein-agent at ${this.url}${path} answered ${res.status} with something that is not JSON: ${text.slice(0, 120)}`,
      );
    }
  }

  /** GET `path`, which must answer 200; the body unchecked. Throws AgentUnreachableError or CtlError. */
  async get(path: string): Promise<unknown> {
    const r = await this.request(path);
    if (r.status !== 200) {
      const error = (r.body as { error?: string } | null)?.error;
      throw new CtlError(
        r.status === 404
          ? `skein-agent at ${this.url} has no ${path.split("?")[0]}: it is older than this skeinctl (upgrade the agent)`
          : `skein-agent at ${this.url}${path}: HTTP ${r.status}${error === undefined ? "" : `: ${error}`}`,
      );
    }
    return r.body;
  }

  /** /healthz and /readyz; 503s are answers, not errors. Throws AgentUnreachableError. */
  async health(): Promise<AgentHealth> {
    const [h, r] = await Promise.all([this.request("/healthz"), this.request("/readyz")]);
    const hb = (h.body ?? {}) as { datapathPinned?: boolean };
    const rb = (r.body ?? {}) as { ready?: boolean; reason?: string };
    return {
      healthzStatus: h.status,
      datapathPinned: hb.datapathPinned === true,
      readyzStatus: r.status,
      ready: rb.ready === true,
      reason: rb.reason ?? "",
    };
  }

  /** GET /v1/status: the agent's own status type, as JSON carries it. */
  async status(): Promise<AgentStatus> {
    return (await this.get("/v1/status")) as AgentStatus;
  }

  async identities(): Promise<AgentIdentity[]> {
    return (await this.get("/v1/identities")) as AgentIdentity[];
  }

  async pods(): Promise<AgentPod[]> {
    return (await this.get("/v1/pods")) as AgentPod[];
  }

  /** CIDR identities; an empty list from an agent without /v1/cidrs. */
  async cidrs(): Promise<AgentCidr[]> {
    const r = await this.request("/v1/cidrs");
    return r.status === 200 ? (r.body as AgentCidr[]) : [];
  }

  /** The rules behind `ids` (null for ids the agent does not know). */
  async rules(ids: readonly number[]): Promise<Map<number, AgentRule | null>> {
    const out = new Map<number, AgentRule | null>();
    if (ids.length === 0) return out;
    const body = (await this.get(`/v1/rules?${ids.map((id) => `id=${id}`).join("&")}`)) as {
      id: number;
      rule: AgentRule | null;
    }[];
    for (const r of body) out.set(r.id, r.rule);
    return out;
  }
}
