/**
 * Small async helpers that take their time from a {@linkcode Clock}: delay,
 * deadline and retry.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { defaultClock } from "./env.ts";
import type { Random } from "./random.ts";

/**
 * Options for {@linkcode delay}.
 *
 * @example
 * ```ts
 * import type { DelayOptions } from "@distkit/distkit/net";
 *
 * const options: DelayOptions = { signal: AbortSignal.timeout(1000) };
 * ```
 */
export interface DelayOptions {
  /** The clock to wait on. Default: the real clock (none inside `simulate`: pass one). */
  clock?: Clock;
  /** Stops the wait early, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds of the clock's time.
 *
 * @example
 * ```ts
 * import { delay } from "@distkit/distkit/net";
 *
 * await delay(10);
 * ```
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal } = options;
  const clock = options.clock ?? defaultClock("delay");
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(signal!.reason);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Thrown by {@linkcode deadline} when time runs out and no `onTimeout` is given.
 *
 * @example
 * ```ts
 * import { DeadlineExceededError } from "@distkit/distkit/net";
 *
 * new DeadlineExceededError(500).message; // "deadline of 500 ms exceeded"
 * ```
 */
export class DeadlineExceededError extends Error {
  /**
   * Creates the error.
   *
   * @param timeoutMs The deadline that passed.
   */
  constructor(timeoutMs: number) {
    super(`deadline of ${timeoutMs} ms exceeded`);
    this.name = "DeadlineExceededError";
  }
}

/**
 * Options for {@linkcode deadline}.
 *
 * @example
 * ```ts
 * import type { DeadlineOptions } from "@distkit/distkit/net";
 *
 * const options: DeadlineOptions = { timeoutMs: 250 };
 * ```
 */
export interface DeadlineOptions {
  /** Milliseconds to wait; undefined or `Infinity` waits for ever (or until `signal`). */
  timeoutMs?: number;
  /** Rejects early with the signal's reason, or with `onAbort()`. */
  signal?: AbortSignal;
  /** The clock to time on. Default: the real clock (none inside `simulate`: pass one). */
  clock?: Clock;
  /** The error to reject with on timeout. Default: {@linkcode DeadlineExceededError}. */
  onTimeout?: () => Error;
  /** The error to reject with on abort. Default: the signal's reason. */
  onAbort?: (reason: unknown) => Error;
}

/**
 * Settles like `promise`, unless the timeout passes or the signal fires first.
 * The timer is always cleared, so no timer outlives the call.
 *
 * @example
 * ```ts
 * import { deadline, delay } from "@distkit/distkit/net";
 *
 * await deadline(delay(5), { timeoutMs: 1000 }); // resolves
 * await deadline(new Promise(() => {}), { timeoutMs: 5 }).catch((e) => e.name); // "DeadlineExceededError"
 * ```
 */
export function deadline<T>(promise: Promise<T>, options: DeadlineOptions): Promise<T> {
  const { signal } = options;
  // Infinity means no deadline, so no timer at all (and no clock needed).
  const timeoutMs = options.timeoutMs === Infinity ? undefined : options.timeoutMs;
  if (timeoutMs === undefined && signal === undefined) return promise;
  const clock = timeoutMs === undefined ? undefined : options.clock ?? defaultClock("deadline");
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = () => {
      done = true;
      timer?.cancel();
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      if (done) return;
      finish();
      reject(options.onAbort ? options.onAbort(signal!.reason) : signal!.reason);
    };
    const timer = clock?.setTimer(timeoutMs!, () => {
      if (done) return;
      finish();
      reject(options.onTimeout ? options.onTimeout() : new DeadlineExceededError(timeoutMs!));
    });
    // Observe `promise` even when the signal has already fired, so its later
    // rejection is never an unhandled one.
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        if (done) return;
        finish();
        resolve(value);
      },
      (err) => {
        if (done) return;
        finish();
        reject(err);
      },
    );
  });
}

/**
 * Options for {@linkcode retry}.
 *
 * @example
 * ```ts
 * import type { RetryOptions } from "@distkit/distkit/net";
 *
 * const options: RetryOptions = { attempts: 5, baseMs: 20, maxMs: 500 };
 * ```
 */
export interface RetryOptions {
  /** Total attempts including the first. Default 5. */
  attempts?: number;
  /** Wait before the second attempt; doubles each time. Default 50 ms. */
  baseMs?: number;
  /** Longest wait between attempts. Default 2,000 ms. */
  maxMs?: number;
  /** Jitter source: each wait is drawn from [wait/2, wait]. Default: no jitter. */
  random?: Random;
  /** The clock to wait on. Default: the real clock (none inside `simulate`: pass one). */
  clock?: Clock;
  /** Stops retrying, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /** Whether an error is worth another attempt. Default: every error. */
  retryIf?: (err: unknown) => boolean;
}

/**
 * Calls `fn` until it resolves, waiting with exponential backoff between
 * attempts; rejects with the last error once attempts run out.
 *
 * @example
 * ```ts
 * import { retry } from "@distkit/distkit/net";
 *
 * let calls = 0;
 * const value = await retry(() => ++calls < 3 ? Promise.reject(new Error("flaky")) : Promise.resolve(calls), { baseMs: 1 });
 * value; // 3
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { attempts = 5, baseMs = 50, maxMs = 2000, random, clock, signal } = options;
  if (!(attempts >= 1)) throw new RangeError(`attempts must be at least 1, got ${attempts}`);
  let wait = baseMs;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || (options.retryIf && !options.retryIf(err))) throw err;
    }
    const jittered = random ? wait / 2 + random.next() * (wait / 2) : wait;
    await delay(jittered, { clock, signal });
    wait = Math.min(maxMs, wait * 2);
  }
}
