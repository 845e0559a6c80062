/**
 * The three PATCH formats kube-apiserver accepts for built-in types: JSON merge patch (RFC 7386),
 * JSON patch (RFC 6902) and strategic merge patch (a merge patch that merges some lists by key).
 * Pure functions: they never mutate their inputs. Errors are {@link ApiError}s with the real
 * server's codes: a malformed patch document is 400, a patch that cannot be applied is 422.
 */
import { ApiError, badRequest } from "./errors.js";
import { cloneJson, isJsonObject, jsonEqual, removeKey, type JsonObject, type JsonValue } from "./json.js";

/** The Content-Type values a PATCH request may carry (apply-patch is not supported). */
export type PatchType = "merge" | "strategic" | "json";

/** Maps a PATCH Content-Type to its {@link PatchType}; undefined for anything else. */
export function patchTypeOf(contentType: string): PatchType | undefined {
  const mt = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  if (mt === "application/merge-patch+json") return "merge";
  if (mt === "application/strategic-merge-patch+json") return "strategic";
  if (mt === "application/json-patch+json") return "json";
  return undefined;
}

function patchFailed(message: string): ApiError {
  return new ApiError(422, "Invalid", message);
}

/** RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces. */
export function applyMergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return cloneJson(patch);
  const out: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) removeKey(out, k);
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

// --- JSON patch -----------------------------------------------------------------------------------

type Op =
  | { op: "add" | "replace" | "test"; path: string[]; value: JsonValue }
  | { op: "remove"; path: string[] }
  | { op: "move" | "copy"; path: string[]; from: string[] };

function parsePointer(pointer: unknown, what: string): string[] {
  if (typeof pointer !== "string") throw badRequest(`json patch: "${what}" must be a string`);
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw badRequest(`json patch: invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parseJsonPatch(patch: JsonValue): Op[] {
  if (!Array.isArray(patch)) throw badRequest("json patch: the patch must be a JSON array of operations");
  return patch.map((raw, i) => {
    if (!isJsonObject(raw)) throw badRequest(`json patch: operation ${i} is not an object`);
    const path = parsePointer(raw.path, "path");
    const op = raw.op;
    if (op === "add" || op === "replace" || op === "test") {
      if (!Object.hasOwn(raw, "value")) throw badRequest(`json patch: operation ${i} (${op}) has no "value"`);
      return { op, path, value: raw.value as JsonValue };
    }
    if (op === "remove") return { op, path };
    if (op === "move" || op === "copy") return { op, path, from: parsePointer(raw.from, "from") };
    throw badRequest(`json patch: operation ${i} has unknown op ${JSON.stringify(op ?? null)}`);
  });
}

function arrayIndex(token: string, length: number, allowEnd: boolean, pointer: string): number {
  if (allowEnd && token === "-") return length;
  if (!/^(0|[1-9]\d*)$/.test(token))
    throw patchFailed(`json patch: invalid array index "${token}" in "${pointer}"`);
  const i = Number(token);
  if (i > length || (!allowEnd && i === length))
    throw patchFailed(`json patch: array index ${i} out of range in "${pointer}"`);
  return i;
}

function show(path: string[]): string {
  return "/" + path.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

/** The container holding `path`'s last token; throws 422 when a step is missing. */
function parentOf(doc: JsonValue, path: string[]): JsonObject | JsonValue[] {
  let cur: JsonValue = doc;
  for (const token of path.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const next: JsonValue | undefined = cur[arrayIndex(token, cur.length, false, show(path))];
      if (next === undefined) throw patchFailed(`json patch: path "${show(path)}" does not exist`);
      cur = next;
    } else if (isJsonObject(cur) && Object.hasOwn(cur, token)) {
      cur = cur[token] as JsonValue;
    } else {
      throw patchFailed(`json patch: path "${show(path)}" does not exist`);
    }
  }
  if (!Array.isArray(cur) && !isJsonObject(cur))
    throw patchFailed(`json patch: path "${show(path)}" does not exist`);
  return cur;
}

function getAt(doc: JsonValue, path: string[]): JsonValue {
  if (path.length === 0) return doc;
  const parent = parentOf(doc, path);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) return parent[arrayIndex(last, parent.length, false, show(path))] as JsonValue;
  if (!Object.hasOwn(parent, last)) throw patchFailed(`json patch: path "${show(path)}" does not exist`);
  return parent[last] as JsonValue;
}

function removeAt(doc: JsonValue, path: string[]): JsonValue {
  if (path.length === 0) throw patchFailed("json patch: cannot remove the whole document");
  const parent = parentOf(doc, path);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) {
    const [removed] = parent.splice(arrayIndex(last, parent.length, false, show(path)), 1);
    return removed as JsonValue;
  }
  if (!Object.hasOwn(parent, last)) throw patchFailed(`json patch: path "${show(path)}" does not exist`);
  const removed = parent[last] as JsonValue;
  removeKey(parent, last);
  return removed;
}

/** Returns the new document (the root may be replaced). */
function addAt(doc: JsonValue, path: string[], value: JsonValue, replace: boolean): JsonValue {
  if (path.length === 0) return value;
  const parent = parentOf(doc, path);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) {
    const i = arrayIndex(last, parent.length, !replace, show(path));
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !Object.hasOwn(parent, last))
      throw patchFailed(`json patch: path "${show(path)}" does not exist`);
    parent[last] = value;
  }
  return doc;
}

/** RFC 6902 JSON patch (add, remove, replace, move, copy, test), applied atomically. */
export function applyJsonPatch(target: JsonValue, patch: JsonValue): JsonValue {
  const ops = parseJsonPatch(patch);
  let doc = cloneJson(target);
  for (const op of ops) {
    switch (op.op) {
      case "add":
        doc = addAt(doc, op.path, cloneJson(op.value), false);
        break;
      case "replace":
        doc = addAt(doc, op.path, cloneJson(op.value), true);
        break;
      case "remove":
        removeAt(doc, op.path);
        break;
      case "test":
        if (!jsonEqual(getAt(doc, op.path), op.value))
          throw patchFailed(`json patch: test failed at "${show(op.path)}"`);
        break;
      case "copy":
        doc = addAt(doc, op.path, cloneJson(getAt(doc, op.from)), false);
        break;
      case "move": {
        const from = show(op.from);
        if (show(op.path).startsWith(from + "/"))
          throw patchFailed(`json patch: cannot move "${from}" into itself`);
        const value = removeAt(doc, op.from);
        doc = addAt(doc, op.path, value, false);
        break;
      }
    }
  }
  return doc;
}

// --- strategic merge patch ------------------------------------------------------------------------

/**
 * Lists that merge by key in the built-in types this server stores (the `patchMergeKey` tags of
 * k8s.io/api), addressed by field path with `[]` for "any element". Lists not named here are
 * replaced, as for `patchStrategy` "atomic" lists on the real server.
 */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  "metadata.ownerReferences": "uid",
  "spec.containers": "name",
  "spec.initContainers": "name",
  "spec.ephemeralContainers": "name",
  "spec.containers[].ports": "containerPort",
  "spec.initContainers[].ports": "containerPort",
  "spec.containers[].env": "name",
  "spec.initContainers[].env": "name",
  "spec.containers[].volumeMounts": "mountPath",
  "spec.initContainers[].volumeMounts": "mountPath",
  "spec.volumes": "name",
  // Service ports (only Services have a top-level spec.ports among the served types).
  "spec.ports": "port",
  "spec.imagePullSecrets": "name",
  "spec.hostAliases": "ip",
  "status.conditions": "type",
  "status.addresses": "type",
  "status.podIPs": "ip",
};

/** Primitive lists that merge as sets (`patchStrategy: merge` on a list of strings). */
const MERGED_PRIMITIVE_LISTS: ReadonlySet<string> = new Set([
  "metadata.finalizers",
  "spec.podCIDRs",
  "spec.finalizers",
]);

function childPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/**
 * Strategic merge patch for the built-in types served here: a merge patch whose directives
 * (`$patch`, `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`) are honoured and
 * whose known keyed lists (containers by name, conditions by type, …) merge element by element.
 */
export function applyStrategicMergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) throw badRequest("strategic merge patch: the patch must be a JSON object");
  const out = strategicMap(isJsonObject(target) ? target : {}, patch, "");
  return out ?? {};
}

/** Merges `patch` into `target`; undefined means "delete this map" (`$patch: delete`). */
function strategicMap(target: JsonObject, patch: JsonObject, path: string): JsonObject | undefined {
  const directive = patch.$patch;
  if (directive === "delete") return undefined;
  if (directive === "replace") {
    const replaced: JsonObject = {};
    for (const [k, v] of Object.entries(patch)) if (!k.startsWith("$")) replaced[k] = cloneJson(v);
    return replaced;
  }
  if (directive !== undefined && directive !== "merge")
    throw badRequest(`strategic merge patch: unknown $patch directive ${JSON.stringify(directive)}`);

  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys" || k.startsWith("$setElementOrder/")) continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const field = k.slice("$deleteFromPrimitiveList/".length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v))
        out[field] = cur.filter((e) => !v.some((d) => jsonEqual(d, e)));
      continue;
    }
    const p = childPath(path, k);
    if (v === null) {
      removeKey(out, k);
    } else if (isJsonObject(v)) {
      const merged = strategicMap(isJsonObject(out[k]) ? out[k] : {}, v, p);
      if (merged === undefined) removeKey(out, k);
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      out[k] = strategicList(out[k], v, p);
    } else {
      out[k] = v;
    }
  }
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith("$setElementOrder/") || !Array.isArray(order)) continue;
    const field = k.slice("$setElementOrder/".length);
    const list = out[field];
    if (Array.isArray(list)) out[field] = ordered(list, order, MERGE_KEYS[childPath(path, field)]);
  }
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) removeKey(out, k);
  }
  return out;
}

/**
 * `$setElementOrder`: the listed elements (by merge key, or by value for primitive lists) in the
 * listed order, then the elements the client did not list (server-side additions) as they were.
 */
function ordered(list: JsonValue[], order: JsonValue[], key: string | undefined): JsonValue[] {
  const idOf = (e: JsonValue): JsonValue | undefined =>
    key === undefined ? e : isJsonObject(e) ? e[key] : undefined;
  const rest = [...list];
  const out: JsonValue[] = [];
  for (const o of order) {
    const id = idOf(o);
    const at = rest.findIndex((e) => jsonEqual(idOf(e), id));
    if (at >= 0) out.push(...rest.splice(at, 1));
  }
  return [...out, ...rest];
}

function strategicList(target: JsonValue | undefined, patch: JsonValue[], path: string): JsonValue[] {
  const current = Array.isArray(target) ? target : [];
  if (patch.some((e) => isJsonObject(e) && e.$patch === "replace")) {
    return patch.filter((e) => !(isJsonObject(e) && e.$patch === "replace")).map((e) => cloneJson(e));
  }
  if (MERGED_PRIMITIVE_LISTS.has(path)) {
    const out = [...current];
    for (const e of patch) if (!out.some((c) => jsonEqual(c, e))) out.push(e);
    return out;
  }
  const key = MERGE_KEYS[path];
  if (key === undefined)
    return patch.map((e) => (isJsonObject(e) ? stripDirectives(e, `${path}[]`) : cloneJson(e)));
  const out: JsonValue[] = [...current];
  for (const e of patch) {
    if (!isJsonObject(e)) throw badRequest(`strategic merge patch: ${path} elements must be objects`);
    const id = e[key];
    const at = out.findIndex((c) => isJsonObject(c) && jsonEqual(c[key], id));
    if (e.$patch === "delete") {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) {
      const merged = strategicMap(out[at] as JsonObject, e, `${path}[]`);
      if (merged === undefined) out.splice(at, 1);
      else out[at] = merged;
    } else {
      out.push(stripDirectives(e, `${path}[]`));
    }
  }
  return out;
}

function stripDirectives(obj: JsonObject, path: string): JsonObject {
  return strategicMap({}, obj, path) ?? {};
}
