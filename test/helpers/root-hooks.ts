/**
 * Suite-wide check: no owner of a kernel resource may be garbage-collected without close().
 * Mocha runs with --expose-gc (.mocharc.json), so the check forces collections at the end.
 */
import { takeLeakedResources } from "../../loader/index.js";

async function collectedLeaks(): Promise<string[]> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return [];
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return takeLeakedResources();
}

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    const leaks = await collectedLeaks();
    if (leaks.length > 0)
      throw new Error(`kernel resources garbage-collected without close(): ${leaks.join(", ")}`);
  },
};
