/**
 * Seeding: Kubernetes objects from YAML/JSON files or directories (read by policy/object-files.ts),
 * created in dependency order (namespaces first) so a seed directory's file order does not matter.
 */
import {
  parseObjectText as parseSeedText,
  readObjectFiles as readSeed,
  type ObjectFromFile as SeedObject,
} from "../../policy/object-files.js";
import { ApiError } from "./errors.js";
import { stringAt } from "./json.js";
import type { LabStore } from "./store.js";

export { parseSeedText, readSeed, type SeedObject };

const KIND_ORDER = ["Namespace", "Node", "NetworkPolicy", "Pod", "Service", "EndpointSlice"];

/**
 * Creates (or replaces, via {@link LabStore.upsert}) the seed objects, namespaces first, then
 * nodes, policies, pods, services and endpoint slices; within a kind the input order is kept. Status in the seed is kept.
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
