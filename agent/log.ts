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
