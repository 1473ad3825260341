/**
 * Rows that keep their value in the Raft log (`state_logged.ts`): pointer
 * rows, their `l` listings kept in the same commits, reads through the log
 * checked against the row, views and installs, copy-forward, and the start
 * check; with a made-up log (a map of records) on a `SimKv`.
 */
import assert from "node:assert/strict";
import { SimKv } from "./sim_kv.ts";
import { StateStore } from "./state_store.ts";
import type { LogLocation } from "./log_location.ts";
import type { LoggedValues } from "./state_logged.ts";
import type { StateValue } from "./state_value.ts";
import { StorageCorruptionError } from "./storage_errors.ts";

/** A made-up log: the value each entry carries, by segment and index. */
class FakeLog implements LoggedValues {
  values = new Map<string, StateValue>();
  segments = new Set<number>();
  reads = 0;

  /** Where entry `index` lies (in `segment`), carrying `value`. */
  add(segment: number, index: number, value: StateValue): LogLocation {
    this.values.set(`${segment}/${index}`, value);
    this.segments.add(segment);
    return { segment, offset: index * 100, length: 100, seed: 1, index };
  }

  read(at: LogLocation): Promise<StateValue> {
    this.reads++;
    const value = this.values.get(`${at.segment}/${at.index}`);
    if (!this.segments.has(at.segment)) {
      return Promise.reject(new StorageCorruptionError("log", `segment ${at.segment} is gone`));
    }
    if (value === undefined) {
      return Promise.reject(new StorageCorruptionError("log", `entry ${at.index} is gone`));
    }
    return Promise.resolve(value);
  }
}

/** Puts `value` at `key` as entry `index`, its record in `segment` of `log` (or inline when not). */
async function put(
  store: StateStore,
  log: FakeLog,
  w: { key: string; value: StateValue; index: number; segment?: number },
): Promise<void> {
  const batch = store.batch();
  batch.put(w.key, w.value);
  const logged = w.segment === undefined
    ? undefined
    : { value: w.value, at: log.add(w.segment, w.index, w.value) };
  batch.endEntry({ index: w.index, term: 1 }, logged ? { logged } : {});
  await batch.commit();
}

/** What the log's compaction does: every segment below the lowest the store keeps goes. */
function compact(store: StateStore, log: FakeLog): void {
  const lowest = store.lowestLoggedSegment() ?? Infinity;
  for (const segment of [...log.segments]) if (segment < lowest) log.segments.delete(segment);
}

/** The file of `kv` opened again, as after a restart (the handle is closed first). */
function reopen(kv: SimKv): SimKv {
  kv.close();
  return kv.reopen();
}

/** The store in `kv`, reading rows kept in the log from `log`; no read cache: every read is seen. */
async function opened(kv: SimKv, log: FakeLog): Promise<StateStore> {
  const store = await StateStore.open(kv, { cacheBytes: 0 });
  await store.useLog(log);
  return store;
}

Deno.test("state logged: a row points at its log record, read back through the log; its listing follows it", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  const big = new Uint8Array(200_000).fill(7);
  await put(store, log, { key: "a", value: big, index: 1, segment: 3 });
  await put(store, log, { key: "b", value: "text value", index: 2, segment: 3 });
  assert.deepEqual([...store.loggedRows], [[3, 2]]);
  assert.equal(store.lowestLoggedSegment(), 3);
  // The parts a 200 KB value would take are not written: the row is a pointer.
  const parts = [];
  for await (const e of kv.list({ prefix: ["state", 1, "p"] })) parts.push(e.key);
  assert.equal(parts.length, 0);
  await store.close();
  const again = await opened(kv = reopen(kv), log);
  const before = log.reads;
  assert.deepEqual(await again.get("a"), big);
  assert.equal(await again.get("b"), "text value");
  assert.ok(log.reads > before, "read through the log");
  // Overwritten in another segment, then inline, then deleted: the listing moves, then goes.
  await put(again, log, { key: "a", value: big, index: 3, segment: 4 });
  assert.deepEqual([...again.loggedRows].sort(), [[3, 1], [4, 1]]);
  await put(again, log, { key: "b", value: "inline now", index: 4 });
  assert.deepEqual([...again.loggedRows], [[4, 1]]);
  assert.equal(again.lowestLoggedSegment(), 4);
  const batch = again.batch();
  batch.delete("a");
  batch.endEntry({ index: 5, term: 1 });
  await batch.commit();
  assert.deepEqual([...again.loggedRows], []);
  assert.equal(again.lowestLoggedSegment(), undefined);
  const listings = [];
  for await (const e of kv.list({ prefix: ["state", 1, "l"] })) listings.push(e.key);
  assert.deepEqual(listings, []);
  await again.close();
});

Deno.test("state logged: entries of one commit writing a key twice leave one listing, as stored", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  const batch = store.batch();
  for (const [index, segment] of [[1, 2], [2, 2], [3, 5], [4, 6]]) {
    const value = `v${index}`.repeat(100);
    batch.put("k", value);
    batch.endEntry({ index, term: 1 }, { logged: { value, at: log.add(segment, index, value) } });
  }
  batch.put("k", "plain");
  batch.put("j", "v-j");
  // A put of another value than the logged one is not a pointer.
  batch.endEntry({ index: 5, term: 1 }, { logged: { value: "v-other", at: log.add(7, 5, "x") } });
  await batch.commit();
  assert.deepEqual([...store.loggedRows], []);
  const b2 = store.batch();
  b2.put("k", "v6".repeat(100));
  b2.endEntry({ index: 6, term: 1 }, {
    logged: { value: "v6".repeat(100), at: log.add(8, 6, "v6".repeat(100)) },
  });
  await b2.commit();
  await store.close();
  const again = await opened(kv = reopen(kv), log);
  assert.deepEqual([...again.loggedRows], [[8, 1]], "the listings as stored match the counts");
  assert.equal(await again.get("k"), "v6".repeat(100));
  assert.equal(await again.get("j"), "v-j");
  await again.close();
});

Deno.test("state logged: a log record carrying another value, or none, or no log at all, is a StorageCorruptionError", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  await put(store, log, { key: "a", value: "abcd", index: 1, segment: 1 });
  // Same size, other bytes: only the CRC tells.
  log.values.set("1/1", "abce");
  await assert.rejects(store.get("a"), /fails its checksum/);
  log.values.set("1/1", "abcde");
  await assert.rejects(store.get("a"), /carries another value/);
  log.values.set("1/1", new TextEncoder().encode("abcd"));
  await assert.rejects(store.get("a"), /carries another value/, "bytes where text was stored");
  log.values.delete("1/1");
  await assert.rejects(store.get("a"), StorageCorruptionError);
  log.values.set("1/1", "abcd");
  assert.equal(await store.get("a"), "abcd");
  await store.close();
  // Without a log to read from.
  const bare = await StateStore.open(kv = reopen(kv));
  await assert.rejects(bare.get("a"), /not one it can read it from/);
  await bare.close();
});

Deno.test("state logged: a start refuses a log that lost or damaged what the rows point at", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  await put(store, log, { key: "a", value: "value-a", index: 1, segment: 1 });
  await put(store, log, { key: "b", value: "value-b", index: 2, segment: 2 });
  await store.close();
  const lost = new FakeLog();
  lost.values = new Map(log.values);
  lost.segments = new Set([2]);
  const s1 = await StateStore.open(kv = reopen(kv));
  await assert.rejects(s1.useLog(lost), /segment 1 is gone/);
  await s1.close();
  const damaged = new FakeLog();
  damaged.segments = new Set(log.segments);
  damaged.values = new Map(log.values);
  damaged.values.set("2/2", "value-x");
  const s2 = await StateStore.open(kv = reopen(kv));
  await assert.rejects(s2.useLog(damaged), StorageCorruptionError);
  await s2.close();
  const s3 = await StateStore.open(kv = reopen(kv));
  await s3.useLog(log);
  await s3.close();
});

Deno.test("state logged: a view streams the values and pins their segments; an install holds them as rows", async () => {
  const kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  await put(store, log, { key: "a", value: "x".repeat(70_000), index: 1, segment: 1 });
  await put(store, log, { key: "b", value: new Uint8Array([1, 2, 3]), index: 2, segment: 2 });
  const view = await store.view();
  // Overwritten while the view is open: the view still needs segment 1.
  await put(store, log, { key: "a", value: "new", index: 3 });
  assert.equal(store.lowestLoggedSegment(), 1, "pinned by the view");
  const pages = [];
  for await (const page of view.pages()) pages.push(page);
  view.close();
  assert.equal(store.lowestLoggedSegment(), 2);
  const rows = pages.flatMap((p) => p.rows).filter((r) => r[0] === "d");
  assert.deepEqual(rows, [["d", "a", "x".repeat(70_000)], ["d", "b", new Uint8Array([1, 2, 3])]]);
  const other = await StateStore.open(new SimKv());
  await other.install(pages);
  assert.deepEqual([...other.loggedRows], [], "nothing points into another node's log");
  assert.equal(await other.get("a"), "x".repeat(70_000));
  await other.close();
  await store.close();
});

Deno.test("state logged: copy-forward rewrites a segment's rows as ordinary rows, so nothing points there", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  const values = new Map<string, StateValue>();
  for (let i = 1; i <= 30; i++) {
    const value = i % 2 ? `value ${i} `.repeat(8000) : new Uint8Array(i * 1000).fill(i);
    values.set(`k${i}`, value);
    await put(store, log, { key: `k${i}`, value, index: i, segment: i <= 20 ? 1 : 2 });
  }
  assert.deepEqual([...store.loggedRows].sort(), [[1, 20], [2, 10]]);
  let moved = 0;
  for (let n; (n = await store.copyForward(1, 7)) > 0;) moved += n;
  assert.equal(moved, 20);
  assert.deepEqual([...store.loggedRows], [[2, 10]]);
  assert.equal(store.lowestLoggedSegment(), 2);
  await store.close();
  // Segment 1 is gone from the log: the rows read without it, after a restart too.
  log.segments.delete(1);
  for (const key of [...log.values.keys()]) if (key.startsWith("1/")) log.values.delete(key);
  const again = await opened(kv = reopen(kv), log);
  assert.deepEqual([...again.loggedRows], [[2, 10]]);
  for (const [key, value] of values) assert.deepEqual(await again.get(key), value, key);
  // New parts after a copy-forward do not reuse its part ids (they were stored in `current`).
  await put(again, log, { key: "k1", value: "z".repeat(100_000), index: 31 });
  assert.equal(await again.get("k3"), values.get("k3"));
  await again.close();
});

Deno.test("state logged: copy-forward goes on under an open view, which still reads its point; the segment goes once it closes", async () => {
  let kv = new SimKv();
  const log = new FakeLog();
  const store = await opened(kv, log);
  const old = (k: string) => `${k} as the view saw it `.repeat(4000);
  for (const [index, key] of ["a", "b", "c", "d"].entries()) {
    await put(store, log, { key, value: old(key), index: index + 1, segment: 1 });
  }
  await put(store, log, { key: "e", value: old("e"), index: 5, segment: 2 });
  const view = await store.view();
  // After the view's point: b overwritten (the view keeps b's copy, a pointer into segment 1).
  await put(store, log, { key: "b", value: "b, later", index: 6 });
  const pages = view.pages({ pageBytes: 1, rowsPerRead: 1 });
  const first = await pages.next();
  assert.deepEqual(first.value?.rows, [["d", "a", old("a")]]);
  // Mid-stream, with the view open: segment 1's rows move, in two commits.
  assert.equal(await store.copyForward(1, 2), 2);
  assert.equal(await store.copyForward(1, 2), 1);
  assert.equal(await store.copyForward(1, 2), 0, "none is left there");
  assert.deepEqual([...store.loggedRows], [[2, 1]]);
  assert.equal(store.lowestLoggedSegment(), 1, "still pinned: the view's copy of b points there");
  // A second view opened now pins only what rows point into now.
  const second = await store.view();
  compact(store, log);
  assert.ok(log.segments.has(1), "kept for the first view");
  const rows = [...first.value!.rows];
  for await (const page of { [Symbol.asyncIterator]: () => pages }) rows.push(...page.rows);
  assert.deepEqual(rows.filter((r) => r[0] === "d"), [
    ["d", "a", old("a")],
    ["d", "b", old("b")],
    ["d", "c", old("c")],
    ["d", "d", old("d")],
    ["d", "e", old("e")],
  ], "the view reads its point, moved rows and its copy alike");
  view.close();
  assert.equal(store.lowestLoggedSegment(), 2, "released: the second view pinned segment 2");
  compact(store, log);
  assert.ok(!log.segments.has(1), "segment 1 goes");
  const streamed = [];
  for await (const page of second.pages()) streamed.push(...page.rows.filter((r) => r[0] === "d"));
  assert.deepEqual(streamed.map((r) => r[2]), [old("a"), "b, later", old("c"), old("d"), old("e")]);
  second.close();
  await store.close();
  // Every row reads without segment 1, after a restart too.
  const again = await opened(kv = reopen(kv), log);
  for (const key of ["a", "c", "d", "e"]) assert.equal(await again.get(key), old(key), key);
  assert.equal(await again.get("b"), "b, later");
  await again.close();
});
