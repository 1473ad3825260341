import assert from "node:assert/strict";
import {
  delay,
  realClock,
  SimulationLimitError,
  SimulationStalledError,
  VirtualClock,
} from "./mod.ts";

Deno.test("virtual clock: timers fire in time order, ties in the order set", async () => {
  const clock = new VirtualClock();
  const fired: string[] = [];
  await clock.run(async () => {
    clock.setTimer(30, () => fired.push("c"));
    clock.setTimer(10, () => fired.push("a1"));
    clock.setTimer(10, () => fired.push("a2"));
    clock.setTimer(20, () => fired.push("b"));
    const cancelled = clock.setTimer(15, () => fired.push("never"));
    cancelled.cancel();
    await delay(100, { clock });
  });
  assert.deepEqual(fired, ["a1", "a2", "b", "c"]);
  assert.equal(clock.now(), 100);
});

Deno.test("virtual clock: promise chains settle between timers", async () => {
  const clock = new VirtualClock();
  const seen: number[] = [];
  await clock.run(async () => {
    const worker = async (id: number) => {
      for (let i = 0; i < 3; i++) {
        await delay(10, { clock });
        // Deep microtask chains must finish before the next timer fires.
        for (let j = 0; j < 1000; j++) await null;
        seen.push(id * 100 + clock.now());
      }
    };
    await Promise.all([worker(1), worker(2)]);
  });
  assert.deepEqual(seen, [110, 210, 120, 220, 130, 230]);
});

Deno.test("virtual clock: an hour of timers runs in well under a second", async () => {
  const clock = new VirtualClock();
  const t0 = performance.now();
  let ticks = 0;
  await clock.run(async () => {
    while (clock.now() < 3_600_000) {
      await delay(100, { clock });
      ticks++;
    }
  });
  assert.equal(ticks, 36_000);
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
});

Deno.test("virtual clock: a stalled task and a passed limit are reported", async () => {
  const clock = new VirtualClock();
  await assert.rejects(clock.run(() => new Promise(() => {})), SimulationStalledError);
  await assert.rejects(
    clock.run(async () => {
      while (true) await delay(1000, { clock });
    }, { limitMs: 10_000 }),
    SimulationLimitError,
  );
  assert.ok(clock.now() <= 10_000);
  await assert.rejects(clock.run(() => Promise.reject(new Error("inner"))), /inner/);
});

Deno.test("virtual clock: advance fires due timers only", async () => {
  const clock = new VirtualClock();
  const fired: number[] = [];
  clock.setTimer(50, () => fired.push(50));
  clock.setTimer(150, () => fired.push(150));
  await clock.advance(100);
  assert.deepEqual(fired, [50]);
  assert.equal(clock.now(), 100);
  assert.equal(clock.pendingTimers, 1);
  await clock.advance(100);
  assert.deepEqual(fired, [50, 150]);
});

Deno.test("real clock: delay waits and can be aborted", async () => {
  const t0 = realClock.now();
  await delay(20);
  assert.ok(realClock.now() - t0 >= 19);
  const controller = new AbortController();
  const waiting = delay(10_000, { signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
});

Deno.test("virtual clock: cancelled timers are discarded, and the order is kept", async () => {
  const clock = new VirtualClock();
  const fired: number[] = [];
  // Deadlines that are set and cancelled, as every call with a timeout does.
  for (let i = 0; i < 100_000; i++) {
    clock.setTimer(3_600_000 + i, () => fired.push(-1)).cancel();
    if (i % 1000 === 0) clock.setTimer(3_600_000 - i, () => fired.push(i));
  }
  assert.equal(clock.pendingTimers, 100);
  assert.ok(clock.queuedTimers <= 2048, `${clock.queuedTimers} timers held for 100 live ones`);
  await clock.advance(3_700_000);
  const expected = Array.from({ length: 100 }, (_, k) => (99 - k) * 1000);
  assert.deepEqual(fired, expected, "live timers fire in time order, cancelled ones never");
  assert.equal(clock.pendingTimers, 0);
  assert.equal(clock.queuedTimers, 0);
});

Deno.test("virtual clock: cancelling a fired timer changes nothing", async () => {
  const clock = new VirtualClock();
  const timer = clock.setTimer(10, () => {});
  await clock.advance(20);
  timer.cancel();
  timer.cancel();
  clock.setTimer(10, () => {});
  assert.equal(clock.pendingTimers, 1);
});

Deno.test("clocks: an Infinity timer never fires, a huge one does not fire early", async () => {
  const clock = new VirtualClock();
  let fired = 0;
  clock.setTimer(Infinity, () => fired++);
  await clock.run(() => delay(10 * 365 * 86_400_000, { clock }));
  assert.equal(fired, 0);
  assert.equal(clock.pendingTimers, 0, "an Infinity timer is not even queued");
  // setTimeout takes at most 2^31-1 ms; a longer delay used to fire at once.
  const huge = realClock.setTimer(2 ** 31 + 5, () => fired++);
  const never = realClock.setTimer(Infinity, () => fired++);
  await delay(30);
  huge.cancel();
  never.cancel();
  assert.equal(fired, 0);
});

Deno.test("virtual clock: a task that throws before returning fails the run, not the clock", async () => {
  const clock = new VirtualClock();
  await assert.rejects(
    clock.run(() => {
      throw new Error("sync failure");
    }),
    /sync failure/,
  );
  assert.equal(await clock.run(() => Promise.resolve(7)), 7, "the clock can run again");
});
