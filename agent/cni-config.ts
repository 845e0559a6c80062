/**
 * The CNI network configuration the agent writes once the node is ready, so that a runtime never
 * calls skein-cni before the datapath and the node's pod CIDR are known.
 */
import { mkdirSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";

export const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";
export const CNI_CONF_FILE = "10-skein.conflist";
export const CNI_NETWORK_NAME = "skein";

export interface CniConfigInput {
  podCidr: string;
  bpffsRoot: string;
  mtu: number;
  dataDir?: string;
}

export function conflist(input: CniConfigInput): object {
  return {
    cniVersion: "1.0.0",
    name: CNI_NETWORK_NAME,
    plugins: [
      {
        type: "skein-cni",
        podCIDR: input.podCidr,
        bpffsRoot: input.bpffsRoot,
        mtu: input.mtu,
        ...(input.dataDir === undefined ? {} : { dataDir: input.dataDir }),
      },
    ],
  };
}

/** Writes the conflist atomically (temp file + rename). Returns its path. */
export function writeConflist(dir: string, input: CniConfigInput): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, CNI_CONF_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(conflist(input), null, 2) + "\n", { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

export function removeConflist(dir: string): void {
  rmSync(join(dir, CNI_CONF_FILE), { force: true });
}
