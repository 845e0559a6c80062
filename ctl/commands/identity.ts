/** skeinctl identity list */
import { openOptional } from "../optional.js";
import { Identity, reservedIdentityName } from "../../maps/identities.js";
import { IpcacheMap } from "../../maps/ipcache.js";
import { formatPrefix } from "../../maps/net.js";
import { AgentClient, AgentUnreachableError, agentUrl } from "../agent-client.js";
import { CtlError, type Command } from "../cli.js";
import { formatLabels, identityKind } from "../describe.js";
import { render } from "../output.js";

/** One row of `identity list`. */
export interface IdentityRow {
  id: number;
  kind: "reserved" | "pod" | "cidr" | "unknown";
  /** Reserved name (`host`) or ipBlock (`cidr 10.0.0.0/8`); null for pod identities. */
  name: string | null;
  namespace: string | null;
  labels: Record<string, string> | null;
  namespaceLabels: Record<string, string> | null;
  /** Prefixes in this node's ipcache carrying the identity (as identity or CIDR identity). */
  addresses: string[];
  /** Where the row comes from: the agent, or only the ipcache when the agent did not answer. */
  source: "agent" | "ipcache";
}

const RESERVED = [Identity.host, Identity.world, Identity.remoteNode, Identity.unmanaged];

/** Prefixes per identity in the node's ipcache; undefined when the ipcache is not pinned. */
function ipcacheAddresses(root: string): Map<number, string[]> | undefined {
  const map = openOptional(() => IpcacheMap.openPinned(root));
  if (map === undefined) return undefined;
  try {
    const out = new Map<number, string[]>();
    const add = (id: number, prefix: string) => {
      const list = out.get(id) ?? [];
      if (!list.includes(prefix)) list.push(prefix);
      out.set(id, list);
    };
    for (const [p, e] of map.entries()) {
      add(e.identity, formatPrefix(p));
      if (e.cidrIdentity !== 0) add(e.cidrIdentity, formatPrefix(p));
    }
    return out;
  } finally {
    map.close();
  }
}

function shortList(list: readonly string[], max = 3): string {
  if (list.length === 0) return "-";
  return list.length <= max ? list.join(",") : `${list.slice(0, max).join(",")} +${list.length - max} more`;
}

/** `skeinctl identity list`: the agent's identities, or the ipcache's numbers (saying so) when it is down. */
export const identityList: Command = {
  name: "identity list",
  summary:
    "security identities: labels from the agent, addresses from this node's ipcache (ipcache only when the agent is down)",
  usage: "identity list [--agent URL] [--bpffs-root DIR] [-o json|table]",
  async run(ctx) {
    const client = new AgentClient(agentUrl(ctx));
    let agentError: AgentUnreachableError | undefined;
    let fromAgent:
      | {
          pods: Awaited<ReturnType<AgentClient["identities"]>>;
          cidrs: Awaited<ReturnType<AgentClient["cidrs"]>>;
        }
      | undefined;
    try {
      const [pods, cidrs] = await Promise.all([client.identities(), client.cidrs()]);
      fromAgent = { pods, cidrs };
    } catch (err) {
      if (!(err instanceof AgentUnreachableError)) throw err;
      agentError = err;
    }
    const addresses = ipcacheAddresses(ctx.bpffsRoot);
    if (fromAgent === undefined && addresses === undefined)
      throw new CtlError(
        `${agentError?.message ?? "the agent did not answer"}; nor is skn_ipcache pinned under ${ctx.bpffsRoot} to fall back on ` +
          `(the datapath is not loaded there: start skein-agent, or pass the node's --bpffs-root)`,
      );
    const addrOf = (id: number) =>
      (addresses?.get(id) ?? []).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));

    const rows: IdentityRow[] = [];
    if (fromAgent !== undefined) {
      for (const id of RESERVED)
        rows.push({
          id,
          kind: "reserved",
          name: reservedIdentityName(id) ?? null,
          namespace: null,
          labels: null,
          namespaceLabels: null,
          addresses: addrOf(id),
          source: "agent",
        });
      for (const i of fromAgent.pods)
        rows.push({
          id: i.id,
          kind: identityKind(i.id),
          name: null,
          namespace: i.namespace,
          labels: i.labels,
          namespaceLabels: i.namespaceLabels,
          addresses: addrOf(i.id),
          source: "agent",
        });
      for (const c of fromAgent.cidrs)
        rows.push({
          id: c.id,
          kind: "cidr",
          name: `cidr ${c.cidr}`,
          namespace: null,
          labels: null,
          namespaceLabels: null,
          addresses: addrOf(c.id),
          source: "agent",
        });
    } else {
      ctx.io.stderr(
        `skeinctl identity list: ${agentError?.message ?? "agent unreachable"}\nshowing what ${ctx.bpffsRoot}/skn_ipcache holds instead: identity numbers and addresses, no labels\n`,
      );
      for (const [id] of addresses ?? []) {
        const kind = identityKind(id);
        rows.push({
          id,
          kind,
          name: reservedIdentityName(id) ?? null,
          namespace: null,
          labels: null,
          namespaceLabels: null,
          addresses: addrOf(id),
          source: "ipcache",
        });
      }
    }
    rows.sort((a, b) => a.id - b.id);
    ctx.io.stdout(
      render(ctx.output, rows, [
        { header: "ID", value: (r) => r.id },
        { header: "KIND", value: (r) => r.kind },
        { header: "NAMESPACE", value: (r) => r.namespace ?? "-" },
        {
          header: "LABELS",
          value: (r) => r.name ?? (r.labels === null ? "?" : formatLabels(r.labels) || "(none)"),
        },
        { header: "ADDRESSES (this node's ipcache)", value: (r) => shortList(r.addresses) },
      ]),
    );
    return 0;
  },
};
