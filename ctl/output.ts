/** skeinctl output: aligned tables for people, JSON for programs (`-o json`). */

export type OutputFormat = "table" | "json";

/** One table column: its header and how to print a row's cell. */
export interface Column<T> {
  header: string;
  value: (row: T) => string | number | bigint | boolean | null | undefined;
}

/** Renders rows as a left-aligned table with a header line. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => String(c.value(r) ?? "")));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n") + "\n";
}

/** JSON with bigints as numbers when safe, strings otherwise. */
export function renderJson(value: unknown): string {
  return (
    JSON.stringify(
      value,
      (_k, v: unknown) =>
        typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v,
      2,
    ) + "\n"
  );
}

/** JSON (`json`, or `rows` when absent) for `-o json`, the table otherwise. */
export function render<T>(
  format: OutputFormat,
  rows: readonly T[],
  columns: readonly Column<T>[],
  json?: unknown,
): string {
  return format === "json" ? renderJson(json ?? rows) : renderTable(rows, columns);
}
