import assert from "node:assert/strict";
import { StateStore } from "./state_store.ts";
import type { KvLike } from "./kv_like.ts";

/** Counts the row reads a Deno KV handle serves. */
function counting(kv: Deno.Kv): { kv: KvLike; reads: () => number } {
  let reads = 0;
  const proxy = new Proxy(kv, {
    get(target, name) {
      const v = Reflect.get(target, name, target);
      if (name === "get" || name === "getMany") {
        return (...args: unknown[]) => {
          reads++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { kv: proxy as unknown as KvLike, reads: () => reads };
}

Deno.test("state store: rows are read through readKv, a second connection, and see every commit", async () => {
  const path = await Deno.makeTempFile({ suffix: ".kv" });
  const writer = await Deno.openKv(path);
  const reader = await Deno.openKv(path);
  try {
    const w = counting(writer);
    const r = counting(reader);
    const store = await StateStore.open(w.kv, { readKv: r.kv, cacheBytes: 0 });
    const opened = w.reads();
    const model = new Map<string, string>();
    for (let i = 1; i <= 30; i++) {
      const before = model.get(`k${i % 7}`) ?? null;
      const batch = store.batch();
      batch.put(`k${i % 7}`, `v${i}`);
      if (i % 5 === 0) batch.delete(`k${(i + 3) % 7}`);
      batch.setSession("c", { seq: i });
      batch.endEntry({ index: i, term: 1 });
      // A read racing the commit may see either side of it; one after it sees it.
      const racing = store.get(`k${i % 7}`);
      await batch.commit();
      const raced = await racing;
      assert.ok(raced === before || raced === `v${i}`, `a racing read saw ${raced}: neither side`);
      model.set(`k${i % 7}`, `v${i}`);
      if (i % 5 === 0) model.delete(`k${(i + 3) % 7}`);
      assert.equal(
        await store.get(`k${i % 7}`),
        `v${i}`,
        `entry ${i}'s write, read after its commit`,
      );
      assert.deepEqual(await store.session("c"), { seq: i });
      if (i % 5 === 0) {
        assert.equal(await store.get(`k${(i + 3) % 7}`), null, `entry ${i}'s delete`);
      }
    }
    assert.equal(w.reads(), opened, "no row is read through the committing handle");
    assert.ok(r.reads() >= 60, `rows were read through readKv (${r.reads()})`);
    await store.close();
  } finally {
    writer.close();
    reader.close();
    await Deno.remove(path);
  }
});
