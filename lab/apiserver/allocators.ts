/**
 * The Service allocators: ClusterIPs from the service CIDR and NodePorts from the node port
 * range, with the real allocators' rules (k8s.io/kubernetes pkg/registry/core/service/
 * ipallocator and portallocator): the network and broadcast addresses are never handed out; a
 * dynamic allocation takes a random free value from the upper part of the range first, keeping
 * the lower band for values people choose; an explicit value must be in the range and free. The
 * error messages are theirs.
 */
import { randomInt } from "node:crypto";
import { formatIPv4, parseIPv4, parsePrefix } from "../../maps/net.js";

/** Why an allocation failed: out of range, taken, or nothing left. */
export class AllocationError extends Error {
  override readonly name = "AllocationError";
  readonly kind: "range" | "allocated" | "full";

  constructor(kind: "range" | "allocated" | "full", message: string) {
    super(message);
    this.kind = kind;
  }
}

/** A set of integers in [first, first + size), allocated at random above a reserved band. */
class Range {
  readonly #first: number;
  readonly #size: number;
  readonly #reserved: number;
  readonly #used = new Set<number>();

  constructor(first: number, size: number, reserved: number) {
    this.#first = first;
    this.#size = size;
    this.#reserved = Math.min(reserved, size);
  }

  contains(n: number): boolean {
    return n >= this.#first && n < this.#first + this.#size;
  }

  has(n: number): boolean {
    return this.#used.has(n);
  }

  /** Takes `n`; false when it is already taken (the caller checked the range). */
  take(n: number): boolean {
    if (this.#used.has(n)) return false;
    this.#used.add(n);
    return true;
  }

  /** A random free value, from the dynamic band first; undefined when the range is full. */
  next(): number | undefined {
    return this.#pick(this.#reserved, this.#size) ?? this.#pick(0, this.#reserved);
  }

  #pick(from: number, to: number): number | undefined {
    const span = to - from;
    if (span <= 0) return undefined;
    const start = randomInt(span);
    for (let i = 0; i < span; i++) {
      const n = this.#first + from + ((start + i) % span);
      if (!this.#used.has(n)) {
        this.#used.add(n);
        return n;
      }
    }
    return undefined;
  }

  release(n: number): void {
    this.#used.delete(n);
  }

  get used(): number {
    return this.#used.size;
  }
}

/** ClusterIPs of one IPv4 service CIDR. */
export class ClusterIpAllocator {
  /** The CIDR as given, normalised (`10.96.0.0/16`). */
  readonly cidr: string;
  readonly #range: Range;

  /** Throws RangeError for anything but an IPv4 CIDR of /8 to /30. */
  constructor(cidr: string) {
    const p = parsePrefix(cidr);
    if (!cidr.includes("/") || p.length < 8 || p.length > 30)
      throw new RangeError(
        `service CIDR must be an IPv4 CIDR between /8 and /30, got ${JSON.stringify(cidr)}`,
      );
    this.cidr = `${p.ip}/${p.length}`;
    const size = 2 ** (32 - p.length) - 2;
    // The real allocator keeps min(max(16, size/16), 256) addresses at the start for static use.
    this.#range = new Range(parseIPv4(p.ip) + 1, size, Math.min(Math.max(16, Math.floor(size / 16)), 256));
  }

  /** Whether `ip` is a dotted-quad IPv4 address inside the allocatable range. */
  contains(ip: string): boolean {
    try {
      return this.#range.contains(parseIPv4(ip));
    } catch {
      return false;
    }
  }

  /** Whether `ip` is allocated. */
  has(ip: string): boolean {
    try {
      return this.#range.has(parseIPv4(ip));
    } catch {
      return false;
    }
  }

  /**
   * Allocates `ip`, or a free address when `ip` is undefined. Throws {@link AllocationError}
   * ("range", "allocated", "full") with the real allocator's message.
   */
  allocate(ip?: string): string {
    if (ip === undefined) {
      const n = this.#range.next();
      if (n === undefined) throw new AllocationError("full", "range is full");
      return formatIPv4(n);
    }
    if (!this.contains(ip))
      throw new AllocationError(
        "range",
        `the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${this.cidr}`,
      );
    if (!this.#range.take(parseIPv4(ip)))
      throw new AllocationError("allocated", "provided IP is already allocated");
    return ip;
  }

  /** Gives `ip` back; anything not allocated is ignored. */
  release(ip: string): void {
    if (this.contains(ip)) this.#range.release(parseIPv4(ip));
  }

  /** How many addresses are allocated. */
  get used(): number {
    return this.#range.used;
  }
}

/** NodePorts of one port range (30000-32767 by default). */
export class NodePortAllocator {
  readonly first: number;
  readonly last: number;
  readonly #range: Range;

  /** Throws RangeError unless 1 ≤ first ≤ last ≤ 65535. */
  constructor(first = 30000, last = 32767) {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65535 || first > last)
      throw new RangeError(`node port range must be FIRST-LAST within 1-65535, got ${first}-${last}`);
    this.first = first;
    this.last = last;
    const size = last - first + 1;
    // The real allocator keeps min(max(16, size/32), 128) ports at the start for static use.
    this.#range = new Range(first, size, Math.min(Math.max(16, Math.floor(size / 32)), 128));
  }

  /** `30000-32767`. */
  get text(): string {
    return `${this.first}-${this.last}`;
  }

  has(port: number): boolean {
    return this.#range.has(port);
  }

  /** Like {@link ClusterIpAllocator.allocate}, for ports. */
  allocate(port?: number): number {
    if (port === undefined) {
      const n = this.#range.next();
      if (n === undefined) throw new AllocationError("full", "range is full");
      return n;
    }
    if (!this.#range.contains(port))
      throw new AllocationError(
        "range",
        `provided port is not in the valid range. The range of valid ports is ${this.text}`,
      );
    if (!this.#range.take(port)) throw new AllocationError("allocated", "provided port is already allocated");
    return port;
  }

  release(port: number): void {
    if (this.#range.contains(port)) this.#range.release(port);
  }

  get used(): number {
    return this.#range.used;
  }
}
