/** STATUS (1.1.0): can this node service ADD right now? */
import { CniError, ErrorCode, describe } from "./errors.js";
import type { NetworkConfig } from "./config.js";
import { IpRange, IpamStore } from "./ipam.js";
import type { Kernel } from "./kernel.js";

/**
 * Succeeds when the datapath is pinned and openable under bpffsRoot and the podCIDR has a free
 * address. Throws CniError 50 otherwise, saying which.
 */
export function status(kernel: Kernel, config: NetworkConfig): void {
  const missing = kernel.missingPins(config.bpffsRoot);
  if (missing.length > 0)
    throw new CniError(
      ErrorCode.pluginNotAvailable,
      `Skein datapath is not loaded under ${config.bpffsRoot}`,
      `missing pins: ${missing.join(", ")}`,
    );
  try {
    kernel.openDatapath(config.bpffsRoot).close();
  } catch (err) {
    throw new CniError(
      ErrorCode.pluginNotAvailable,
      `Skein datapath under ${config.bpffsRoot} cannot be opened`,
      describe(err),
      { cause: err },
    );
  }
  const store = IpamStore.existing(config.dataDir, config.name);
  const range = new IpRange(config.podCidr);
  if (store !== undefined && store.reservations().filter((r) => range.contains(r.ip)).length >= range.size)
    throw new CniError(
      ErrorCode.pluginNotAvailable,
      `podCIDR ${config.podCidr.ip}/${config.podCidr.length} is exhausted`,
      `all ${range.size} addresses are reserved`,
    );
}
