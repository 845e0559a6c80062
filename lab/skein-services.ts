/**
 * The lab with `--service-proxy skein`: the agents translate Services themselves (--service-lb
 * bpf). Nothing runs in the lab process; this only waits until every node's pinned skn_lb_svc holds
 * the frontends a probe needs, with the backends expected, and describes what the maps hold.
 */
import { LbBackendMap } from "../maps/lb-backend.js";
import { LbSlotMap } from "../maps/lb-slot.js";
import { LbSvcMap, type LbProtoNumber } from "../maps/lb-svc.js";
import type { LabNode } from "./state.js";

/** A frontend and the number of backends it must have on every node. */
export interface ExpectedFrontend {
  addr: string;
  port: number;
  proto?: LbProtoNumber;
  backends: number;
  /** Only on this node (a NodePort on its address); every node when absent. */
  node?: string;
}

/** The backends (addr:port, slot order) of `addr:port/proto` in `node`'s maps; undefined: no frontend. */
export function programmedBackends(
  node: LabNode,
  addr: string,
  port: number,
  proto: LbProtoNumber = 6,
): string[] | undefined {
  using svc = LbSvcMap.openPinned(node.bpffsRoot);
  const e = svc.get({ addr, port, proto });
  if (e === undefined) return undefined;
  using slot = LbSlotMap.openPinned(node.bpffsRoot);
  using backend = LbBackendMap.openPinned(node.bpffsRoot);
  const out: string[] = [];
  for (let i = 0; i < e.count; i++) {
    const id = slot.get({ svcId: e.svcId, slot: i })?.backendId;
    const b = id === undefined ? undefined : backend.get(id);
    out.push(b === undefined ? "?" : `${b.addr}:${b.port}`);
  }
  return out;
}

/** Resolves once every node programs every frontend with its backends; throws after `timeoutMs`. */
export async function waitSkeinServices(
  nodes: readonly LabNode[],
  expected: readonly ExpectedFrontend[],
  timeoutMs = 15000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const missing: string[] = [];
    for (const n of nodes)
      for (const f of expected.filter((e) => e.node === undefined || e.node === n.name)) {
        const got = programmedBackends(n, f.addr, f.port, f.proto ?? 6);
        if (got?.length !== f.backends)
          missing.push(
            `${n.name}: ${f.addr}:${f.port} has ${got === undefined ? "no frontend" : `${got.length} backends`}, expected ${f.backends}`,
          );
      }
    if (missing.length === 0) return;
    if (performance.now() > deadline)
      throw new Error(`Skein's Service maps not programmed within ${timeoutMs} ms: ${missing.join("; ")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
