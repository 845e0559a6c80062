/**
 * Seeding: Kubernetes objects from YAML/JSON files or directories (multi-document YAML, `kind:
 * List` and `kind: XxxList` are unwrapped), created in dependency order (namespaces first) so a
 * seed directory's file order does not matter.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ApiError } from "./errors.js";
import { isJsonObject, stringAt, type JsonObject, type JsonValue } from "./json.js";
import type { LabStore } from "./store.js";

/** A seed object and where it came from (for error messages). */
export interface SeedObject {
  object: JsonObject;
  source: string;
}

const SEED_EXTENSIONS = new Set([".yaml", ".yml", ".json"]);
const KIND_ORDER = ["Namespace", "Node", "NetworkPolicy", "Pod"];

function unwrap(value: JsonValue, source: string, out: SeedObject[]): void {
  if (value === null) return;
  if (!isJsonObject(value))
    throw new Error(
      `${source}: a seed document must be an object, got ${Array.isArray(value) ? "array" : typeof value}`,
    );
  const kind = stringAt(value, "kind") ?? "";
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
export function parseSeedText(text: string, source: string): SeedObject[] {
  const out: SeedObject[] = [];
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
    else if (SEED_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}

/**
 * Reads every seed object under `paths` (files, or directories searched recursively for
 * .yaml/.yml/.json). Throws (with the file and document number) on unreadable files or bad YAML.
 */
export async function readSeed(paths: readonly string[]): Promise<SeedObject[]> {
  const out: SeedObject[] = [];
  for (const p of paths) {
    for (const file of await filesUnder(p)) out.push(...parseSeedText(await readFile(file, "utf8"), file));
  }
  return out;
}

/**
 * Creates (or replaces, via {@link LabStore.upsert}) the seed objects, namespaces first, then
 * nodes, policies and pods; within a kind the input order is kept. Status in the seed is kept.
 * Throws an Error naming the source document when the store rejects an object.
 */
export function applySeed(store: LabStore, objects: readonly SeedObject[]): number {
  const rank = (o: SeedObject): number => {
    const i = KIND_ORDER.indexOf(stringAt(o.object, "kind") ?? "");
    return i < 0 ? KIND_ORDER.length : i;
  };
  const ordered = objects.map((o, i) => ({ o, i })).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i);
  for (const { o } of ordered) {
    try {
      store.upsert(o.object);
    } catch (err) {
      const why = err instanceof ApiError ? `${err.code} ${err.reason}: ${err.message}` : String(err);
      throw new Error(`seed ${o.source}: ${why}`, { cause: err });
    }
  }
  return ordered.length;
}
