/** skeinctl node list */
import { AgentClient, agentUrl } from "../agent-client.js";
import type { Command } from "../cli.js";
import { renderJson, renderTable } from "../output.js";

/** `skeinctl node list`: needs the agent; exit 1 with the fix when it does not answer. */
export const nodeList: Command = {
  name: "node list",
  summary: "cluster nodes as this node's agent sees them (internal IP, pod CIDR), and the objects it skipped",
  usage: "node list [--agent URL] [-o json|table]   (needs the agent: it is what watches Nodes)",
  async run(ctx) {
    const status = await new AgentClient(agentUrl(ctx)).status();
    const nodes = status.nodes
      .map((n) => ({
        name: n.name,
        internalIp: n.internalIp,
        podCidr: n.podCidr,
        self: n.name === status.node,
      }))
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
