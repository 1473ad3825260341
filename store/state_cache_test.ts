import assert from "node:assert/strict";
import { ReadCache } from "./state_cache.ts";

Deno.test("read cache: stays within its bytes, evicting the least recently used", () => {
  const cache = new ReadCache(10_000);
  for (let i = 0; i < 200; i++) {
    cache.set(`d${i}`, { row: new Uint8Array(100), value: "x".repeat(50) });
    assert.ok(cache.bytes <= 10_000, `${cache.bytes} bytes after ${i + 1} sets`);
    if (i >= 1) assert.ok(cache.get("d0"), "d0 is used at every step, so it stays");
  }
  assert.equal(cache.get("d1"), undefined);
  assert.ok(cache.get("d199"));
});

Deno.test("read cache: an entry over an eighth of the budget is not kept, and drops a stale one", () => {
  const cache = new ReadCache(8_000);
  cache.set("dk", { row: null, value: null });
  cache.set("dk", { row: new Uint8Array(2_000), value: new Uint8Array(2_000) });
  assert.equal(cache.get("dk"), undefined);
  cache.set("da", { row: null, value: null });
  cache.clear();
  assert.equal(cache.bytes, 0);
  assert.equal(cache.get("da"), undefined);
});

Deno.test("read cache: the same rows and bytes as a model LRU over random gets, sets and deletes", () => {
  const max = 5_000;
  const cache = new ReadCache(max);
  // The model: an array, least recently used first.
  let model: { key: string; size: number; value: string }[] = [];
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let step = 0; step < 5_000; step++) {
    const key = `d${random(60)}`;
    const op = random(10);
    const at = model.findIndex((m) => m.key === key);
    if (op < 5) {
      const got = cache.get(key);
      assert.equal(got?.value, at < 0 ? undefined : model[at].value, `step ${step}: get ${key}`);
      if (at >= 0) model.push(...model.splice(at, 1));
    } else if (op < 9) {
      const value = "x".repeat(random(300));
      cache.set(key, { row: null, value });
      if (at >= 0) model.splice(at, 1);
      const size = 2 * key.length + 2 * value.length + 96;
      if (size <= max / 8) model.push({ key, size, value });
      while (model.reduce((n, m) => n + m.size, 0) > max) model.shift();
    } else {
      cache.delete(key);
      if (at >= 0) model.splice(at, 1);
    }
    assert.equal(cache.bytes, model.reduce((n, m) => n + m.size, 0), `step ${step}: bytes`);
  }
  for (const m of model) assert.equal(cache.get(m.key)?.value, m.value);
  cache.clear();
  assert.equal(cache.bytes, 0);
  model = [];
  assert.equal(cache.get("d1"), undefined);
});
