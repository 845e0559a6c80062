/**
 * Typed errors for everything that touches the kernel. Every failure keeps its errno, the
 * operation and the object it was about, so a message reads like
 * `attach tc ingress on sknab12cd34ef: EEXIST (File exists)`.
 */
import { constants } from "node:os";

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Several names share a number (EAGAIN/EWOULDBLOCK, EOPNOTSUPP/ENOTSUP): keep the first.
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}
// libbpf and the kernel's internal ENOTSUPP (524) leak out of some BPF commands.
errnoNames.set(524, "ENOTSUPP");

/** The symbolic name of an errno value (`ENOENT`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

const descriptions: Record<string, string> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EINTR: "Interrupted system call",
  EIO: "Input/output error",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EFAULT: "Bad address",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EINVAL: "Invalid argument",
  ENOSPC: "No space left on device",
  E2BIG: "Argument list too long",
  ENOSYS: "Function not implemented",
  EOPNOTSUPP: "Operation not supported",
  ENOTSUPP: "Operation not supported by the kernel",
  ENOTEMPTY: "Directory not empty",
  ELOOP: "Too many levels of symbolic links",
};

/** A system call or libbpf call that failed with an errno. */
export class SysError extends Error {
  override readonly name: string = "SysError";
  /** Positive errno value. */
  readonly errno: number;
  /** Symbolic errno name (`EEXIST`). */
  readonly code: string;
  /** What was attempted (`attach tc ingress`). */
  readonly operation: string;
  /** What it was attempted on (an interface, a pin path, a map name), if anything. */
  readonly object: string | undefined;

  constructor(operation: string, errno: number, object?: string, options?: { cause?: unknown }) {
    const code = errnoName(errno);
    const what = object === undefined ? operation : `${operation} on ${object}`;
    const description = descriptions[code];
    super(`${what}: ${code}${description === undefined ? "" : ` (${description})`}`, options);
    this.errno = errno;
    this.code = code;
    this.operation = operation;
    this.object = object;
  }
}

/** The kernel or library lacks something Skein needs; the message says what and how to get it. */
export class NotSupportedError extends Error {
  override readonly name: string = "NotSupportedError";
}

/** The verifier refused a program. The message is short; the full log is in `log`. */
export class VerifierError extends SysError {
  override readonly name: string = "VerifierError";
  /** Everything libbpf and the verifier printed during the load. */
  readonly log: string;

  constructor(operation: string, errno: number, object: string, log: string) {
    super(operation, errno, object);
    this.log = log;
    const lines = log.trim().split("\n");
    const hint = lines.filter((l) => !l.startsWith("libbpf:") && l.trim() !== "").slice(-3);
    if (hint.length > 0) this.message += `; verifier: ${hint.join(" | ")}`;
  }
}

/**
 * Turns a libbpf/syscall-style return value (negative errno on failure) into a SysError.
 * Returns the value unchanged when it is not negative.
 */
export function check(ret: number, operation: string, object?: string): number {
  if (ret < 0) throw new SysError(operation, -ret, object);
  return ret;
}

/** A property of a map's definition that must match for a pinned map to be reused. */
export type MapProperty = "type" | "keySize" | "valueSize" | "maxEntries" | "flags";

/** One property of a pinned map that differs from the object's definition. */
export interface MapDifference {
  property: MapProperty;
  /** What the object declares (after any change made before load, such as setMaxEntries). */
  expected: number;
  /** What the map pinned in bpffs has. */
  found: number;
}

const propertyLabels: Record<MapProperty, string> = {
  type: "type",
  keySize: "key size",
  valueSize: "value size",
  maxEntries: "max entries",
  flags: "flags",
};

/** enum bpf_map_type, lower case without the prefix, for messages. */
const mapTypeNames = [
  "unspec",
  "hash",
  "array",
  "prog_array",
  "perf_event_array",
  "percpu_hash",
  "percpu_array",
  "stack_trace",
  "cgroup_array",
  "lru_hash",
  "lru_percpu_hash",
  "lpm_trie",
  "array_of_maps",
  "hash_of_maps",
  "devmap",
  "sockmap",
  "cpumap",
  "xskmap",
  "sockhash",
  "cgroup_storage",
  "reuseport_sockarray",
  "percpu_cgroup_storage",
  "queue",
  "stack",
  "sk_storage",
  "devmap_hash",
  "struct_ops",
  "ringbuf",
  "inode_storage",
  "task_storage",
  "bloom_filter",
  "user_ringbuf",
  "cgrp_storage",
];

function propertyValue(property: MapProperty, value: number): string {
  if (property === "flags") return `0x${value.toString(16)}`;
  if (property === "type") return `${mapTypeNames[value] ?? "unknown"} (${value})`;
  return String(value);
}

/**
 * A map pinned where the object would reuse it differs from the object's definition (libbpf would
 * refuse to reuse it). Thrown before anything is loaded. `hint`, from a caller that knows the
 * remedy, ends the message.
 */
export class PinnedMapMismatchError extends Error {
  override readonly name: string = "PinnedMapMismatchError";
  readonly mapName: string;
  readonly pinPath: string;
  readonly differences: readonly MapDifference[];

  constructor(
    mapName: string,
    pinPath: string,
    differences: readonly MapDifference[],
    options?: { hint?: string; cause?: unknown },
  ) {
    const what = differences
      .map(
        (d) =>
          `${propertyLabels[d.property]} ${propertyValue(d.property, d.expected)} expected, ` +
          `${propertyValue(d.property, d.found)} pinned`,
      )
      .join("; ");
    const hint = options?.hint === undefined ? "" : `: ${options.hint}`;
    super(
      `pinned map ${mapName} at ${pinPath} does not match the object (${what})${hint}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.mapName = mapName;
    this.pinPath = pinPath;
    this.differences = differences;
  }
}
