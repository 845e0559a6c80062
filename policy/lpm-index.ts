/** Longest-prefix queries over a set of IPv4 prefixes: 33 hash lookups at most, whatever the size. */
import { maskIPv4, parseIPv4, type Prefix } from "../maps/net.js";

export class LpmIndex<T> {
  /** One map per prefix length, 0..32: masked address → value. */
  readonly #byLength: readonly Map<number, T>[] = Array.from({ length: 33 }, () => new Map<number, T>());

  #bucket(length: number): Map<number, T> {
    const m = this.#byLength[length];
    if (m === undefined) throw new RangeError(`prefix length ${length} is not 0..32`);
    return m;
  }
  #size = 0;

  set(prefix: Prefix, value: T): void {
    const m = this.#bucket(prefix.length);
    const key = parseIPv4(prefix.ip);
    if (!m.has(key)) this.#size++;
    m.set(key, value);
  }

  get size(): number {
    return this.#size;
  }

  /** The value of the longest stored prefix containing `prefix` (itself included). */
  longestContaining(prefix: Prefix): { prefix: Prefix; value: T } | undefined {
    const ip = parseIPv4(prefix.ip);
    for (let len = prefix.length; len >= 0; len--) {
      const m = this.#bucket(len);
      if (m.size === 0) continue;
      const masked = maskIPv4(ip, len);
      const v = m.get(masked);
      if (v !== undefined) {
        const text = [masked >>> 24, (masked >>> 16) & 255, (masked >>> 8) & 255, masked & 255].join(".");
        return { prefix: { ip: text, length: len }, value: v };
      }
    }
    return undefined;
  }
}
