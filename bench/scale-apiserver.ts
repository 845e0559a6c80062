/**
 * bench:scale's API server process: the lab API server seeded in memory with the scale cluster
 * (bench/scale-seed.ts), so that 100,000 pods need no seed file to parse. Writes its port to
 * --port-file once listening and every pod's list text is made; SIGTERM ends it.
 *
 *   node dist/bench/scale-apiserver.js --listen HOST --port-file PATH --pods N --nodes N --policies N --node0-ip IP
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startLabApiServer } from "../lab/apiserver/server.js";
import { scaleSeed } from "./scale-seed.js";

const { values } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1" },
    "port-file": { type: "string" },
    pods: { type: "string", default: "1000" },
    nodes: { type: "string", default: "50" },
    policies: { type: "string", default: "1000" },
    "node0-ip": { type: "string", default: "127.0.0.1" },
  },
});

const server = await startLabApiServer({
  host: values.listen,
  port: 0,
  // Churn at hundreds of events/s must not push a watcher out of the window (a 410 means relisting all pods).
  history: 200_000,
  log: () => undefined,
  seedObjects: scaleSeed({
    pods: Number(values.pods),
    nodes: Number(values.nodes),
    policies: Number(values.policies),
    node0Ip: values["node0-ip"],
  }),
});
// Serialise every pod once before the agent comes: a real API server serves lists from its watch
// cache, and the lab server then serves a page by joining the cached texts.
for (let next: string | undefined = ""; next !== undefined;) {
  const q = new URLSearchParams({ limit: "5000", ...(next === "" ? {} : { continue: next }) });
  const page = (await (await fetch(`${server.url}/api/v1/pods?${q.toString()}`)).json()) as {
    metadata?: { continue?: string };
  };
  const c = page.metadata?.continue;
  next = c === undefined || c === "" ? undefined : c;
}
const port = new URL(server.url).port;
if (values["port-file"] !== undefined) writeFileSync(values["port-file"], port);
process.stdout.write(`${server.url}\n`);
process.on("SIGTERM", () => {
  void server.close().finally(() => process.exit(0));
});
