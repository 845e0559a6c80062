/** The agent's log: one line per event, `time level msg key=value ...`, to stderr. */

export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  with(fields: Record<string, unknown>): Logger;
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  // JSON.stringify gives undefined for undefined and functions, whatever its type says.
  const s = typeof v === "string" ? v : (JSON.stringify(v) as string | undefined);
  if (s === undefined) return "null";
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** A logger writing to `sink` (stderr by default) at `level` and above. */
export function createLogger(
  level: Level = "info",
  sink: (line: string) => void = (l) => process.stderr.write(l),
  base: Record<string, unknown> = {},
): Logger {
  const emit = (lvl: Level, msg: string, fields: Record<string, unknown> = {}) => {
    if (order[lvl] < order[level]) return;
    const all = { ...base, ...fields };
    const rest = Object.entries(all)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(" ");
    sink(`${new Date().toISOString()} ${lvl} ${msg}${rest === "" ? "" : ` ${rest}`}\n`);
  };
  return {
    debug: (m, f) => {
      emit("debug", m, f);
    },
    info: (m, f) => {
      emit("info", m, f);
    },
    warn: (m, f) => {
      emit("warn", m, f);
    },
    error: (m, f) => {
      emit("error", m, f);
    },
    with: (f) => createLogger(level, sink, { ...base, ...f }),
  };
}

/** A type, not an interface: a Logger's fields are a Record, which only type literals satisfy. */
export type ErrorFields = {
  error: string;
  errno?: number;
  code?: string | number;
  cause?: string;
};

/**
 * An error as log fields: `error` (its message), `errno` and `code` (the first found down the
 * `cause` chain: a SysError's errno and symbolic code, Node's `ENOENT`/`ECONNREFUSED`, an HTTP
 * status of the API client), and `cause` (the messages of the causes, outermost first). So a line
 * keeps what an operator greps for even when the message was written for people.
 */
export function errorFields(err: unknown): ErrorFields {
  const fields: ErrorFields = { error: message(err) };
  const causes: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; typeof e === "object" && e !== null && !seen.has(e);) {
    seen.add(e);
    const { errno, code, cause } = e as { errno?: unknown; code?: unknown; cause?: unknown };
    if (fields.errno === undefined && typeof errno === "number") fields.errno = errno;
    if (fields.code === undefined && (typeof code === "string" || typeof code === "number"))
      fields.code = code;
    if (cause === undefined || cause === null) break;
    causes.push(message(cause));
    e = cause;
  }
  if (causes.length > 0) fields.cause = causes.join(" <- ");
  return fields;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
