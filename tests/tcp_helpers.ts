/** Helpers shared by the TCP test files. */
import assert from "node:assert/strict";
import { delay } from "../net/mod.ts";

/** Polls `condition` every 5 ms until it holds, failing after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await delay(5);
  }
}

/** Awaits `promise`, which must reject with a `type`; runs `check` on the error and returns it. */
export async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
  check?: (err: E) => void,
): Promise<E> {
  try {
    const value = await promise;
    assert.fail(`expected ${type.name}, but the call resolved with ${JSON.stringify(value)}`);
  } catch (err) {
    if (!(err instanceof type)) {
      throw new assert.AssertionError({
        message: `expected ${type.name}, got ${(err as Error)?.name}: ${(err as Error)?.message}`,
        actual: err,
        expected: type,
      });
    }
    check?.(err);
    return err;
  }
}
