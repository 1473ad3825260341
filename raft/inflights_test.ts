import assert from "node:assert/strict";
import { Inflights } from "./inflights.ts";
import { RaftInvariantError } from "./invariant.ts";

Deno.test("inflights: full at capacity, freed in order up to an acknowledged index", () => {
  const w = new Inflights({ capacity: 3, maxBytes: 1_000 });
  w.add(5, 10);
  w.add(9, 20);
  assert.equal(w.full(), false);
  w.add(12, 30);
  assert.equal(w.full(), true);
  assert.deepEqual([w.count, w.bytes], [3, 60]);
  w.freeLE(8); // frees 5 only: 9 is not acknowledged
  assert.deepEqual([w.count, w.bytes], [2, 50]);
  w.freeLE(12);
  assert.deepEqual([w.count, w.bytes], [0, 0]);
});

Deno.test("inflights: the ring wraps around its fixed slots many times", () => {
  const w = new Inflights({ capacity: 4, maxBytes: 1_000_000 });
  let next = 1;
  let acked = 0;
  for (let round = 0; round < 100; round++) {
    while (!w.full()) w.add(next++, 1);
    assert.equal(w.count, 4);
    acked += 1 + (round % 3); // acknowledge one to three
    w.freeLE(acked);
    assert.equal(w.count, next - 1 - acked);
    assert.equal(w.bytes, w.count);
  }
});

Deno.test("inflights: full by bytes, yet one append is always allowed", () => {
  const w = new Inflights({ capacity: 10, maxBytes: 100 });
  assert.equal(w.full(), false);
  w.add(1, 500); // larger than the byte budget on its own
  assert.equal(w.full(), true);
  w.freeFirstOne();
  assert.deepEqual([w.count, w.bytes, w.full()], [0, 0, false]);
  w.freeFirstOne(); // on an empty window: nothing happens
  assert.equal(w.count, 0);
});

Deno.test("inflights: reset empties the window", () => {
  const w = new Inflights({ capacity: 2, maxBytes: 100 });
  w.add(3, 10);
  w.add(4, 10);
  w.reset();
  assert.deepEqual([w.count, w.bytes, w.full()], [0, 0, false]);
  w.add(1, 5); // indexes may start lower again after a reset
  assert.equal(w.count, 1);
});

Deno.test("inflights: adding to a full window or out of order breaks an invariant", () => {
  const w = new Inflights({ capacity: 1, maxBytes: 100 });
  w.add(7, 1);
  assert.throws(() => w.add(8, 1), RaftInvariantError);
  const v = new Inflights({ capacity: 3, maxBytes: 100 });
  v.add(7, 1);
  assert.throws(() => v.add(7, 1), RaftInvariantError);
  assert.throws(() => new Inflights({ capacity: 0, maxBytes: 100 }), RaftInvariantError);
});
