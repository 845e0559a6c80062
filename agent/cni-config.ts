/**
 * The CNI network configuration the agent writes once the node is ready, so that a runtime never
 * calls skein-cni before the datapath and the node's pod CIDR are known. Its contents are the
 * contract in maps/cni-conflist.ts.
 */
import { mkdirSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CNI_CONF_FILE, conflist, type ConflistInput } from "../maps/cni-conflist.js";

export const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";

/** Writes the conflist atomically (temp file + rename). Returns its path. Throws the fs error. */
export function writeConflist(dir: string, input: ConflistInput): string {
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
