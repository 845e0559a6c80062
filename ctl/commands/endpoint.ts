/** skeinctl endpoint list */
import { EndpointsMap } from "../../maps/endpoints.js";
import { AgentClient, AgentUnreachableError, agentUrl, type AgentPod } from "../agent-client.js";
import type { Command } from "../cli.js";
import { skeinLinkNames } from "../links.js";
import { render } from "../output.js";

/** `skeinctl endpoint list`: works without the agent (pod names are then `?`). */
export const endpointList: Command = {
  name: "endpoint list",
  summary:
    "pods wired on this node, from the endpoints map (host veth names from this network namespace, pod names from the agent)",
  usage: "endpoint list [--agent URL] [--bpffs-root DIR] [-o json|table]",
  async run(ctx) {
    const rows = (() => {
      using map = EndpointsMap.openPinned(ctx.bpffsRoot);
      return [...map.entries()].map(([ip, e]) => ({ ip, ...e }));
    })().sort((a, b) => a.ip.localeCompare(b.ip, "en", { numeric: true }));
    const [ifnames, pods] = await Promise.all([
      skeinLinkNames(ctx.bpffsRoot),
      new AgentClient(agentUrl(ctx), 1500).pods().then(
        (list) => new Map(list.map((p) => [p.ip, p])),
        (err: unknown) => {
          if (!(err instanceof AgentUnreachableError)) throw err;
          ctx.io.stderr(`skeinctl endpoint list: no pod names: ${err.message}\n`);
          return undefined;
        },
      ),
    ]);
    const out = rows.map((r) => {
      const pod: AgentPod | undefined = pods?.get(r.ip);
      return {
        ...r,
        ifname: ifnames.get(r.ifindex) ?? null,
        pod: pod === undefined ? null : { namespace: pod.namespace, name: pod.name },
      };
    });
    ctx.io.stdout(
      render(ctx.output, out, [
        { header: "IP", value: (r) => r.ip },
        {
          header: "POD",
          value: (r) =>
            r.pod === null
              ? pods === undefined
                ? "?"
                : "(unknown to the agent)"
              : `${r.pod.namespace}/${r.pod.name}`,
        },
        { header: "IFINDEX", value: (r) => r.ifindex },
        { header: "HOST-VETH", value: (r) => r.ifname ?? "(not in this netns)" },
        { header: "MAC", value: (r) => r.mac },
        { header: "HOST-MAC", value: (r) => r.hostMac },
      ]),
    );
    return 0;
  },
};
