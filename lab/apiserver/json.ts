/** JSON value types and the few pure helpers the lab API server needs on them. */
import { isJsonObject, type JsonObject, type JsonValue } from "../../policy/object-files.js";

export { isJsonObject, type JsonObject, type JsonValue };

/** A deep copy; `structuredClone` keeps the JSON shape and is fast enough for lab-sized objects. */
export function cloneJson<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

/** Structural equality of two JSON values; object key order does not matter. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (typeof a !== "object" || typeof b !== "object" || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}

/** `obj[key]` when it is a JSON object, else undefined. */
export function objectAt(obj: JsonObject | undefined, key: string): JsonObject | undefined {
  const v = obj?.[key];
  return isJsonObject(v) ? v : undefined;
}

/** `obj[key]` when it is a string, else undefined. */
export function stringAt(obj: JsonObject | undefined, key: string): string | undefined {
  const v = obj?.[key];
  return typeof v === "string" ? v : undefined;
}

/** `obj[key]` when it is an array, else undefined. */
export function arrayAt(obj: JsonObject | undefined, key: string): JsonValue[] | undefined {
  const v = obj?.[key];
  return Array.isArray(v) ? v : undefined;
}

/** Removes `key` from a JSON object used as a dictionary. */
export function removeKey(obj: JsonObject, key: string): void {
  Reflect.deleteProperty(obj, key);
}

/** A JSON value as text for messages: strings as they are, anything else as JSON. */
export function jsonText(value: JsonValue | undefined): string {
  if (value === undefined) return "undefined";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Follows a dotted path of object keys (`"spec.nodeName"`); undefined when any step is missing. */
export function valueAtPath(obj: JsonObject, path: string): JsonValue | undefined {
  let cur: JsonValue | undefined = obj;
  for (const part of path.split(".")) {
    if (!isJsonObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}
