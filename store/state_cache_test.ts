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
