/**
 * Host-local style IP address management from the podCIDR.
 *
 * State lives in `<dataDir>/<network>/`:
 *   lock               flock'ed (loader lockExclusive) around every change
 *   <ip>               one file per reserved address: "<containerID>\n<ifname>\n"
 *   last_reserved_ip   the address handed out last, so allocation rotates through the range
 * A reservation file appears atomically (written under a temporary name, then hard-linked into
 * place), and ADD writes it before touching anything else: whatever happens afterwards, DEL (by
 * container ID and ifname) or GC (by absence from the valid attachments) finds and frees it.
 */
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { lockExclusive } from "../loader/index.js";
import { formatIPv4, isIPv4, parseIPv4, type Prefix } from "../maps/net.js";
import { CniError, ErrorCode } from "./errors.js";

/** The allocatable part of a podCIDR: host-local's defaults (network, first and broadcast skipped). */
export class IpRange {
  readonly prefix: Prefix;
  /** Lowest allocatable address (host order). */
  readonly first: number;
  /** Highest allocatable address (host order). */
  readonly last: number;

  /** Throws RangeError when the prefix leaves nothing to allocate (longer than /30). */
  constructor(prefix: Prefix) {
    if (prefix.length > 30)
      throw new RangeError(`${prefix.ip}/${prefix.length} is too small to allocate from`);
    const network = parseIPv4(prefix.ip);
    const size = 2 ** (32 - prefix.length);
    this.prefix = prefix;
    // network + 1 is host-local's default gateway, which it never hands out; Skein's pods use
    // 169.254.1.1 instead, and the address stays free for the node.
    this.first = network + 2;
    this.last = network + size - 2;
  }

  get size(): number {
    return this.last - this.first + 1;
  }

  contains(ip: string): boolean {
    if (!isIPv4(ip)) return false;
    const n = parseIPv4(ip);
    return n >= this.first && n <= this.last;
  }

  /** Every allocatable address once, starting after `after` (or at the start) and wrapping. */
  *rotation(after?: string): Generator<string> {
    const size = this.size;
    let start = 0;
    if (after !== undefined && this.contains(after)) start = (parseIPv4(after) - this.first + 1) % size;
    for (let i = 0; i < size; i++) yield formatIPv4(this.first + ((start + i) % size));
  }
}

/**
 * Picks an address: the requested one if given (it must be in range and free), otherwise the first
 * free one after `lastReserved`. Pure: `taken` says what is in use. Throws CniError 101.
 */
export function pickAddress(
  range: IpRange,
  taken: (ip: string) => boolean,
  lastReserved?: string,
  requested?: string,
): string {
  if (requested !== undefined) {
    if (!range.contains(requested))
      throw new CniError(
        ErrorCode.ipamFailure,
        `requested address ${requested} is not allocatable in ${range.prefix.ip}/${range.prefix.length}`,
      );
    if (taken(requested))
      throw new CniError(ErrorCode.ipamFailure, `requested address ${requested} is already allocated`);
    return requested;
  }
  for (const ip of range.rotation(lastReserved)) if (!taken(ip)) return ip;
  throw new CniError(
    ErrorCode.ipamFailure,
    `no IP addresses available in podCIDR ${range.prefix.ip}/${range.prefix.length}`,
    `all ${range.size} allocatable addresses are reserved`,
  );
}

/** Who holds an address. */
export interface Owner {
  containerId: string;
  ifname: string;
}

/** A reserved address and its owner (empty owner fields: unreadable file). */
export interface Reservation extends Owner {
  ip: string;
}

const LOCK_FILE = "lock";
const LAST_RESERVED_FILE = "last_reserved_ip";

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Parses a reservation file; undefined when it is unreadable or malformed. */
export function parseOwner(text: string): Owner | undefined {
  const [containerId, ifname] = text.split(/\r?\n/);
  if (containerId === undefined || containerId === "" || ifname === undefined || ifname === "")
    return undefined;
  return { containerId, ifname };
}

/**
 * The reservation directory of one network. Holds no open resources: `locked()` opens, locks and
 * closes the lock file around its callback.
 */
export class IpamStore {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** The store for `network` under `dataDir`, created if missing. Throws CniError 101 when it cannot be. */
  static open(dataDir: string, network: string): IpamStore {
    const dir = join(dataDir, network);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CniError(ErrorCode.ipamFailure, `cannot create IPAM directory ${dir}`, String(err), {
        cause: err,
      });
    }
    return new IpamStore(dir);
  }

  /** The store if its directory exists, else undefined (nothing was ever reserved). */
  static existing(dataDir: string, network: string): IpamStore | undefined {
    const dir = join(dataDir, network);
    try {
      readdirSync(dir);
    } catch (err) {
      if (isErrno(err, "ENOENT")) return undefined;
      throw new CniError(ErrorCode.ipamFailure, `cannot read IPAM directory ${dir}`, String(err), {
        cause: err,
      });
    }
    return new IpamStore(dir);
  }

  /** Runs `fn` holding the store's exclusive lock (blocking until it is free). */
  locked<T>(fn: () => T): T {
    const path = join(this.dir, LOCK_FILE);
    const fd = openSync(path, "a", 0o600);
    try {
      lockExclusive(fd, path);
      return fn();
    } finally {
      closeSync(fd); // releases the flock
    }
  }

  /** The owner of `ip`: undefined when free, null when the file exists but is unreadable. */
  owner(ip: string): Owner | null | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, ip), "utf8");
    } catch (err) {
      if (isErrno(err, "ENOENT")) return undefined;
      return null;
    }
    return parseOwner(text) ?? null;
  }

  /** Every reservation, unreadable ones with empty owner fields. */
  reservations(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!isIPv4(name)) continue;
      const owner = this.owner(name);
      if (owner === undefined) continue; // released meanwhile
      out.push({ ip: name, containerId: owner?.containerId ?? "", ifname: owner?.ifname ?? "" });
    }
    return out;
  }

  /** Addresses held by one attachment. */
  reservationsOf(owner: Owner): string[] {
    return this.reservations()
      .filter((r) => r.containerId === owner.containerId && r.ifname === owner.ifname)
      .map((r) => r.ip);
  }

  lastReserved(): string | undefined {
    try {
      const text = readFileSync(join(this.dir, LAST_RESERVED_FILE), "utf8").trim();
      return isIPv4(text) ? text : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Reserves an address for `owner` (call inside `locked`). Throws CniError 101 when the range is
   * exhausted, the requested address is unavailable, or the attachment already holds one.
   */
  reserve(range: IpRange, owner: Owner, requested?: string): string {
    const held = this.reservationsOf(owner);
    if (held.length > 0)
      throw new CniError(
        ErrorCode.ipamFailure,
        `${owner.containerId}/${owner.ifname} already holds ${held.join(", ")}: duplicate allocation is not allowed`,
        "call DEL for the attachment first",
      );
    const ip = pickAddress(
      range,
      (candidate) => this.owner(candidate) !== undefined,
      this.lastReserved(),
      requested,
    );
    const tmp = join(this.dir, `.${ip}.${process.pid}.tmp`);
    try {
      writeFileSync(tmp, `${owner.containerId}\n${owner.ifname}\n`, { mode: 0o600 });
      linkSync(tmp, join(this.dir, ip)); // fails with EEXIST instead of overwriting
    } catch (err) {
      throw new CniError(ErrorCode.ipamFailure, `cannot reserve ${ip} in ${this.dir}`, String(err), {
        cause: err,
      });
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // already gone
      }
    }
    try {
      const lastTmp = join(this.dir, `.${LAST_RESERVED_FILE}.${process.pid}.tmp`);
      writeFileSync(lastTmp, `${ip}\n`);
      renameSync(lastTmp, join(this.dir, LAST_RESERVED_FILE));
    } catch {
      // Only rotation suffers; the reservation itself is in place.
    }
    return ip;
  }

  /** Removes temporary files a crashed ADD left (call inside `locked`: no live ADD has one then). */
  sweepTemporaries(): void {
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(".") || !name.endsWith(".tmp")) continue;
      try {
        unlinkSync(join(this.dir, name));
      } catch {
        // gone already
      }
    }
  }

  /**
   * Frees `ip` if `owner` holds it (or unconditionally without `owner`). Returns whether a file
   * was removed. Throws CniError 101 on I/O errors other than "already gone".
   */
  release(ip: string, owner?: Owner): boolean {
    if (owner !== undefined) {
      const current = this.owner(ip);
      if (current === undefined) return false;
      if (current !== null && (current.containerId !== owner.containerId || current.ifname !== owner.ifname))
        return false;
    }
    try {
      unlinkSync(join(this.dir, ip));
      return true;
    } catch (err) {
      if (isErrno(err, "ENOENT")) return false;
      throw new CniError(ErrorCode.ipamFailure, `cannot release ${ip} in ${this.dir}`, String(err), {
        cause: err,
      });
    }
  }
}
