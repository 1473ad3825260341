import assert from "node:assert/strict";
import { Random } from "./mod.ts";

Deno.test("random: the same seed gives the same sequence, another seed another", () => {
  const seq = (seed: number) =>
    Array.from({ length: 100 }, ((r) => () => r.int(1_000_000))(new Random(seed)));
  assert.deepEqual(seq(7), seq(7));
  assert.notDeepEqual(seq(7), seq(8));
});

Deno.test("random: int and between stay in range and cover it", () => {
  const r = new Random(1);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[r.int(10)]++;
  for (const c of counts) assert.ok(c > 9_000 && c < 11_000, `bucket count ${c}`);
  for (let i = 0; i < 1000; i++) {
    const v = r.between(-3, 3);
    assert.ok(Number.isInteger(v) && v >= -3 && v <= 3);
  }
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => r.int(1.5), RangeError);
});

Deno.test("random: chance, pick, shuffle, fork", () => {
  const r = new Random(2);
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (r.chance(0.1)) hits++;
  assert.ok(hits > 800 && hits < 1200, `${hits} hits at p = 0.1`);
  const items = [1, 2, 3, 4, 5];
  assert.ok(items.includes(r.pick(items)));
  assert.deepEqual(r.shuffle(items).sort(), items);
  assert.deepEqual(items, [1, 2, 3, 4, 5], "shuffle does not mutate");
  const a = new Random(3).fork();
  const b = new Random(3).fork();
  assert.equal(a.next(), b.next());
  assert.throws(() => r.pick([]), RangeError);
});
