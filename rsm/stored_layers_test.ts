import assert from "node:assert/strict";
import { delay, simulate } from "../net/mod.ts";
import { SimKv, StateStore } from "../store/mod.ts";
import { StagedLayers } from "./stored_layers.ts";
import { catchUpCompactionIndex, storedCompactionIndex } from "./replica_compaction.ts";

Deno.test("staged layers: an entry is readable once staged, stored within the delay", async () => {
  await simulate(async ({ clock }) => {
    const store = await StateStore.open(new SimKv({ clock }));
    let stored = 0;
    const layers = new StagedLayers(store, {
      clock,
      limits: { delayMs: 20 },
      onFailure: (err) => assert.fail(`${err}`),
      onStored: () => stored++,
    });
    for (let i = 1; i <= 5; i++) {
      const batch = await layers.stage();
      batch.put("x", String(i));
      batch.setSession("c", { seq: i });
      layers.endEntry({ index: i, term: 1 });
      // The answer may go now: reads see it, the store does not have it yet.
      assert.equal(await layers.get("x"), String(i));
      assert.deepEqual(await layers.session("c"), { seq: i });
    }
    assert.equal(store.applied.index, 0);
    assert.equal(layers.lastIndex, 5);
    await delay(30, { clock });
    assert.equal(store.applied.index, 5);
    assert.equal(await store.get("x"), "5");
    assert.equal(stored, 1, "one commit for the five entries");
    assert.equal(layers.stagedEntries, 0);
    await layers.close();
    await store.close();
  }, { seed: 1 });
});

Deno.test("staged layers: a full batch is sealed, and staging waits while the sealed ones commit", async () => {
  await simulate(async ({ clock }) => {
    // Each commit takes 5 virtual ms.
    const store = await StateStore.open(new SimKv({ clock, commitMs: 5 }));
    const layers = new StagedLayers(store, {
      clock,
      limits: { entries: 3, sealed: 1, delayMs: 1000 },
      onFailure: (err) => assert.fail(`${err}`),
    });
    let most = 0;
    for (let i = 1; i <= 30; i++) {
      const batch = await layers.stage();
      // A key written 2 batches ago is read through the layers or the store alike.
      if (i > 6) assert.equal(await batch.get(`k${i - 6}`), String(i - 6));
      batch.put(`k${i}`, String(i));
      layers.endEntry({ index: i, term: 1 });
      most = Math.max(most, layers.stagedEntries);
    }
    assert.ok(most <= 6, `${most} entries staged: one sealed batch and one open at most`);
    await layers.flush();
    assert.equal(store.applied.index, 30);
    await layers.close();
    await store.close();
  }, { seed: 2 });
});

Deno.test("staged layers: a commit that fails stops the staging and is reported once", async () => {
  await simulate(async ({ clock }) => {
    const kv = new SimKv({ clock });
    const store = await StateStore.open(kv);
    const failures: unknown[] = [];
    const layers = new StagedLayers(store, {
      clock,
      limits: { entries: 1 },
      onFailure: (err) => failures.push(err),
    });
    kv.crashAfter(1);
    for (let i = 1; i <= 2; i++) {
      const batch = await layers.stage();
      batch.put("x", String(i));
      layers.endEntry({ index: i, term: 1 });
    }
    await assert.rejects(layers.flush());
    await assert.rejects(layers.stage());
    assert.equal(failures.length, 1);
    await layers.close();
    await store.close();
    // What survived is a prefix: entry 1, stored with its index.
    const again = await StateStore.open(kv.reopen());
    assert.equal(again.applied.index, 1);
    assert.equal(await again.get("x"), "1");
    await again.close();
  }, { seed: 3 });
});

Deno.test("stored compaction: through the durable index, keeping a bounded tail", () => {
  const log = { snapshotIndex: 100, lastIndex: 20_100, bytes: 2_000_000 }; // 100 bytes an entry
  // 5,000 entries kept (under the byte budget).
  assert.equal(storedCompactionIndex(log, { durable: 20_100, tailBytes: 4 << 20 }), 15_100);
  // 1,000 entries' worth of bytes: 1,000 kept.
  assert.equal(storedCompactionIndex(log, { durable: 20_100, tailBytes: 100_000 }), 19_100);
  // Never past what is stored.
  assert.equal(storedCompactionIndex(log, { durable: 12_000, tailBytes: 100_000 }), 12_000);
  // Nothing to drop.
  assert.equal(storedCompactionIndex(log, { durable: 100, tailBytes: 100_000 }), undefined);
  assert.equal(
    storedCompactionIndex({ snapshotIndex: 5, lastIndex: 5, bytes: 0 }, {
      durable: 5,
      tailBytes: 1,
    }),
    undefined,
  );
});

Deno.test("stored compaction: not past what a follower catching up needs, while the log is within its bound", () => {
  const log = { snapshotIndex: 100, bytes: 5_000 };
  const held = { index: 300, maxBytes: 8_000 };
  assert.deepEqual(catchUpCompactionIndex(500, log, held), { index: 300, passes: false });
  // Nothing held, or held above where it compacts: as otherwise.
  assert.deepEqual(catchUpCompactionIndex(500, log, { index: undefined, maxBytes: 8_000 }), {
    index: 500,
    passes: false,
  });
  assert.deepEqual(catchUpCompactionIndex(250, log, held), { index: 250, passes: false });
  assert.deepEqual(catchUpCompactionIndex(undefined, log, held), {
    index: undefined,
    passes: false,
  });
  // Held at the log's start: nothing to drop.
  assert.deepEqual(catchUpCompactionIndex(500, { snapshotIndex: 300, bytes: 5_000 }, held), {
    index: undefined,
    passes: false,
  });
  // Over the bound: compacted as otherwise, and said to pass the follower.
  assert.deepEqual(catchUpCompactionIndex(500, { snapshotIndex: 100, bytes: 8_001 }, held), {
    index: 500,
    passes: true,
  });
});
