/** Interface names of this network namespace, for output that would otherwise show ifindexes. */
import { listLinks } from "../../loader/index.js";

/** ifindex → name for every link here; empty when `ip` cannot be run (names are then left out). */
export async function interfaceNames(): Promise<Map<number, string>> {
  try {
    return new Map((await listLinks()).map((l) => [l.ifindex, l.ifname]));
  } catch {
    return new Map();
  }
}
