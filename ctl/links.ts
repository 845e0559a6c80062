/**
 * Interface names for output that would otherwise show ifindexes. An ifindex means something only
 * in its network namespace: run in another one (the host's instead of a lab node's, say), the same
 * number is some other link. So a name is given only when the link here is the one the maps describe:
 * an endpoint's host veth carries the endpoint's host MAC, the overlay device the node's VXLAN MAC.
 */
import { listLinks } from "../loader/index.js";
import { ConfigMap } from "../maps/config.js";
import { EndpointsMap } from "../maps/endpoints.js";
import { openOptional } from "./optional.js";

/** ifindex → (name, MAC) of every link here; empty when `ip` cannot be run (names are then left out). */
async function linksHere(): Promise<Map<number, { name: string; mac: string }>> {
  try {
    return new Map(
      (await listLinks()).map((l) => [l.ifindex, { name: l.ifname, mac: (l.address ?? "").toLowerCase() }]),
    );
  } catch {
    return new Map();
  }
}

/**
 * Names of the links of this network namespace that are Skein's under `root` (endpoint veths, the
 * overlay device, the uplink), by ifindex. Endpoint and overlay links whose MAC does not match the
 * maps are left out: they belong to another namespace's numbering (the uplink has no MAC in the
 * maps, so its name is only right when run in the node's namespace). Throws SysError for map failures other than "not pinned".
 */
export async function skeinLinkNames(root: string): Promise<Map<number, string>> {
  const links = await linksHere();
  const out = new Map<number, string>();
  const endpoints = openOptional(() => EndpointsMap.openPinned(root));
  if (endpoints !== undefined) {
    try {
      for (const [, e] of endpoints.entries()) {
        const link = links.get(e.ifindex);
        if (link !== undefined && link.mac === e.hostMac.toLowerCase()) out.set(e.ifindex, link.name);
      }
    } finally {
      endpoints.close();
    }
  }
  const config = openOptional(() => ConfigMap.openPinned(root));
  if (config !== undefined) {
    try {
      const c = config.read();
      const link = links.get(c.vxlanIfindex);
      if (c.vxlanIfindex !== 0 && link !== undefined && link.mac === c.vxlanMac.toLowerCase())
        out.set(c.vxlanIfindex, link.name);
      const uplink = links.get(c.uplinkIfindex);
      if (c.uplinkIfindex !== 0 && uplink !== undefined) out.set(c.uplinkIfindex, uplink.name);
    } finally {
      config.close();
    }
  }
  return out;
}
