import assert from "node:assert/strict";
import { deadline, DeadlineExceededError, delay, Random, retry, VirtualClock } from "./mod.ts";

Deno.test("deadline: resolves, times out, or aborts, and clears its timer", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    assert.equal(await deadline(delay(10, { clock }).then(() => 1), { clock, timeoutMs: 20 }), 1);
    await assert.rejects(
      deadline(delay(50, { clock }), { clock, timeoutMs: 20 }),
      DeadlineExceededError,
    );
    assert.equal(clock.now(), 30);
    const controller = new AbortController();
    const pending = deadline(delay(50, { clock }), {
      clock,
      signal: controller.signal,
      onAbort: () => new Error("aborted here"),
    });
    controller.abort();
    await assert.rejects(pending, /aborted here/);
    await assert.rejects(
      deadline(Promise.reject(new Error("inner")), { clock, timeoutMs: 5 }),
      /inner/,
    );
    await assert.rejects(
      deadline(delay(50, { clock }), { clock, timeoutMs: 1, onTimeout: () => new RangeError("t") }),
      RangeError,
    );
  });
});

Deno.test("retry: backs off exponentially, stops at attempts, honours retryIf", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const times: number[] = [];
    await assert.rejects(
      retry(() => {
        times.push(clock.now());
        return Promise.reject(new Error("nope"));
      }, { clock, attempts: 4, baseMs: 10, maxMs: 25 }),
      /nope/,
    );
    assert.deepEqual(times, [0, 10, 30, 55]);
    let calls = 0;
    await assert.rejects(
      retry(() => {
        calls++;
        return Promise.reject(new TypeError("fatal"));
      }, { clock, retryIf: (e) => !(e instanceof TypeError) }),
      TypeError,
    );
    assert.equal(calls, 1);
    const jittered = await retry((n) => n < 3 ? Promise.reject(new Error()) : Promise.resolve(n), {
      clock,
      random: new Random(1),
    });
    assert.equal(jittered, 3);
  });
});

Deno.test("deadline: a signal that already fired still observes the promise", async () => {
  // Without a handler on `work`, its later rejection would be unhandled and
  // crash the process.
  const clock = new VirtualClock();
  await clock.run(async () => {
    const work = delay(10, { clock }).then(() => Promise.reject(new Error("late failure")));
    await assert.rejects(
      deadline(work, { clock, signal: AbortSignal.abort(new Error("gave up")) }),
      /gave up/,
    );
    await delay(20, { clock });
  });
});

Deno.test("deadline: timeoutMs Infinity waits for ever, until the signal fires", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const controller = new AbortController();
    clock.setTimer(60_000, () => controller.abort(new Error("stopped")));
    await assert.rejects(
      deadline(new Promise(() => {}), { clock, timeoutMs: Infinity, signal: controller.signal }),
      /stopped/,
    );
    assert.equal(clock.now(), 60_000);
    assert.equal(await deadline(delay(5, { clock }).then(() => 1), { timeoutMs: Infinity }), 1);
  });
});
