/**
 * Names for the numbers the datapath reports: pod addresses → namespace/name, identities → labels,
 * rule ids → NetworkPolicy rules. Asked of the agent, cached, and refreshed on a miss (at most once
 * per `refreshMs` per kind, so a flood of unknown addresses does not flood the agent). Without an
 * agent every lookup answers undefined and callers print the numbers.
 */
import { reservedIdentityName } from "../maps/identities.js";
import {
  AgentUnreachableError,
  type AgentClient,
  type AgentIdentity,
  type AgentPod,
  type AgentRule,
} from "./agent-client.js";
import { formatLabels, identityKind } from "./describe.js";

/** What an identity number stands for, as far as is known. */
export interface IdentityName {
  id: number;
  kind: "reserved" | "pod" | "cidr" | "unknown";
  /** `host`, `demo:app=web`, `cidr 10.0.0.0/8`; undefined when unknown. */
  text: string | undefined;
}

/** Tuning of a Names cache (defaults suit `skeinctl monitor`). */
export interface NamesOptions {
  /** Minimum time between two refreshes of one kind on misses. */
  refreshMs?: number;
  /** After the agent failed to answer, how long to wait before asking again. */
  retryDownMs?: number;
  /** Told once each time the agent goes from answering to not answering (and back). */
  onAgentState?: (up: boolean, err?: AgentUnreachableError) => void;
  now?: () => number;
}

type Kind = "pods" | "identities" | "cidrs";

/** How long a rule id's name is trusted: ids are reused after a policy is deleted. */
const RULE_TTL_MS = 30000;
/** How long pod and identity names are trusted before a refresh. */
const CACHE_TTL_MS = 30000;

/** A cache of the agent's names. Holds no resources. */
export class Names {
  readonly #client: AgentClient | undefined;
  readonly #refreshMs: number;
  readonly #retryDownMs: number;
  readonly #onAgentState: ((up: boolean, err?: AgentUnreachableError) => void) | undefined;
  readonly #now: () => number;
  #pods = new Map<string, AgentPod>();
  #identities = new Map<number, AgentIdentity>();
  #cidrs = new Map<number, string>();
  readonly #rules = new Map<number, { rule: AgentRule; at: number }>();
  readonly #lastRefresh = new Map<Kind | "rules", number>();
  #downSince: number | undefined;

  constructor(client: AgentClient | undefined, options: NamesOptions = {}) {
    this.#client = client;
    this.#refreshMs = options.refreshMs ?? 1000;
    this.#retryDownMs = options.retryDownMs ?? 10000;
    this.#onAgentState = options.onAgentState;
    this.#now = options.now ?? Date.now;
  }

  /** Fetches everything once. Returns false when the agent did not answer. */
  async load(): Promise<boolean> {
    const ok = await Promise.all([
      this.#refresh("pods", true),
      this.#refresh("identities", true),
      this.#refresh("cidrs", true),
    ]);
    return ok.every((x) => x);
  }

  async #ask<T>(fn: (c: AgentClient) => Promise<T>): Promise<T | undefined> {
    const client = this.#client;
    if (client === undefined) return undefined;
    if (this.#downSince !== undefined && this.#now() - this.#downSince < this.#retryDownMs) return undefined;
    try {
      const v = await fn(client);
      if (this.#downSince !== undefined) {
        this.#downSince = undefined;
        this.#onAgentState?.(true);
      }
      return v;
    } catch (err) {
      if (!(err instanceof AgentUnreachableError)) throw err;
      const wasUp = this.#downSince === undefined;
      this.#downSince = this.#now();
      if (wasUp) this.#onAgentState?.(false, err);
      return undefined;
    }
  }

  async #refresh(kind: Kind, force = false): Promise<boolean> {
    const last = this.#lastRefresh.get(kind);
    if (!force && last !== undefined && this.#now() - last < this.#refreshMs) return false;
    this.#lastRefresh.set(kind, this.#now());
    switch (kind) {
      case "pods": {
        const pods = await this.#ask((c) => c.pods());
        if (pods === undefined) return false;
        this.#pods = new Map(pods.map((p) => [p.ip, p]));
        return true;
      }
      case "identities": {
        const ids = await this.#ask((c) => c.identities());
        if (ids === undefined) return false;
        this.#identities = new Map(ids.map((i) => [i.id, i]));
        return true;
      }
      case "cidrs": {
        const cidrs = await this.#ask((c) => c.cidrs());
        if (cidrs === undefined) return false;
        this.#cidrs = new Map(cidrs.map((c) => [c.id, c.cidr]));
        return true;
      }
    }
  }

  #stale(kind: Kind): boolean {
    const last = this.#lastRefresh.get(kind);
    return last !== undefined && this.#now() - last > CACHE_TTL_MS;
  }

  /** The pod holding `ip`, refreshing once on a miss. */
  async pod(ip: string): Promise<AgentPod | undefined> {
    // Addresses are reused by new pods: an old cache is refreshed before it is trusted.
    if (this.#stale("pods")) await this.#refresh("pods");
    const hit = this.#pods.get(ip);
    if (hit !== undefined) return hit;
    if (await this.#refresh("pods")) return this.#pods.get(ip);
    return undefined;
  }

  /** What `id` stands for, refreshing once on a miss. */
  async identity(id: number): Promise<IdentityName> {
    const kind = identityKind(id);
    const reserved = reservedIdentityName(id);
    if (reserved !== undefined) return { id, kind, text: reserved };
    if (kind === "pod") {
      if (this.#stale("identities")) await this.#refresh("identities");
      let info = this.#identities.get(id);
      if (info === undefined && (await this.#refresh("identities"))) info = this.#identities.get(id);
      return { id, kind, text: info === undefined ? undefined : identityText(info) };
    }
    if (kind === "cidr") {
      let cidr = this.#cidrs.get(id);
      if (cidr === undefined && (await this.#refresh("cidrs"))) cidr = this.#cidrs.get(id);
      return { id, kind, text: cidr === undefined ? undefined : `cidr ${cidr}` };
    }
    return { id, kind, text: undefined };
  }

  /** The NetworkPolicy rule behind `ruleId`; undefined for 0, unknown ids, or without the agent. */
  async rule(ruleId: number): Promise<AgentRule | undefined> {
    if (ruleId === 0) return undefined;
    const hit = this.#rules.get(ruleId);
    if (hit !== undefined && this.#now() - hit.at < RULE_TTL_MS) return hit.rule;
    const got = await this.#ask((c) => c.rules([ruleId]));
    if (got === undefined) return hit?.rule;
    const rule = got.get(ruleId) ?? null;
    // Rule ids are reused once freed: unknown answers are not cached, known ones only for a while.
    if (rule === null) this.#rules.delete(ruleId);
    else this.#rules.set(ruleId, { rule, at: this.#now() });
    return rule ?? undefined;
  }
}

/** `demo:app=web,tier=db` (namespace, then pod labels). */
export function identityText(info: Pick<AgentIdentity, "namespace" | "labels">): string {
  const labels = formatLabels(info.labels);
  return labels === "" ? `${info.namespace}:(no labels)` : `${info.namespace}:${labels}`;
}

/** `ingress rule 0 of NetworkPolicy demo/allow-web`. */
export function ruleText(rule: AgentRule): string {
  return `${rule.direction} rule ${rule.index} of NetworkPolicy ${rule.namespace}/${rule.policy}`;
}
