/**
 * Kubernetes objects from YAML/JSON files or directories (multi-document YAML, `kind: List` and
 * `kind: XxxList` are unwrapped). The lab's API server seeds from them and `skeinctl policy
 * simulate` reads cluster objects with them.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { parseAllDocuments } from "yaml";

/** Any JSON value, as `JSON.parse` returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object (never an array or null). */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An object read from a file, and where it came from (for error messages). */
export interface ObjectFromFile {
  object: JsonObject;
  source: string;
}

const OBJECT_FILE_EXTENSIONS = new Set([".yaml", ".yml", ".json"]);

function unwrap(value: JsonValue, source: string, out: ObjectFromFile[]): void {
  if (value === null) return;
  if (!isJsonObject(value))
    throw new Error(
      `${source}: expected a Kubernetes object, got ${Array.isArray(value) ? "array" : typeof value}`,
    );
  const kind = typeof value.kind === "string" ? value.kind : "";
  if (kind === "List" || (kind.endsWith("List") && Array.isArray(value.items))) {
    const items = value.items;
    if (!Array.isArray(items)) throw new Error(`${source}: ${kind} has no items array`);
    items.forEach((item, i) => {
      unwrap(item, `${source} item ${i}`, out);
    });
    return;
  }
  out.push({ object: value, source });
}

/** Parses the objects of one YAML or JSON text (JSON is YAML). Throws on a syntax error. */
export function parseObjectText(text: string, source: string): ObjectFromFile[] {
  const out: ObjectFromFile[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${source} document ${i + 1}`;
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join("; ")}`);
    unwrap(doc.toJS({ maxAliasCount: 100 }) as JsonValue, where, out);
  });
  return out;
}

async function filesUnder(path: string): Promise<string[]> {
  const st = await stat(path);
  if (!st.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith(".")) continue;
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(full)));
    else if (OBJECT_FILE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}

/**
 * Reads every object under `paths` (files, or directories searched recursively for
 * .yaml/.yml/.json). Throws (with the file and document number) on unreadable files or bad YAML.
 */
export async function readObjectFiles(paths: readonly string[]): Promise<ObjectFromFile[]> {
  const out: ObjectFromFile[] = [];
  for (const p of paths) {
    for (const file of await filesUnder(p)) out.push(...parseObjectText(await readFile(file, "utf8"), file));
  }
  return out;
}
