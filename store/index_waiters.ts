/**
 * Who waits for an index to be reached (a store's applied index).
 *
 * @module
 */

/**
 * Promises settled once an index reaches theirs, or all rejected on a failure.
 *
 * @example
 * ```ts
 * import { IndexWaiters } from "./index_waiters.ts";
 *
 * const waiters = new IndexWaiters();
 * const reached = waiters.wait(5, 3, () => {});
 * waiters.reached(5);
 * await reached;
 * ```
 */
export class IndexWaiters {
  #waiting: { index: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  /** Resolves once `index` is reached (now, if `current` is at it); `check` throws if it never can be. */
  wait(index: number, current: number, check: () => void): Promise<void> {
    if (current >= index) return Promise.resolve();
    try {
      check();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => this.#waiting.push({ index, resolve, reject }));
  }

  /** The index is now `current`: resolves those it reached. */
  reached(current: number): void {
    if (this.#waiting.length === 0) return;
    const still = this.#waiting.filter((w) => w.index > current);
    for (const w of this.#waiting) if (w.index <= current) w.resolve();
    this.#waiting = still;
  }

  /** Rejects every waiter with `err`. */
  fail(err: Error): void {
    for (const w of this.#waiting.splice(0)) w.reject(err);
  }
}
