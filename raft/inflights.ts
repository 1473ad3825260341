/**
 * The window of append messages in flight to one follower, as a ring buffer
 * of fixed capacity (etcd's `tracker/inflights.go`): the leader stops
 * sending when the window holds `capacity` messages or `maxBytes` bytes,
 * and frees slots as the follower acknowledges.
 *
 * @module
 */
import { invariant } from "./invariant.ts";

/**
 * In-flight appends to one follower, oldest first: the last index each one
 * carries and its estimated size. Indexes only grow from one `add` to the
 * next (until `reset`), so acknowledging an index frees a prefix.
 *
 * @example
 * ```ts
 * import { Inflights } from "./inflights.ts";
 *
 * const window = new Inflights({ capacity: 2, maxBytes: 1024 });
 * window.add(10, 100);
 * window.add(20, 100);
 * window.full(); // true: two messages in flight
 * window.freeLE(10);
 * window.count; // 1
 * ```
 */
export class Inflights {
  readonly #capacity: number;
  readonly #maxBytes: number;
  /** Ring buffer slots: the last index of an append, and its size in bytes. */
  readonly #indexes: number[];
  readonly #sizes: number[];
  #start = 0;
  #count = 0;
  #bytes = 0;

  /**
   * Creates an empty window.
   *
   * @param options `capacity`: most messages in flight (at least 1);
   * `maxBytes`: most bytes in flight (at least 1; one message is always allowed).
   */
  constructor(options: { capacity: number; maxBytes: number }) {
    invariant(
      Number.isSafeInteger(options.capacity) && options.capacity >= 1,
      `inflight capacity must be a positive integer, got ${options.capacity}`,
    );
    invariant(
      options.maxBytes >= 1,
      `inflight maxBytes must be at least 1, got ${options.maxBytes}`,
    );
    this.#capacity = options.capacity;
    this.#maxBytes = options.maxBytes;
    this.#indexes = new Array(options.capacity).fill(0);
    this.#sizes = new Array(options.capacity).fill(0);
  }

  /** Messages in flight. */
  get count(): number {
    return this.#count;
  }

  /** Estimated bytes in flight. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether no more may be sent: the window holds `capacity` messages or `maxBytes` bytes. */
  full(): boolean {
    return this.#count >= this.#capacity || this.#bytes >= this.#maxBytes;
  }

  /** Records an append ending at `index` of `bytes` bytes. The window must not be full. */
  add(index: number, bytes: number): void {
    invariant(
      !this.full(),
      `inflight window is full (${this.#count} in flight, ${this.#bytes} bytes)`,
    );
    if (this.#count > 0) {
      const last = this.#indexes[(this.#start + this.#count - 1) % this.#capacity];
      invariant(index > last, `inflight index ${index} does not follow ${last}`);
    }
    const slot = (this.#start + this.#count) % this.#capacity;
    this.#indexes[slot] = index;
    this.#sizes[slot] = bytes;
    this.#count++;
    this.#bytes += bytes;
  }

  /** Frees every append ending at or below `index` (the follower has them). */
  freeLE(index: number): void {
    while (this.#count > 0 && this.#indexes[this.#start] <= index) this.#freeFirst();
  }

  /** Frees the oldest append, if any (its answer may have been lost). */
  freeFirstOne(): void {
    if (this.#count > 0) this.#freeFirst();
  }

  /** Empties the window. */
  reset(): void {
    this.#start = 0;
    this.#count = 0;
    this.#bytes = 0;
  }

  #freeFirst(): void {
    this.#bytes -= this.#sizes[this.#start];
    this.#start = (this.#start + 1) % this.#capacity;
    this.#count--;
    if (this.#count === 0) this.reset();
  }
}
