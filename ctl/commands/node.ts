/** skeinctl node list */
import type { NodeRoute } from "../../maps/agent-api.js";
import { AgentClient, agentUrl } from "../agent-client.js";
import type { Command } from "../cli.js";
import { renderJson, renderTable } from "../output.js";

/** `skeinctl node list`: needs the agent; exit 1 with the fix when it does not answer. */
export const nodeList: Command = {
  name: "node list",
  summary:
    "cluster nodes as this node's agent sees them (internal IP, pod CIDR, the route to its pods and where it came from), and the objects it skipped",
  usage: "node list [--agent URL] [-o json|table]   (needs the agent: it is what watches Nodes)",
  async run(ctx) {
    const status = await new AgentClient(agentUrl(ctx)).status();
    // An older agent's status has no routes.
    const routes = new Map(((status.nodeRoutes as NodeRoute[] | undefined) ?? []).map((r) => [r.node, r]));
    const nodes = status.nodes
      .map((n) => {
        const r = routes.get(n.name);
        return {
          name: n.name,
          internalIp: n.internalIp,
          podCidr: n.podCidr,
          self: n.name === status.node,
          route:
            r === undefined
              ? null
              : {
                  via: r.via,
                  dev: r.dev,
                  protocol: r.protocol,
                  source: r.source,
                  ...(r.peer === undefined ? {} : { peer: r.peer }),
                },
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    const skipped = [...status.skipped].sort((a, b) =>
      `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`),
    );
    if (ctx.output === "json") {
      ctx.io.stdout(renderJson({ node: status.node, nodes, skipped }));
      return 0;
    }
    ctx.io.stdout(
      renderTable(nodes, [
        { header: "NAME", value: (n) => (n.self ? `${n.name} (this node)` : n.name) },
        { header: "INTERNAL-IP", value: (n) => n.internalIp },
        { header: "POD-CIDR", value: (n) => n.podCidr },
        {
          header: "ROUTE",
          value: (n) =>
            n.self
              ? "local"
              : n.route === null || n.route.source === "none"
                ? "none"
                : `${n.route.via === null ? "" : `via ${n.route.via} `}dev ${n.route.dev ?? "?"}`,
        },
        {
          header: "SOURCE",
          value: (n) =>
            n.self || n.route === null
              ? "-"
              : `${n.route.source}${n.route.peer === undefined ? "" : ` (${n.route.peer})`}`,
        },
      ]),
    );
    if (skipped.length === 0) ctx.io.stdout("\nno skipped objects\n");
    else {
      ctx.io.stdout(`\nskipped objects (${skipped.length}): the agent could not use them\n`);
      ctx.io.stdout(
        renderTable(skipped, [
          { header: "KIND", value: (s) => s.kind },
          { header: "NAME", value: (s) => s.name },
          { header: "REASON", value: (s) => s.reason },
          { header: "DETAIL", value: (s) => s.detail },
        ]),
      );
    }
    return 0;
  },
};
