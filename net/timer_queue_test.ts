import assert from "node:assert/strict";
import { VirtualClock } from "./clock.ts";
import { Random } from "./random.ts";
import { TimerQueue } from "./timer_queue.ts";

Deno.test("timer queue: each timer fires when it is due, as on the clock itself; a cancelled one never", async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = new Random(seed);
    const clock = new VirtualClock();
    const queue = new TimerQueue(clock);
    /** Per timer: when it was due, and when it fired on the queue and on the clock. */
    const due: number[] = [];
    const viaQueue = new Map<number, number>();
    const viaClock = new Map<number, number>();
    const cancels: (() => void)[] = [];
    const set = (id: number, ms: number) => {
      due[id] = clock.now() + Math.max(0, ms);
      const a = queue.setTimer(ms, () => viaQueue.set(id, clock.now()));
      const b = clock.setTimer(ms, () => viaClock.set(id, clock.now()));
      cancels[id] = () => (a.cancel(), b.cancel());
    };
    let next = 0;
    for (let step = 0; step < 400; step++) {
      const roll = random.int(10);
      if (roll < 5) {
        // Mostly one length (a request's deadline), sometimes shorter, longer, zero, negative.
        const ms = [1000, 1000, 1000, 300, 2500, 0, -5][random.int(7)];
        set(next++, ms);
      } else if (roll < 8 && next > 0) {
        cancels[random.int(next)]();
      } else {
        await clock.advance(random.int(400));
      }
    }
    await clock.advance(5000);
    assert.deepEqual(
      [...viaQueue].sort((a, b) => a[0] - b[0]),
      [...viaClock].sort((a, b) => a[0] - b[0]),
    );
    for (const [id, at] of viaQueue) assert.equal(at, due[id], `timer ${id}`);
    for (const [id, at] of viaQueue) assert.ok(at >= due[id], `timer ${id} fired early`);
    assert.equal(queue.pending, 0);
    assert.equal(clock.pendingTimers, 0, "nothing waiting: no timer of the clock either");
  }
});

Deno.test("timer queue: timers due together fire in the order set; one that throws does not stop the rest", async () => {
  const clock = new VirtualClock();
  const queue = new TimerQueue(clock);
  const fired: string[] = [];
  queue.setTimer(10, () => fired.push("a"));
  queue.setTimer(10, () => fired.push("b"));
  queue.setTimer(10, () => {
    fired.push("c");
    throw new Error("boom");
  });
  queue.setTimer(10, () => fired.push("d"));
  queue.setTimer(5, () => fired.push("first"));
  // Cancelled by a timer that fires just before it, in the same turn: it does not run.
  const victim: { timer?: { cancel(): void } } = {};
  queue.setTimer(10, () => victim.timer!.cancel());
  victim.timer = queue.setTimer(10, () => fired.push("never"));
  queue.setTimer(10, () => fired.push("e"));
  await assert.rejects(() => clock.advance(20), /boom/);
  assert.deepEqual(fired, ["first", "a", "b", "c", "d", "e"]);
  assert.equal(queue.pending, 0);
});

Deno.test("timer queue: thousands of timers set and cancelled in turn keep one timer of the clock", async () => {
  const clock = new VirtualClock();
  const queue = new TimerQueue(clock);
  let fired = 0;
  const open: { cancel(): void }[] = [];
  for (let i = 0; i < 5000; i++) {
    open.push(queue.setTimer(1000, () => fired++));
    // Requests answered in a millisecond, a few always in flight.
    if (open.length > 4) open.shift()!.cancel();
    if (i % 5 === 0) await clock.advance(1);
    assert.ok(clock.pendingTimers <= 2, `${clock.pendingTimers} timers of the clock`);
  }
  assert.equal(queue.pending, 4);
  // Past their time (a timer re-armed at an early wake fires after others set for the same time).
  await clock.advance(1001);
  assert.equal(fired, 4);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("timer queue: once every timer is cancelled, no timer of the clock is left", () => {
  const clock = new VirtualClock();
  const queue = new TimerQueue(clock);
  const a = queue.setTimer(1000, () => {});
  const b = queue.setTimer(500, () => {});
  assert.equal(clock.pendingTimers, 1);
  b.cancel();
  assert.equal(clock.pendingTimers, 1, "a still waits");
  a.cancel();
  a.cancel();
  assert.equal(queue.pending, 0);
  assert.equal(clock.pendingTimers, 0, "a test's op sanitizer sees nothing left");
});
