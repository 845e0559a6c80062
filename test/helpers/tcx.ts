/**
 * Tests of tcx need a kernel that has it (Linux 6.6+). On an older kernel they skip, saying why and
 * which test covers the cls_bpf path there; CI's kernel has tcx, so there they run. Tests that only
 * read which kind of hook Skein used expect hookKind() instead of skipping.
 */
import { tcxSupported, type HookKind } from "../../loader/index.js";

/** The kind of hook Skein's programs get on this kernel (asked once, on loopback). Needs root. */
export function hookKind(): HookKind {
  return tcxSupported() ? "tcx" : "tc";
}

/** The reason a tcx test gives when it skips. */
export function noTcxReason(coveredBy: string): string {
  return `skipped: kernel without tcx (Linux < 6.6); cls_bpf path covered by ${coveredBy}`;
}

/** What requireTcx needs of a mocha context: the running test or hook, and skip. */
export interface SkipContext {
  test?: { type?: string | undefined; title: string; parent?: TitledSuite | undefined } | undefined;
  skip(): never;
}

interface TitledSuite {
  tests: { title: string }[];
  suites: TitledSuite[];
}

function annotateAll(suite: TitledSuite, note: string): void {
  for (const t of suite.tests) t.title += ` (${note})`;
  for (const s of suite.suites) annotateAll(s, note);
}

/**
 * Call in a privileged test (after requireRoot) or in its suite's `before`, ahead of any setup:
 * without tcx, skips the test (or every test of the suite) and appends the reason to their titles,
 * which is how mocha's reporter shows it. `supported` is for the helper's own test.
 */
export function requireTcx(ctx: SkipContext, coveredBy: string, supported = tcxSupported()): void {
  if (supported) return;
  const note = noTcxReason(coveredBy);
  const runnable = ctx.test;
  if (runnable?.type === "test") runnable.title += ` (${note})`;
  else if (runnable?.parent !== undefined) annotateAll(runnable.parent, note);
  ctx.skip();
}
