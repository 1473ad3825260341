import assert from "node:assert/strict";
import type { KvLike } from "../store/kv_like.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { StateBatch } from "../store/state_batch.ts";
import { AppliedRows, EntryWrites } from "./applied_rows.ts";

/** A `KvLike` whose `get` reads now but answers only once the gate opens. */
function gated(kv: KvLike): { kv: KvLike; close: () => void; open: () => void } {
  let gate: Promise<void> | undefined;
  let release = () => {};
  const held = async <T>(value: T): Promise<T> => {
    await gate;
    return value;
  };
  return {
    kv: {
      get: (key) => held(kv.get(key)).then((p) => p),
      getMany: (keys) => kv.getMany(keys),
      list: (selector, options) => kv.list(selector, options),
      atomic: () => kv.atomic(),
      close: () => kv.close(),
    } as KvLike,
    close: () => gate = new Promise((resolve) => release = resolve),
    open: () => release(),
  };
}

/** A store with no read cache (every read goes to the database), and entries applied into it. */
async function setUp() {
  const db = gated(new SimKv());
  const store = await StateStore.open(db.kv, { cacheBytes: 0 });
  const rows = new AppliedRows(store);
  let index = 0;
  let batch: StateBatch = store.batch();
  return {
    db,
    rows,
    entry(writes: [string, string | null][]) {
      const w = new EntryWrites(batch);
      for (const [key, value] of writes) w.put("d", key, value);
      rows.add(w, ++index);
      batch.endEntry({ index, term: 1 });
    },
    async commit() {
      await batch.commit();
      batch = store.batch();
    },
  };
}

Deno.test("applied rows: a read across two commits is read again, not answered with what it read before", async () => {
  const t = await setUp();
  t.entry([["x", "1"]]);
  await t.commit();
  t.entry([["x", "2"]]);
  t.db.close();
  // Reads the stored "1"; the entry that wrote "2" is then stored, and moves out of both maps.
  const read = t.rows.row("d", "x");
  await t.commit();
  t.entry([["z", "1"]]);
  await t.commit();
  t.entry([["y", "1"]]);
  t.db.open();
  assert.equal(await read, "2");
  // Before a commit, the entries' writes are what reads see.
  t.entry([["x", null]]);
  assert.equal(await t.rows.row("d", "x"), null);
  await t.commit();
  assert.equal(await t.rows.row("d", "x"), null);
});

// (A range is read under the store's lock, `StateStore.list`: no commit lands while it reads.)
Deno.test("applied rows: a range is the stored rows merged with the writes not yet stored", async () => {
  const t = await setUp();
  t.entry([["1/a", "a"], ["1/b", "b"], ["2/a", "other"]]);
  await t.commit();
  t.entry([["1/b", null], ["1/c", "c"]]);
  const keys = async () => {
    const out: [string, unknown][] = [];
    for await (const row of t.rows.rows("d", "1/", undefined)) out.push(row);
    return out;
  };
  assert.deepEqual(await keys(), [["a", "a"], ["c", "c"]]);
  // Stored, then moved aside by the next entry: the same.
  await t.commit();
  t.entry([["2/z", "1"]]);
  assert.deepEqual(await keys(), [["a", "a"], ["c", "c"]]);
  await t.commit();
  assert.deepEqual(await keys(), [["a", "a"], ["c", "c"]]);
  const after: [string, unknown][] = [];
  for await (const row of t.rows.rows("d", "1/", "a")) after.push(row);
  assert.deepEqual(after, [["c", "c"]]);
});
