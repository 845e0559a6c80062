/** Opening the datapath object with its settings applied (no kernel state yet). */
import { ObjectSpec } from "../../loader/index.js";
import { POLICY_MAP } from "../policy.js";
import { defaultObjectPath } from "../pins.js";
import { DEFAULT_SETTINGS, encodeSettings, type DatapathSettings } from "../settings.js";

/**
 * Who translates Services on the node. "bpf": Skein's datapath (the skn_lb_* maps, filled by the
 * agent from Services and EndpointSlices; kube-proxy is not needed). "off": Skein does not translate
 * (the maps stay empty, the node-side programs are not attached) and kube-proxy, or nothing, does:
 * the behaviour before Skein had a load balancer (docs/services.md).
 */
export const SERVICE_LB_MODES = ["bpf", "off"] as const;
export type ServiceLbMode = (typeof SERVICE_LB_MODES)[number];

/**
 * The agent's default (--service-lb, ConfigMap key serviceLb): "off", so that upgrading a cluster
 * that runs kube-proxy changes nothing; kube-proxy-free installs and the lab set "bpf".
 */
export const DEFAULT_SERVICE_LB: ServiceLbMode = "off";

/** Checks a --service-lb / serviceLb value. Throws RangeError naming the choices. */
export function parseServiceLbMode(value: string): ServiceLbMode {
  if (!(SERVICE_LB_MODES as readonly string[]).includes(value))
    throw new RangeError(
      `service LB mode must be one of ${SERVICE_LB_MODES.join(", ")}, not ${JSON.stringify(value)}`,
    );
  return value as ServiceLbMode;
}

export interface DatapathOptions {
  /** The compiled object; maps/pins.ts defaultObjectPath() when absent. */
  objectPath?: string;
  /** Load-time settings (conntrack lifetimes, decision recording). */
  settings?: Partial<DatapathSettings>;
  /** Capacity of the policy map; the object's default (262,144) when absent. */
  policyMapEntries?: number;
  /** Service translation on this node; DEFAULT_SERVICE_LB when absent (see SERVICE_LB_MODES). */
  serviceLb?: ServiceLbMode;
}

/** The Service translation mode `options` ask for (the default when absent). */
export function serviceLbMode(options: DatapathOptions): ServiceLbMode {
  return options.serviceLb ?? DEFAULT_SERVICE_LB;
}

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
