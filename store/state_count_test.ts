import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import type { KvAtomicLike, KvLike } from "./kv_like.ts";
import { SimKv } from "./sim_kv.ts";
import { StateInvariantError } from "./errors.ts";
import { StateStore } from "./state_store.ts";
import type { StatePage } from "./state_view.ts";

/** `kv`, counting the mutations of every commit made through it. */
function counting(kv: KvLike): { kv: KvLike; commits: number[] } {
  const commits: number[] = [];
  const wrapped: KvLike = {
    get: (key) => kv.get(key),
    getMany: (keys) => kv.getMany(keys),
    list: (selector, options) => kv.list(selector, options),
    close: () => kv.close(),
    atomic: () => {
      const op = kv.atomic();
      let n = 0;
      const counted: KvAtomicLike = {
        check: (...checks) => (op.check(...checks), counted),
        set: (key, value) => (n++, op.set(key, value), counted),
        delete: (key) => (n++, op.delete(key), counted),
        commit: () => (commits.push(n), op.commit()),
      };
      return counted;
    },
  };
  return { kv: wrapped, commits };
}

Deno.test("state store: a row written by several entries of a commit is stored once", async () => {
  const { kv, commits } = counting(new SimKv());
  const store = await StateStore.open(kv);
  const batch = store.batch();
  for (let i = 1; i <= 50; i++) {
    batch.put(`k${i % 5}`, `v${i}`);
    batch.setSession("client", { seq: i });
    batch.endEntry({ index: i, term: 1 });
  }
  await batch.commit();
  // Five data rows, one session row, `current`: one commit.
  assert.deepEqual(commits, [7]);
  // The last write of each wins: k0 by entry 50, k1 by 46, … k4 by 49.
  for (let k = 0; k < 5; k++) assert.equal(await store.get(`k${k}`), `v${k === 0 ? 50 : 45 + k}`);
  assert.deepEqual(await store.session("client"), { seq: 50 });
  assert.equal(store.applied.index, 50);
  await store.close();
});

Deno.test("state store: the count it keeps is the number of data rows, across batches, reopens and an install", async () => {
  const r = new Random(1919);
  let kv = new SimKv();
  let store = await StateStore.open(kv);
  assert.equal(store.count, undefined);
  assert.equal(await store.keepCount("n"), 0);
  const model = new Set<string>();
  let index = 0;
  for (let round = 0; round < 30; round++) {
    const batch = store.batch();
    for (let e = r.int(20) + 1; e > 0; e--) {
      for (let w = r.int(4) + 1; w > 0; w--) {
        const key = `k${r.int(30)}`;
        if (r.chance(0.3)) {
          batch.delete(key);
          model.delete(key);
        } else {
          batch.put(key, `v${index}`);
          model.add(key);
        }
      }
      batch.endEntry({ index: ++index, term: 1 });
    }
    await batch.commit();
    assert.equal(store.count, model.size, `round ${round}`);
    assert.equal(await store.session("n") ?? 0, model.size);
    if (r.chance(0.3)) {
      await store.close();
      kv.close();
      kv = kv.reopen();
      store = await StateStore.open(kv);
      assert.equal(await store.keepCount("n"), model.size);
    }
  }
  // The writer's count row is refused: the store writes it.
  assert.throws(() => store.batch().setSession("n", 3), StateInvariantError);
  await assert.rejects(store.keepCount("m"), StateInvariantError);
  // An install brings the leader's count.
  const pages: StatePage[] = [];
  const view = await store.view();
  for await (const page of view.pages()) pages.push(page);
  view.close();
  const other = await StateStore.open(new SimKv());
  assert.equal(await other.keepCount("n"), 0);
  await other.install(pages);
  assert.equal(other.count, model.size);
  await other.close();
  await store.close();
});
