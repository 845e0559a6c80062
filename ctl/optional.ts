/** Opening something that may not be pinned (yet, or any more): absence is an answer, not an error. */
import { SysError } from "../loader/index.js";

/** `open()`, or undefined when it fails with ENOENT. Every other error is thrown. */
export function openOptional<T>(open: () => T): T | undefined {
  try {
    return open();
  } catch (err) {
    if (err instanceof SysError && err.code === "ENOENT") return undefined;
    throw err;
  }
}
