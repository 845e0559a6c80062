/**
 * GC (1.1.0): remove every attachment of this network the runtime no longer lists in
 * `cni.dev/valid-attachments` (or the draft's `cni.dev/attachments`): address reservations, host
 * veths and endpoint entries. Keeps going on errors and reports them all (code 104).
 */
import { readdirSync } from "node:fs";
import { prefixContainsIp } from "../maps/net.js";
import { CniError, ErrorCode, describe } from "./errors.js";
import type { VerbContext } from "./context.js";
import { IpamStore } from "./ipam.js";
import type { PodDatapath } from "./kernel.js";
import { HOST_VETH_PATTERN, hostVethName } from "./names.js";
import { openDatapathIfLoaded } from "./del.js";

/** What GC removed, for the log and for tests. */
export interface GcReport {
  reservations: string[];
  links: string[];
  endpoints: string[];
}

/** Host veths of attachments reserved by other networks sharing dataDir: not ours to remove. */
function otherNetworksVeths(dataDir: string, network: string): Set<string> {
  const names = new Set<string>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync(dataDir);
  } catch {
    return names;
  }
  for (const dir of dirs) {
    if (dir === network) continue;
    try {
      const store = IpamStore.existing(dataDir, dir);
      for (const r of store?.reservations() ?? [])
        if (r.containerId !== "") names.add(hostVethName(r.containerId, r.ifname));
    } catch {
      // not a store
    }
  }
  return names;
}

/** Runs GC. Throws CniError 7 without a valid-attachments list, 104 when something could not be removed. */
export function gc(ctx: VerbContext): GcReport {
  const { kernel, config } = ctx;
  const valid = config.validAttachments;
  if (valid === undefined) throw new CniError(ErrorCode.invalidConfig, "GC needs cni.dev/valid-attachments");
  const validKeys = new Set(valid.map((a) => `${a.containerId}\0${a.ifname}`));
  const validLinks = new Set(valid.map((a) => hostVethName(a.containerId, a.ifname)));
  const report: GcReport = { reservations: [], links: [], endpoints: [] };
  const problems: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      problems.push(`${what}: ${describe(err)}`);
    }
  };
  const removeLink = (name: string): void => {
    attempt(`delete ${name}`, () => {
      if (kernel.deleteLink(name)) report.links.push(name);
    });
  };

  let datapath: PodDatapath | undefined;
  attempt("open datapath", () => {
    datapath = openDatapathIfLoaded(kernel, config.bpffsRoot);
  });
  try {
    const store = IpamStore.existing(config.dataDir, config.name);
    const work = (): void => {
      store?.sweepTemporaries();
      for (const r of store?.reservations() ?? []) {
        if (validKeys.has(`${r.containerId}\0${r.ifname}`)) continue;
        if (r.containerId !== "") removeLink(hostVethName(r.containerId, r.ifname));
        attempt(`remove endpoint ${r.ip}`, () => {
          if (datapath?.deleteEndpoint(r.ip) === true) report.endpoints.push(r.ip);
        });
        attempt(`release ${r.ip}`, () => {
          if (store?.release(r.ip) === true) report.reservations.push(r.ip);
        });
      }
      // Veths no reservation accounts for (their reservation was lost, or they outlived it).
      const elsewhere = otherNetworksVeths(config.dataDir, config.name);
      const reserved = new Set(
        (store?.reservations() ?? [])
          .filter((r) => r.containerId !== "")
          .map((r) => hostVethName(r.containerId, r.ifname)),
      );
      for (const name of kernel.linkNames()) {
        if (
          !HOST_VETH_PATTERN.test(name) ||
          validLinks.has(name) ||
          reserved.has(name) ||
          elsewhere.has(name)
        )
          continue;
        removeLink(name);
      }
      // Endpoint entries in our podCIDR for addresses nobody holds.
      attempt("list endpoint entries", () => {
        for (const [ip] of datapath?.endpoints() ?? []) {
          if (!prefixContainsIp(config.podCidr, ip) || store?.owner(ip) !== undefined) continue;
          attempt(`remove endpoint ${ip}`, () => {
            if (datapath?.deleteEndpoint(ip) === true) report.endpoints.push(ip);
          });
        }
      });
    };
    if (store === undefined) work();
    else store.locked(work);
  } catch (err) {
    problems.push(describe(err));
  } finally {
    datapath?.close();
  }
  if (report.links.length + report.reservations.length + report.endpoints.length > 0)
    ctx.log(
      `GC removed reservations [${report.reservations.join(", ")}], links [${report.links.join(", ")}], endpoints [${report.endpoints.join(", ")}]`,
    );
  if (problems.length > 0)
    throw new CniError(
      ErrorCode.cleanupIncomplete,
      `GC of network ${config.name} incomplete`,
      problems.join("; "),
    );
  return report;
}
