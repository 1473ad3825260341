import assert from "node:assert/strict";
import { VirtualClock } from "../net/clock.ts";
import { RaftInvariantError } from "../raft/invariant.ts";
import { RequestDeadline } from "./http_local.ts";

Deno.test("RequestDeadline: an attempt is cut after attemptMs of its own, the request at its deadline", async () => {
  const clock = new VirtualClock();
  const deadline = new RequestDeadline(clock, { timeoutMs: 5000, attemptMs: 1000 });
  assert.equal(clock.pendingTimers, 1);
  await clock.advance(300);
  const first = deadline.beginAttempt();
  // The timer set at the start fires at 1,000 ms: this attempt has run 700 ms, not yet cut.
  await clock.advance(999);
  assert.equal(first.aborted, false);
  assert.equal(clock.pendingTimers, 1, "one timer at a time");
  await clock.advance(1);
  assert.equal(first.aborted, true, "cut 1,000 ms after it began");
  assert.match(String(first.reason), /not committed within 1000 ms/);
  assert.equal(deadline.signal.aborted, false, "the request goes on");
  deadline.endAttempt();
  // With no attempt in progress, the timer still keeps the request's deadline.
  await clock.advance(3000);
  const last = deadline.beginAttempt();
  await clock.advance(699);
  assert.equal(deadline.signal.aborted, false);
  assert.equal(last.aborted, false);
  await clock.advance(1);
  assert.equal(clock.now(), 5000);
  assert.equal(deadline.signal.aborted, true);
  assert.equal(last.aborted, true, "the request's deadline ends its attempt too");
  assert.match(String(deadline.signal.reason), /no answer within 5000 ms/);
  deadline.endAttempt();
  assert.equal(clock.pendingTimers, 0);
  // An attempt begun after the deadline is over at once.
  assert.equal(deadline.beginAttempt().aborted, true);
  deadline.endAttempt();
  deadline.cancel();
});

Deno.test("RequestDeadline: a request answered in time sets one timer and leaves none", async () => {
  const clock = new VirtualClock();
  const deadline = new RequestDeadline(clock, { timeoutMs: 5000, attemptMs: 1000 });
  const attempt = deadline.beginAttempt();
  await clock.advance(10);
  deadline.endAttempt();
  deadline.cancel();
  assert.equal(attempt.aborted, false);
  assert.equal(clock.pendingTimers, 0);
  await clock.advance(10_000);
  assert.equal(clock.firedTimers, 2, "only advance's own two timers fired");
  assert.equal(deadline.signal.aborted, false, "a cancelled deadline never fires");
});

Deno.test("RequestDeadline: a deadline shorter than an attempt bounds the attempt", async () => {
  const clock = new VirtualClock();
  const deadline = new RequestDeadline(clock, { timeoutMs: 200, attemptMs: 1000 });
  const attempt = deadline.beginAttempt();
  await clock.advance(200);
  assert.equal(attempt.aborted, true);
  assert.equal(deadline.signal.aborted, true);
  deadline.endAttempt();
});

Deno.test("RequestDeadline: refuses times that are not > 0, and overlapping attempts", () => {
  const clock = new VirtualClock();
  assert.throws(() => new RequestDeadline(clock, { timeoutMs: 0, attemptMs: 10 }), RangeError);
  assert.throws(() => new RequestDeadline(clock, { timeoutMs: 10, attemptMs: NaN }), RangeError);
  const deadline = new RequestDeadline(clock, { timeoutMs: 10, attemptMs: 10 });
  deadline.beginAttempt();
  assert.throws(() => deadline.beginAttempt(), RaftInvariantError);
  deadline.cancel();
});
