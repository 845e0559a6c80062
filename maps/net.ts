/** IPv4 and MAC text <-> bytes, shared by every codec. */

/**
 * Parses dotted-quad IPv4 into a host-order number: four groups of 1 to 3 ASCII digits, each at
 * most 255, separated by dots (leading zeros allowed, as before). Throws RangeError on anything
 * else. A hand-written scan: the agent parses every pod's address several times at start.
 */
export function parseIPv4(text: string): number {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return notIPv4(text);
    } else if (c === 46 && digits > 0 && dots < 3) {
      if (octet > 255) return notIPv4(text);
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else return notIPv4(text);
  }
  if (dots !== 3 || digits === 0 || octet > 255) return notIPv4(text);
  return n * 256 + octet;
}

function notIPv4(text: string): never {
  throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
}

export function isIPv4(text: string): boolean {
  try {
    parseIPv4(text);
    return true;
  } catch {
    return false;
  }
}

/** Host-order number to dotted quad. */
export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Writes an address in network order. */
export function writeIPv4(buf: Buffer, offset: number, ip: string): void {
  buf.writeUInt32BE(parseIPv4(ip), offset);
}

export function readIPv4(buf: Buffer, offset: number): string {
  return formatIPv4(buf.readUInt32BE(offset));
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function writeMac(buf: Buffer, offset: number, mac: string): void {
  if (!macPattern.test(mac)) throw new RangeError(`not a MAC address: ${JSON.stringify(mac)}`);
  Buffer.from(mac.replaceAll(":", ""), "hex").copy(buf, offset);
}

export function readMac(buf: Buffer, offset: number): string {
  return [...buf.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** An IPv4 prefix, `a.b.c.d/len`, normalised (host bits cleared). */
export interface Prefix {
  ip: string;
  length: number;
}

/** Parses `a.b.c.d/len` (or a bare address as /32). Throws RangeError, naming the input. */
export function parsePrefix(text: string): Prefix {
  // A bare address (every pod's): no split.
  if (!text.includes("/")) return { ip: formatIPv4(parseIPv4(text)), length: 32 };
  const [ipText, lenText, ...rest] = text.split("/");
  if (ipText === undefined || rest.length > 0)
    throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  const length = lenText === undefined ? 32 : Number(lenText);
  if (
    !Number.isInteger(length) ||
    length < 0 ||
    length > 32 ||
    (lenText !== undefined && !/^\d+$/.test(lenText))
  )
    throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  const ip = parseIPv4(ipText);
  return { ip: formatIPv4(maskIPv4(ip, length)), length };
}

export function maskIPv4(ip: number, length: number): number {
  return length === 0 ? 0 : (ip & (0xffffffff << (32 - length))) >>> 0;
}

export function formatPrefix(p: Prefix): string {
  return `${p.ip}/${p.length}`;
}

/** Does `outer` contain `inner` (equal counts)? */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return outer.length <= inner.length && maskIPv4(parseIPv4(inner.ip), outer.length) === parseIPv4(outer.ip);
}

export function prefixContainsIp(prefix: Prefix, ip: string): boolean {
  return prefixContains(prefix, { ip, length: 32 });
}
