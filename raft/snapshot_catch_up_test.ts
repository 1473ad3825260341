import assert from "node:assert/strict";
import { CatchUps } from "./snapshot_catch_up.ts";

/** A leader's log from `snapshotIndex` to `lastIndex`, with the followers' matches. */
function log(snapshotIndex: number, lastIndex: number, matches: Record<string, number> = {}) {
  return { snapshotIndex, lastIndex, match: (peer: string) => matches[peer] };
}

Deno.test("catch-ups: a stream holds its index, then the follower's match until it has what was written meanwhile", () => {
  const catchUps = new CatchUps();
  assert.equal(catchUps.floor(log(0, 50)), undefined);
  catchUps.opened("c", 40);
  catchUps.opened("d", 45);
  // Streaming: the stream's index, whatever the match says.
  assert.equal(catchUps.floor(log(30, 60, { c: 0, d: 0 })), 40);
  // c installed at 40 while the log grew to 90: it needs 41..90 next.
  catchUps.installed("c", 90);
  assert.equal(catchUps.floor(log(30, 95, { c: 40, d: 0 })), 40);
  assert.equal(catchUps.floor(log(30, 95, { c: 44, d: 0 })), 44); // d's stream at 45 is above
  assert.equal(catchUps.floor(log(30, 95, { c: 70, d: 0 })), 45);
  // c has 90: caught up, nothing held for it any more (not even if it falls back later).
  assert.equal(catchUps.floor(log(30, 95, { c: 90, d: 0 })), 45);
  assert.equal(catchUps.floor(log(30, 95, { c: 50, d: 0 })), 45);
  catchUps.failed("d");
  assert.equal(catchUps.floor(log(30, 95)), undefined);
});

Deno.test("catch-ups: nothing is held for a follower the log no longer serves, nor once this node does not lead", () => {
  const catchUps = new CatchUps();
  catchUps.opened("c", 40);
  // A compaction passed the stream (the log's bound): not held, and its stream fails.
  assert.equal(catchUps.floor(log(50, 99)), undefined);
  catchUps.failed("c");
  catchUps.opened("c", 60);
  catchUps.installed("c", 80);
  assert.equal(catchUps.floor(log(60, 99, { c: 60 })), 60);
  // Compacted past its match: it needs a new stream, and is dropped.
  assert.equal(catchUps.floor(log(70, 99, { c: 65 })), undefined);
  assert.equal(catchUps.floor(log(60, 99, { c: 65 })), undefined);
  catchUps.opened("c", 70);
  catchUps.installed("c", 90);
  // No match known: this node no longer leads (or c was removed).
  assert.equal(catchUps.floor(log(60, 99)), undefined);
  assert.equal(catchUps.floor(log(60, 99, { c: 70 })), undefined);
});

Deno.test("catch-ups: a follower removed while it is streamed is held no longer (review32s)", () => {
  const catchUps = new CatchUps();
  catchUps.opened("c", 40);
  assert.equal(catchUps.floor(log(30, 60, { c: 0 })), 40);
  // c left the membership: the leader knows no match for it, and holds nothing for its stream.
  assert.equal(catchUps.floor(log(30, 60)), undefined);
  // Nor when it comes back with the same name: a new stream opens for it.
  assert.equal(catchUps.floor(log(30, 60, { c: 0 })), undefined);
});
