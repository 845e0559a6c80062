/** Where the lab finds the programs it starts: this build's dist/. */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** dist/ of this build (this module is dist/lab/dist.js). */
export const DIST = resolve(dirname(fileURLToPath(import.meta.url)), "..");
