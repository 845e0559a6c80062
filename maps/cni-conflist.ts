/**
 * The CNI network configuration as a contract between its writer (the agent, once the node is
 * ready), its reader (skein-cni) and the lab: file name, network name, plugin type, the keys of the
 * skein-cni entry, and the overlay's MTU overhead both sides derive the pod MTU from.
 */

/** The conflist file in the runtime's CNI configuration directory. */
export const CNI_CONF_FILE = "10-skein.conflist";
/** The network's name: also the IPAM directory under `dataDir`. */
export const CNI_NETWORK_NAME = "skein";
/** The plugin's `type`, and the name of its executable. */
export const PLUGIN_TYPE = "skein-cni";
/** Where IPAM state lives when the configuration does not say. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/skein";
/** VXLAN over IPv4: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8; pod MTU = uplink MTU − this. */
export const OVERLAY_OVERHEAD = 50;

/** skein-cni's entry in the conflist, with the keys the plugin reads. */
export interface SkeinPluginConf {
  type: typeof PLUGIN_TYPE;
  podCIDR: string;
  bpffsRoot: string;
  mtu: number;
  dataDir?: string;
}

/** The keys of the skein-cni entry, for the reader. */
export const CONF_KEYS = {
  podCidr: "podCIDR",
  bpffsRoot: "bpffsRoot",
  mtu: "mtu",
  dataDir: "dataDir",
} as const satisfies Record<string, keyof SkeinPluginConf>;

export interface SkeinConflist {
  cniVersion: string;
  name: string;
  plugins: SkeinPluginConf[];
}

export interface ConflistInput {
  podCidr: string;
  bpffsRoot: string;
  mtu: number;
  dataDir?: string;
}

/** The conflist the agent writes for this node. */
export function conflist(input: ConflistInput): SkeinConflist {
  return {
    cniVersion: "1.0.0",
    name: CNI_NETWORK_NAME,
    plugins: [
      {
        type: PLUGIN_TYPE,
        podCIDR: input.podCidr,
        bpffsRoot: input.bpffsRoot,
        mtu: input.mtu,
        ...(input.dataDir === undefined ? {} : { dataDir: input.dataDir }),
      },
    ],
  };
}
