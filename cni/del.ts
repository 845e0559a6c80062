/**
 * DEL: best effort and idempotent. Works without prevResult, without CNI_NETNS, with the netns or
 * the link already gone, and a second time; frees whatever is left and reports every failure at
 * once (code 104) instead of stopping at the first.
 */
import { isIPv4, prefixContainsIp } from "../maps/net.js";
import { CniError, ErrorCode, describe } from "./errors.js";
import type { VerbContext } from "./context.js";
import { IpamStore, type Owner } from "./ipam.js";
import type { Kernel, PodDatapath } from "./kernel.js";
import { hostVethName } from "./names.js";
import { trace } from "./trace.js";

/** Opens the datapath when it is pinned; undefined (nothing to clean in it) when not. Throws CniError. */
export function openDatapathIfLoaded(kernel: Kernel, root: string): PodDatapath | undefined {
  if (kernel.missingPins(root).length > 0) return undefined;
  return kernel.openDatapath(root);
}

/**
 * Runs DEL. Rejects with CniError 104 listing what could not be removed (everything else is gone).
 * The host veth's removal, which the kernel makes wait for RCU, runs while the endpoint entries are
 * removed; the addresses are released only once it is done (a new pod given one must not meet the
 * old host route).
 */
export async function del(ctx: VerbContext): Promise<void> {
  const { kernel, invocation, config } = ctx;
  const owner: Owner = { containerId: invocation.containerId, ifname: invocation.ifname };
  const hostIfname = hostVethName(owner.containerId, owner.ifname);
  const problems: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      problems.push(`${what}: ${describe(err)}`);
    }
  };

  let store: IpamStore | undefined;
  let held: string[] = [];
  attempt("read IPAM state", () => {
    store = IpamStore.existing(config.dataDir, config.name);
    held = store?.reservationsOf(owner) ?? [];
  });
  const fromPrevResult = (config.prevResult?.ips ?? [])
    .map((ip) => ip.address.split("/")[0] ?? "")
    .filter((ip) => isIPv4(ip) && prefixContainsIp(config.podCidr, ip));
  const ifindex = kernel.linkIndex(hostIfname);
  const deleting =
    ifindex === undefined
      ? Promise.resolve()
      : kernel.deleteLinkAsync(hostIfname).then(
          () => {
            trace(`${hostIfname} deleted`);
          },
          (err: unknown) => {
            problems.push(`delete ${hostIfname}: ${describe(err)}`);
          },
        );

  // Endpoint entries go before the address is released, so a new pod given the address never
  // has its fresh entry deleted by this DEL.
  attempt("remove endpoint entries", () => {
    using datapath = openDatapathIfLoaded(kernel, config.bpffsRoot);
    if (datapath === undefined) return;
    const candidates = new Set([...held, ...fromPrevResult]);
    if (ifindex !== undefined)
      for (const [ip, e] of datapath.endpoints()) if (e.ifindex === ifindex) candidates.add(ip);
    for (const ip of candidates) {
      const entry = datapath.endpoint(ip);
      if (entry === undefined) continue;
      const ours =
        held.includes(ip) ||
        (ifindex !== undefined && entry.ifindex === ifindex) ||
        store?.owner(ip) === undefined;
      if (ours) datapath.deleteEndpoint(ip);
    }
  });

  trace("endpoint entries removed");
  await deleting;

  const current = store;
  if (current !== undefined && held.length > 0)
    attempt("release addresses", () => {
      current.locked(() => {
        for (const ip of held) current.release(ip, owner);
      });
    });

  if (problems.length > 0)
    throw new CniError(
      ErrorCode.cleanupIncomplete,
      `DEL of ${owner.containerId}/${owner.ifname} incomplete`,
      problems.join("; "),
    );
}
