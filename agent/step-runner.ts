/**
 * Steps of a reconcile pass, each applied only when what it depends on changed. A step names its
 * inputs as a key string; the runner remembers the key of each step's last successful apply and
 * skips the step while the key stays the same. A full resync forgets the keys, so every step is
 * applied again against whatever drifted in the kernel.
 */

export interface Step<P> {
  readonly name: string;
  /**
   * What the step's result depends on. null: the step has nothing to do in this pass (its last
   * key is kept). Absent: the step runs in every pass.
   */
  key?(pass: P): string | null;
  /**
   * Brings the node to what `key` describes. Throwing fails the pass (the runner stops there);
   * returning false leaves the step unapplied without failing the pass: it runs again next pass.
   */
  apply(pass: P): Promise<boolean | undefined> | boolean | undefined;
  /** The result cannot drift: a full resync keeps this step's key. */
  readonly keepOnResync?: boolean;
  /** Applied only when every step before it is applied (up to date or done in this pass). */
  readonly afterAll?: boolean;
}

/** A step threw; `cause` is what it threw. */
export class StepError extends Error {
  override readonly name: string = "StepError";
  readonly step: string;

  constructor(step: string, cause: unknown) {
    super(`${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.step = step;
  }
}

export class StepRunner<P, S extends Step<P> = Step<P>> {
  readonly steps: readonly S[];
  readonly #applied = new Map<string, string>();
  readonly #onApplied: (step: S, durationMs: number) => void;

  /** `onApplied` hears of every apply that returned (applied or not), with its duration. */
  constructor(steps: readonly S[], onApplied: (step: S, durationMs: number) => void = () => undefined) {
    const names = new Set(steps.map((s) => s.name));
    if (names.size !== steps.length) throw new Error("step names must be unique");
    this.steps = steps;
    this.#onApplied = onApplied;
  }

  /** Forgets the applied keys (but those of keepOnResync steps): the next run applies again. */
  resync(): void {
    for (const s of this.steps) if (s.keepOnResync !== true) this.#applied.delete(s.name);
  }

  /** The key `step` was last applied with, if any. */
  applied(name: string): string | undefined {
    return this.#applied.get(name);
  }

  /**
   * Runs the steps in order (those `only` accepts, when given), each when its key changed. Throws
   * StepError for the first step that throws; the steps before it stay applied, it and those
   * after run again next time. Returns true when every step run is applied: none returned false
   * or was held back by one that did. Two runs must not share a step.
   */
  async run(pass: P, only?: (step: S) => boolean): Promise<boolean> {
    let all = true;
    for (const step of this.steps) {
      // Left to another run (the full resync's node plumbing, in its own lane): neither applied
      // nor holding back the steps after it.
      if (only !== undefined && !only(step)) continue;
      if (step.afterAll === true && !all) continue;
      const started = performance.now();
      let key: string | null | undefined;
      let done: boolean | undefined;
      try {
        // Keyed on what earlier steps of this pass produced, so asked only now.
        key = step.key === undefined ? undefined : step.key(pass);
        if (key === null || (key !== undefined && this.#applied.get(step.name) === key)) continue;
        done = await step.apply(pass);
      } catch (err) {
        throw new StepError(step.name, err);
      }
      this.#onApplied(step, performance.now() - started);
      if (done === false) all = false;
      else if (key !== undefined) this.#applied.set(step.name, key);
    }
    return all;
  }
}
