/**
 * A stored shard group answers a write once it is staged (its batch stored
 * later, in one or more Deno KV commits): reads and a leaving shard's pages
 * must see it until the store holds it (review of diskapply30: the group's
 * applied rows dropped writes after two commits of the store, not when the
 * store's applied index reached them, so a get missed an answered write and
 * a migrated shard lost it).
 */
import assert from "node:assert/strict";
import { VirtualClock } from "../net/clock.ts";
import { joinGroups } from "./mod.ts";
import { defaultCodec } from "../net/codec.ts";
import { keyToShard } from "./config.ts";
import { openStagedGroup } from "./test_util.ts";

Deno.test("stored shard group: a read sees a write staged while an earlier batch commits in two parts", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const group = await openStagedGroup({
      clock,
      // Sealed only when asked (storeSoon), as the compaction hold does; answered once staged.
      limits: { entries: 100_000, bytes: 1 << 30, delayMs: 1e9 },
    });
    const { store, state, applier } = group;
    const put = (client: string, key: string, value: string) => group.put(client, 1, key, value);
    // Batch X: 1,000 entries, each a new key and a new session: ~2,000 rows, over one commit's 900.
    for (let i = 0; i < 1000; i++) await put(`c${i}`, `k${i}`, "x");
    applier.storeSoon();
    // Batch Y (open): the write we read back, answered once staged.
    await put("target-client", "target", "new");
    assert.equal(await state.get("target"), "new");
    const stored = new Set<number>([store.applied.index]);
    let stale: string | undefined;
    for (let i = 0; i < 200 && stale === undefined; i++) {
      await put(`d${i}`, `other${i}`, "y");
      await group.tick();
      stored.add(store.applied.index);
      const seen = await state.get("target");
      if (seen !== "new") {
        stale = `read ${JSON.stringify(seen)} at entry ${group.index}, ` +
          `store at ${store.applied.index}, store indexes seen ${[...stored].join(",")}`;
      }
    }
    await applier.close();
    assert.equal(group.failed, undefined);
    assert.equal(stale, undefined, stale);
  });
});

Deno.test("stored shard group: with the replica's default batches, a write answered once staged reads back", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const group = await openStagedGroup({ clock });
    const { store, state, applier } = group;
    const seqs = new Map<string, number>();
    const latest = new Map<string, string>();
    const value = "v".repeat(4096);
    const moves = new Set<number>();
    let stale: string | undefined;
    for (let i = 0; i < 5000 && stale === undefined; i++) {
      const client = `c${i % 64}`;
      const seq = (seqs.get(client) ?? 0) + 1;
      seqs.set(client, seq);
      const key = `k${i % 3000}`;
      const v = `${i}:${value}`;
      await group.put(client, seq, key, v);
      latest.set(key, v);
      moves.add(store.applied.index);
      // The last few keys written: each must read as answered.
      for (let back = 0; back < 50 && back <= i; back++) {
        const k = `k${(i - back) % 3000}`;
        const seen = await state.get(k);
        if (seen !== latest.get(k)) {
          stale = `entry ${group.index}: ${k} read ${String(seen).slice(0, 12)}, answered ` +
            `${latest.get(k)!.slice(0, 12)}; store at ${store.applied.index}`;
          break;
        }
      }
      await group.tick();
    }
    await applier.close();
    assert.equal(group.failed, undefined);
    assert.equal(stale, undefined, stale);
  });
});

Deno.test("stored shard group: a leaving shard's page holds every write answered once staged", async () => {
  const clock = new VirtualClock();
  await clock.run(async () => {
    const results: unknown[] = [];
    const group = await openStagedGroup({
      clock,
      done: (_i, outcome) => void results.push(outcome),
    });
    const { store, state, applier, c1 } = group;
    let seq = 0;
    const put = (key: string, value: string) => group.put("c", ++seq, key, value);
    const big = "v".repeat(4096);
    // Fill: 4 KiB puts on shards that stay, until the first batch's first commit is done.
    const c2 = joinGroups(c1, { 101: ["b"] });
    assert.equal(keyToShard("9target"), 7);
    assert.equal(c2.shards[7], 101, "shard 7 moves to 101");
    const stays = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((d) => c2.shards[(8 + d) % 10] === 100);
    let n = 0;
    const filler = () => put(`${stays[n % stays.length]}f${n++ % 500}`, `${n}:${big}`);
    const start = store.applied.index;
    // No virtual time passes: the first batch is sealed by its bounds (512 entries, ~2 MiB: three
    // commits of at most 700 KiB), and the target goes into the next, before any is done.
    for (let i = 0; i < 520; i++) await filler();
    assert.equal(store.applied.index, start);
    // The write on shard 7, answered once staged; then shard 7 leaves (configuration 2).
    await put("9target", "answered");
    const targetAt = group.index;
    const answer = results.at(-1) as { result: { kind: string } };
    assert.equal(answer.result.kind, "write");
    await group.config(c2);
    assert.equal(state.statuses().get(7), "leaving");
    let missing: string | undefined;
    const moves = new Set<number>([store.applied.index]);
    // Entries go on (a virtual millisecond apart) while the first batch commits, group by group;
    // the page is read once that batch is stored and the target's is not.
    while (store.applied.index < 500) {
      await filler();
      await group.tick();
      moves.add(store.applied.index);
    }
    assert.ok(store.applied.index < targetAt, "the target's batch is not stored yet");
    const page = await state.leavingPage(7, 2, { after: null, maxBytes: 1 << 20 });
    const data = (defaultCodec.decode(page!.data) as { data: [string, string][] }).data;
    if (!data.some(([k, v]) => k === "9target" && v === "answered")) {
      const entries = `${store.applied.index} of ${group.index}`;
      missing = `store at ${entries}: the page has ${JSON.stringify(data)}`;
    }
    await applier.close();
    assert.equal(group.failed, undefined);
    assert.equal(missing, undefined, missing);
  });
});
