/**
 * Privileged tests need root. Outside CI they skip with a reason; in CI (CI=true) a privileged
 * test that cannot run is a failure, never a skip.
 */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function inCi(): boolean {
  return process.env.CI === "true" || process.env.CI === "1";
}

/** Call first in a privileged `describe`'s `before` (or a test): skips or fails when not root. */
export function requireRoot(ctx: Mocha.Context): void {
  if (isRoot()) return;
  if (inCi()) throw new Error("privileged test cannot run: CI must run the suite as root");
  ctx.skip();
}
