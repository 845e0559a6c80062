/**
 * Ownership of kernel resources. Every fd, bpf_object*, ring buffer and attachment has exactly one
 * owner: a subclass of `Owned` whose `close()` is idempotent and that is also `Disposable`.
 * Garbage collection is not cleanup: an owner collected without `close()` is recorded as a leak,
 * which the test suite turns into a failure.
 */

const leaks: string[] = [];
const registry = new FinalizationRegistry<string>((description) => {
  leaks.push(description);
});

/** Descriptions of owners that were garbage-collected without being closed. Clears the list. */
export function takeLeakedResources(): string[] {
  return leaks.splice(0, leaks.length);
}

export abstract class Owned implements Disposable {
  #closed = false;
  readonly #token = {};

  /** @param description names the resource in leak reports (`map skn_endpoints fd 12`). */
  protected constructor(description: string) {
    registry.register(this, description, this.#token);
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Releases the resource. Safe to call more than once; never throws for an already-closed one. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    registry.unregister(this.#token);
    this.release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Releases the underlying resource exactly once. */
  protected abstract release(): void;

  protected assertOpen(what: string): void {
    if (this.#closed) throw new Error(`${what}: already closed`);
  }
}

/**
 * A last-in-first-out list of cleanups for multi-step builds: push each resource as it is made;
 * on failure `dispose()` releases them in reverse; on success `release()` hands them out and the
 * stack forgets them.
 */
export class DisposalStack implements Disposable {
  readonly #items: (() => void)[] = [];

  /** Registers a resource (anything with `close()`) and returns it. */
  use<T extends { close(): void }>(resource: T): T {
    this.#items.push(() => {
      resource.close();
    });
    return resource;
  }

  /** Registers a cleanup function. */
  defer(fn: () => void): void {
    this.#items.push(fn);
  }

  /** Forgets everything registered: ownership has moved to the caller. */
  release(): void {
    this.#items.length = 0;
  }

  /** Runs every cleanup in reverse order; collects their errors into one AggregateError. */
  dispose(): void {
    const errors: unknown[] = [];
    while (this.#items.length > 0) {
      const fn = this.#items.pop();
      try {
        fn?.();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "cleanup failed");
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
