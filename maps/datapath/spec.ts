/** Opening the datapath object with its settings applied (no kernel state yet). */
import { ObjectSpec } from "../../loader/index.js";
import { POLICY_MAP } from "../policy.js";
import { defaultObjectPath } from "../pins.js";
import { DEFAULT_SETTINGS, encodeSettings, type DatapathSettings } from "../settings.js";

export interface DatapathOptions {
  /** The compiled object; maps/pins.ts defaultObjectPath() when absent. */
  objectPath?: string;
  /** Load-time settings (conntrack lifetimes, decision recording). */
  settings?: Partial<DatapathSettings>;
  /** Capacity of the policy map; the object's default (262,144) when absent. */
  policyMapEntries?: number;
  /**
   * Service load balancing in BPF ("bpf") or left to kube-proxy ("off", the default). With "bpf"
   * the node's side is wired too: skn_from_uplink/skn_to_uplink on the uplink whatever the encap
   * mode (world → NodePort), the Service CIDR (settings.serviceCidr) routed into the VXLAN device
   * (node → ClusterIP, translated by skn_to_vxlan), and the NodePort masquerade rule
   * (docs/services-bpf.md).
   */
  serviceLb?: ServiceLbMode;
}

export const SERVICE_LB_MODES = ["bpf", "off"] as const;
export type ServiceLbMode = (typeof SERVICE_LB_MODES)[number];

export function resolvedSettings(options: DatapathOptions): DatapathSettings {
  return { ...DEFAULT_SETTINGS, ...options.settings };
}

/**
 * Parses the object and applies settings and sizes. With `pinRoot`, maps are pinned there (or the
 * ones already pinned reused) on load. The caller owns the spec: load() it or close() it.
 */
export function openDatapathSpec(options: DatapathOptions, pinRoot?: string): ObjectSpec {
  const spec = ObjectSpec.open(
    options.objectPath ?? defaultObjectPath(),
    pinRoot === undefined ? {} : { pinRoot },
  );
  try {
    const rodata = spec.rodataMapName;
    if (rodata === undefined) throw new Error(`${spec.path} has no .rodata: settings cannot be applied`);
    spec.writeInitialValue(rodata, 0, encodeSettings(resolvedSettings(options)));
    if (options.policyMapEntries !== undefined) {
      if (!Number.isInteger(options.policyMapEntries) || options.policyMapEntries < 1)
        throw new RangeError(`policyMapEntries must be a positive integer, not ${options.policyMapEntries}`);
      spec.setMaxEntries(POLICY_MAP, options.policyMapEntries);
    }
    return spec;
  } catch (err) {
    spec.close();
    throw err;
  }
}
