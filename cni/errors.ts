/**
 * CNI error results. `CniError` carries one of the spec's well-known codes (0–99) or one of ours
 * (≥ 100); the dispatcher prints it as the spec's error object. Anything else that escapes a verb
 * becomes 999.
 */

/** Error codes: the spec's well-known ones, then Skein's own. */
export const ErrorCode = {
  /** Incompatible CNI version. */
  incompatibleVersion: 1,
  /** Unsupported field in the network configuration (the message names key and value). */
  unsupportedField: 2,
  /** Container unknown or does not exist: the runtime need not clean up. */
  unknownContainer: 3,
  /** Invalid necessary environment variables (the message names them). */
  invalidEnvironment: 4,
  /** I/O failure, e.g. reading the configuration from stdin. */
  ioFailure: 5,
  /** Failed to decode content (JSON). */
  decodingFailure: 6,
  /** Invalid network configuration. */
  invalidConfig: 7,
  /** Transient condition: try again later (the datapath is not loaded yet). */
  tryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  pluginNotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  limitedConnectivity: 51,

  /** Skein: the datapath refused something (TC attach, endpoints map). */
  datapathFailure: 100,
  /** Skein: IP address management failed (podCIDR exhausted, address taken, state unreadable). */
  ipamFailure: 101,
  /** Skein: configuring an interface, address, route or neighbour failed. */
  interfaceFailure: 102,
  /** Skein: CHECK found the attachment differs from prevResult. */
  checkFailed: 103,
  /** Skein: DEL or GC could not remove everything; the details list what is left. */
  cleanupIncomplete: 104,
  /** Anything unexpected. */
  internal: 999,
} as const;

/** One of the codes above. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A failure the dispatcher reports with a specific CNI error code. */
export class CniError extends Error {
  override readonly name: string = "CniError";
  readonly code: number;
  /** The longer explanation (the spec's `details`). */
  readonly details: string;

  constructor(code: number, msg: string, details = "", options?: { cause?: unknown }) {
    super(msg, options);
    this.code = code;
    this.details = details;
  }
}

/** The spec's error object. */
export interface ErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

/** Describes any thrown value in one line, following `cause` chains and aggregated errors. */
export function describe(err: unknown, depth = 0): string {
  if (depth > 5) return "…";
  if (err instanceof AggregateError)
    return `${err.message}: ${err.errors.map((e) => describe(e, depth + 1)).join("; ")}`;
  if (err instanceof Error)
    return err.cause === undefined ? err.message : `${err.message}: ${describe(err.cause, depth + 1)}`;
  return String(err);
}

/** Turns anything thrown by a verb into the spec's error object (unknown errors become 999). */
export function toErrorResult(err: unknown, cniVersion: string): ErrorResult {
  if (err instanceof CniError) return { cniVersion, code: err.code, msg: err.message, details: err.details };
  const details = err instanceof Error && err.cause !== undefined ? describe(err.cause) : "";
  const msg = err instanceof Error ? err.message : String(err);
  return { cniVersion, code: ErrorCode.internal, msg, details };
}
