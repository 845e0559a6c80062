/** skeinctl endpoint list */
import { EndpointsMap } from "../../../maps/endpoints.js";
import { render } from "../output.js";
import type { Command } from "../cli.js";

export const endpointList: Command = {
  name: "endpoint list",
  summary: "pods wired on this node, from the endpoints map",
  usage: "endpoint list [--bpffs-root DIR] [-o json]",
  run(ctx) {
    using map = EndpointsMap.openPinned(ctx.bpffsRoot);
    const rows = [...map.entries()]
      .map(([ip, e]) => ({ ip, ...e }))
      .sort((a, b) => a.ip.localeCompare(b.ip, "en", { numeric: true }));
    ctx.io.stdout(
      render(ctx.output, rows, [
        { header: "IP", value: (r) => r.ip },
        { header: "IFINDEX", value: (r) => r.ifindex },
        { header: "MAC", value: (r) => r.mac },
        { header: "HOST-MAC", value: (r) => r.hostMac },
      ]),
    );
    return 0;
  },
};
