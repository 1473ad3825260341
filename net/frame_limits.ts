/**
 * What limits a framed connection's reading: the memory large frames in
 * progress share ({@linkcode ByteBudget}), and the errors a connection
 * closes with when a frame does not fit it or misses its deadline.
 *
 * @module
 */

/**
 * Frames at most this long are not taken from a {@linkcode ByteBudget}: a
 * peer buffers that much at most per connection, and the connection count
 * is capped elsewhere.
 *
 * @example
 * ```ts
 * import { FRAME_BUDGET_FROM_BYTES } from "@distkit/distkit/net";
 *
 * FRAME_BUDGET_FROM_BYTES; // 65536
 * ```
 */
export const FRAME_BUDGET_FROM_BYTES: number = 64 * 1024;

/**
 * A number of bytes shared by many readers: each takes what it is about to
 * buffer before buffering it, and gives it back when done.
 *
 * @example
 * ```ts
 * import { ByteBudget } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const budget = new ByteBudget(100);
 * assert.ok(budget.tryTake(60));
 * assert.ok(!budget.tryTake(60)); // only 40 left
 * assert.ok(!budget.tryTake(30, { leave: 20 })); // 30 would leave 10, not 20
 * assert.ok(budget.tryTake(30, { leave: 10 }));
 * budget.give(90);
 * assert.equal(budget.available, 100);
 * ```
 */
export class ByteBudget {
  /** The budget, in bytes. */
  readonly limit: number;
  #taken = 0;

  /**
   * Creates a budget of `limit` bytes.
   *
   * @param limit The bytes that may be taken at once.
   * @throws {RangeError} when `limit` is not a non-negative safe integer.
   */
  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`a byte budget must be a non-negative integer, got ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes not taken. */
  get available(): number {
    return this.limit - this.#taken;
  }

  /**
   * Takes `bytes` if that many are available, and `options.leave` more
   * besides (a part kept for other, smaller takers); returns whether it did.
   */
  tryTake(bytes: number, options: { leave?: number } = {}): boolean {
    if (bytes + (options.leave ?? 0) > this.limit - this.#taken) return false;
    this.#taken += bytes;
    return true;
  }

  /**
   * Gives back `bytes` taken before.
   *
   * @throws {RangeError} when more is given back than was taken (a bug in the caller).
   */
  give(bytes: number): void {
    if (bytes > this.#taken) {
      throw new RangeError(`gave back ${bytes} bytes to a budget holding only ${this.#taken}`);
    }
    this.#taken -= bytes;
  }
}

/**
 * A peer announced a frame while the memory shared by every connection
 * ({@linkcode ByteBudget}) was taken by other large frames in progress.
 *
 * @example
 * ```ts
 * import { FrameBudgetError } from "@distkit/distkit/net";
 *
 * new FrameBudgetError(1 << 20, 4096).size; // 1048576
 * ```
 */
export class FrameBudgetError extends Error {
  /** The length the peer announced. */
  readonly size: number;
  /** The bytes the budget had left. */
  readonly available: number;

  /**
   * Creates the error.
   *
   * @param size The length the peer announced.
   * @param available The bytes the budget had left.
   */
  constructor(size: number, available: number) {
    super(
      `a frame of ${size} bytes was announced while only ${available} bytes of the memory ` +
        `shared by all connections for large frames were free; the connection is closed, ` +
        `retry later or send smaller frames`,
    );
    this.name = "FrameBudgetError";
    this.size = size;
    this.available = available;
  }
}

/**
 * A frame the peer started did not arrive whole within the connection's
 * `frameTimeoutMs` (see {@linkcode FramedConnectionOptions}).
 *
 * @example
 * ```ts
 * import { FrameTimeoutError } from "@distkit/distkit/net";
 *
 * new FrameTimeoutError(30_000, 12).timeoutMs; // 30000
 * ```
 */
export class FrameTimeoutError extends Error {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  /** Bytes of the unfinished frame received by then. */
  readonly receivedBytes: number;

  /**
   * Creates the error.
   *
   * @param timeoutMs The deadline that passed, in milliseconds.
   * @param receivedBytes Bytes of the unfinished frame received by then.
   */
  constructor(timeoutMs: number, receivedBytes: number) {
    super(
      `a frame was not received whole within ${timeoutMs} ms of its first byte ` +
        `(${receivedBytes} bytes had arrived); the connection is closed, check the ` +
        `network or raise frameTimeoutMs`,
    );
    this.name = "FrameTimeoutError";
    this.timeoutMs = timeoutMs;
    this.receivedBytes = receivedBytes;
  }
}
