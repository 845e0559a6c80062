/** A lab per test file: created in `before`, removed in `after` (also when tests fail). */
import { Lab, type LabNode } from "../../lab/lab.js";
import { requireRoot } from "./privileged.js";

export interface LabFixture {
  lab: Lab;
  nodes: LabNode[];
}

/**
 * Registers before/after hooks that build a lab with `nodes` ready nodes and tear it down.
 * Returns a holder filled in by `before`.
 */
export function useLab(nodes: number, options: { agentArgs?: string[]; racks?: number } = {}): LabFixture {
  // Filled in by `before`; `lab` stays undefined when creating it failed.
  const fixture = {} as LabFixture;
  before(async function () {
    requireRoot(this);
    this.timeout(120000);
    fixture.lab = await Lab.create(options.racks === undefined ? {} : { racks: options.racks });
    fixture.nodes = [];
    for (let i = 0; i < nodes; i++)
      fixture.nodes.push(
        await fixture.lab.addNode({
          waitReady: false,
          ...(options.agentArgs === undefined ? {} : { agentArgs: options.agentArgs }),
        }),
      );
    await Promise.all(fixture.nodes.map((n) => fixture.lab.waitAgentReady(n)));
  });
  after(async function () {
    this.timeout(120000);
    if ((fixture.lab as Lab | undefined) === undefined) return;
    const problems = await fixture.lab.teardown();
    if (problems.length > 0) throw new Error(`lab teardown: ${problems.join("; ")}`);
  });
  return fixture;
}

/** Polls `fn` until it returns true or `timeoutMs` passes. Returns the elapsed milliseconds. */
export async function eventually(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs = 5000,
  intervalMs = 25,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
