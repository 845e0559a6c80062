/** Security identities the datapath reserves (bpf/lib/common.h, enum skn_identity). */
export const Identity = {
  /** In policy keys: any peer. Never a packet's identity. */
  any: 0,
  /** This node. */
  host: 1,
  /** Outside the cluster, not in any ipBlock. */
  world: 2,
  /** Another node of the cluster. */
  remoteNode: 3,
  /** An address in a pod CIDR whose pod the agent does not know (yet). */
  unmanaged: 4,
  firstPod: 256,
  lastPod: 0x7fffff,
  firstCidr: 0x800000,
  lastCidr: 0xffffff,
} as const;

const reservedNames = new Map<number, string>([
  [Identity.any, "any"],
  [Identity.host, "host"],
  [Identity.world, "world"],
  [Identity.remoteNode, "remote-node"],
  [Identity.unmanaged, "unmanaged"],
]);

/** `host`, `world`, ... for reserved identities; undefined for pod and CIDR identities. */
export function reservedIdentityName(id: number): string | undefined {
  return reservedNames.get(id);
}

export function isCidrIdentity(id: number): boolean {
  return id >= Identity.firstCidr && id <= Identity.lastCidr;
}

export function isPodIdentity(id: number): boolean {
  return id >= Identity.firstPod && id <= Identity.lastPod;
}
