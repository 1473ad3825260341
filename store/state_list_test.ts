import assert from "node:assert/strict";
import { SimKv } from "./sim_kv.ts";
import { StateStore } from "./state_store.ts";

Deno.test("state store: list reads one prefix's rows, in pages, as committed", async () => {
  const store = await StateStore.open(new SimKv());
  const batch = store.batch();
  for (const key of ["1/a", "1/b", "1/c", "10/a", "1", "2/a", "0/z", "1/\u{1F600}", "1/\uE000"]) {
    batch.put(key, key.toUpperCase());
  }
  // A value over one Deno KV value: stored in parts, read whole.
  batch.put("1/big", "x".repeat(200_000));
  batch.setSession("1/c0", { seq: 1 });
  batch.setSession("2/c0", { seq: 2 });
  batch.endEntry({ index: 1, term: 1 });
  await batch.commit();
  const keys = async (prefix: string, options: { after?: string; limit?: number } = {}) =>
    (await store.list(prefix, options)).map(([k]) => k);
  // The store's order is by UTF-8 bytes: U+E000 before the astral emoji.
  assert.deepEqual(await keys("1/"), ["1/a", "1/b", "1/big", "1/c", "1/\uE000", "1/\u{1F600}"]);
  assert.deepEqual(await keys("1/", { limit: 2 }), ["1/a", "1/b"]);
  assert.deepEqual(await keys("1/", { after: "1/b", limit: 2 }), ["1/big", "1/c"]);
  assert.deepEqual(await keys("1/", { after: "0" }), await keys("1/"));
  assert.deepEqual(await keys("1/", { after: "2" }), []);
  assert.equal((await store.list("1/", { after: "1/b", limit: 1 }))[0][1], "x".repeat(200_000));
  assert.deepEqual(await store.list("2/", { sessions: true }), [["2/c0", { seq: 2 }]]);
  assert.deepEqual(await keys("3/"), []);
  // Staged writes are not seen until committed.
  const next = store.batch();
  next.delete("1/a");
  next.put("1/aa", "new");
  assert.deepEqual((await keys("1/")).slice(0, 2), ["1/a", "1/b"]);
  next.endEntry({ index: 2, term: 1 });
  await next.commit();
  assert.deepEqual((await keys("1/")).slice(0, 2), ["1/aa", "1/b"]);
  assert.throws(() => store.list("1/", { limit: 0 }), RangeError);
  await store.close();
});
