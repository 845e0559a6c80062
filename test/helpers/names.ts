/** Unique names for namespaces, links and pins, so parallel runs and leftovers never collide. */
import { randomBytes } from "node:crypto";

/** `prefix` + 6 random hex characters; keep prefix ≤ 9 characters for interface names. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(3).toString("hex")}`;
}
