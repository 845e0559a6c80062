/** Names and addresses skein-cni derives: host veth names and MACs. */
import { closeSync, openSync, readSync } from "node:fs";
import { sha256Hex } from "./sha256.js";

/** Prefix of every host-side veth skein-cni creates. */
export const HOST_VETH_PREFIX = "skn";
/** `skn` + 11 lowercase hex characters: what GC recognises as ours. */
export const HOST_VETH_PATTERN = /^skn[0-9a-f]{11}$/;

/** The pods' gateway: a link-local address answered by the host veth (and by skn_from_pod's ARP responder). */
export const GATEWAY_IP = "169.254.1.1";

/**
 * The host-side veth of an attachment: deterministic from (containerID, ifname), so DEL, CHECK and
 * GC find it without state. 14 characters, within IFNAMSIZ.
 */
export function hostVethName(containerId: string, ifname: string): string {
  return `${HOST_VETH_PREFIX}${sha256Hex(`${containerId}\0${ifname}`).slice(0, 11)}`;
}

/** `n` bytes from the kernel's CSPRNG (node:crypto would cost its load time on every invocation). */
function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  const fd = openSync("/dev/urandom", "r");
  try {
    for (let got = 0; got < n;) got += readSync(fd, b, got, n - got, null);
  } finally {
    closeSync(fd);
  }
  return b;
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] ?? 0) & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
