import assert from "node:assert/strict";
import type { StateValue } from "./state_value.ts";
import { Random } from "../net/random.ts";
import type { KvLike } from "./kv_like.ts";
import { SimKv, SimKvCrashedError } from "./sim_kv.ts";
import { StateInstallError, StateInvariantError, StateLimitError } from "./errors.ts";
import { StateStore } from "./state_store.ts";
import type { StateBatch } from "./state_batch.ts";
import type { StatePage } from "./state_view.ts";
import type { AppliedPoint } from "./state_layout.ts";

/** One entry's writes: data key → value (null: delete), client → session row. */
interface TestEntry {
  point: AppliedPoint;
  data: [string, StateValue | null][];
  sessions: [string, unknown][];
}

/** A state as a plain map: "d"+key → value, "s"+client → decoded session. */
type Model = Map<string, unknown>;

function bigValue(r: Random, kind: number): StateValue {
  const size = r.between(61 * 1024, 300 * 1024);
  if (kind === 0) return "é".repeat(size / 2);
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + kind) & 0xff);
}

/** A value whose row would spill out of its SQLite cell: stored cut into cell-sized parts. */
function cutValue(r: Random): StateValue {
  const size = r.between(900, 4 * 1024);
  if (r.chance(0.5)) return "ü".repeat(size / 2);
  return Uint8Array.from({ length: size }, () => r.int(256));
}

/** A commit's rejection, from the store or from the database, says the database crashed. */
function crashed(err: unknown): boolean {
  return err instanceof SimKvCrashedError || (err as Error)?.cause instanceof SimKvCrashedError;
}

/** Random entries from `index` on: mostly small writes, some deletes, some large values. */
function randomEntries(r: Random, from: number, n: number, width = 6, keys = 40): TestEntry[] {
  const out: TestEntry[] = [];
  for (let k = 0; k < n; k++) {
    const data: [string, StateValue | null][] = [];
    for (let w = r.int(width) + 1; w > 0; w--) {
      const key = r.chance(0.1) ? `big${r.int(4)}` : `k${r.int(keys)}`;
      const roll = r.int(10);
      if (roll === 0) data.push([key, null]);
      else if (key.startsWith("big")) data.push([key, bigValue(r, r.int(3))]);
      else if (roll === 1) data.push([key, cutValue(r)]);
      else if (roll < 4) data.push([key, Uint8Array.of(r.int(256), 0, r.int(256))]);
      else data.push([key, `v${from + k}-${r.int(1000)}`]);
    }
    const sessions: [string, unknown][] = r.chance(0.5)
      ? [[`c${r.int(5)}`, { seq: from + k, ok: true }]]
      : [];
    out.push({ point: { index: from + k, term: 1 + Math.floor((from + k) / 50) }, data, sessions });
  }
  return out;
}

function stage(batch: StateBatch, entries: TestEntry[]): void {
  for (const e of entries) {
    for (const [key, value] of e.data) value === null ? batch.delete(key) : batch.put(key, value);
    for (const [client, row] of e.sessions) batch.setSession(client, row);
    batch.endEntry(e.point);
  }
}

function applyModel(model: Model, entries: TestEntry[]): void {
  for (const e of entries) {
    for (const [key, value] of e.data) {
      value === null ? model.delete("d" + key) : model.set("d" + key, value);
    }
    for (const [client, row] of e.sessions) model.set("s" + client, row);
  }
}

/** The store's whole state through a view (which checks the stream's own count and digest too). */
async function dump(store: StateStore): Promise<{ model: Model; pages: StatePage[] }> {
  const view = await store.view();
  const model: Model = new Map();
  const pages: StatePage[] = [];
  for await (const page of view.pages({ pageBytes: 4096, rowsPerRead: 7 })) {
    pages.push(page);
    for (const [table, key, value] of page.rows) {
      model.set(table + key, table === "s" ? decodeSession(value) : value);
    }
  }
  view.close();
  return { model, pages };
}

import { defaultCodec } from "../net/codec.ts";
function decodeSession(value: StateValue): unknown {
  return defaultCodec.decode(value as Uint8Array);
}

/** Every key of the store's prefix, for leak checks. */
async function allKeys(kv: KvLike): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: ["state"] })) out.push(e.key);
  return out;
}

/** Keys that are not live rows, parts a live row points to, or `current`, after garbage collection. */
async function leftovers(kv: KvLike, store: StateStore): Promise<Deno.KvKey[]> {
  while (await store.collectGarbage(10_000) > 0) { /* until nothing is left */ }
  const gen = store.generation;
  const keys = await allKeys(kv);
  const rows = keys.filter((k) => k[1] === gen && (k[2] === "d" || k[2] === "s"));
  const parted = new Set<number>();
  for (const k of rows) {
    const row = (await kv.get<Uint8Array>(k)).value!;
    if (row[4] === 2 || row[4] === 3) {
      parted.add(new DataView(row.buffer, row.byteOffset + 5).getFloat64(0));
    }
  }
  return keys.filter((k) =>
    !(k.length === 2 && k[1] === "current") &&
    !(k[1] === gen && (k[2] === "d" || k[2] === "s")) &&
    !(k[1] === gen && k[2] === "p" && parted.has(k[3] as number))
  );
}

Deno.test("state store: values of any size, sessions and applied survive a reopen", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  assert.deepEqual(store.applied, { index: 0, term: 0 });
  const big = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
  const batch = store.batch();
  batch.put("text", "héllo");
  batch.put("bytes", Uint8Array.of(0, 1, 2));
  batch.put("big", big);
  batch.put("bigtext", "x".repeat(200_000));
  batch.put("gone", "soon");
  batch.endEntry({ index: 1, term: 1 });
  batch.delete("gone");
  batch.setSession("c1", { seq: 3, result: { ok: true } });
  batch.endEntry({ index: 2, term: 1, membership: { voters: ["a"] } });
  assert.equal(await batch.get("gone"), null);
  assert.deepEqual(await batch.session("c1"), { seq: 3, result: { ok: true } });
  await batch.commit();
  assert.equal(await store.get("text"), "héllo");
  await store.close();
  kv.close();

  const again = await StateStore.open(kv.reopen());
  assert.deepEqual(again.applied, { index: 2, term: 1, membership: { voters: ["a"] } });
  assert.equal(await again.get("text"), "héllo");
  assert.deepEqual(await again.get("bytes"), Uint8Array.of(0, 1, 2));
  assert.deepEqual(await again.get("big"), big);
  assert.equal(await again.get("bigtext"), "x".repeat(200_000));
  assert.equal(await again.get("gone"), null);
  assert.equal(await again.get("never"), null);
  assert.deepEqual(await again.session("c1"), { seq: 3, result: { ok: true } });
  assert.equal(await again.session("c2"), undefined);
});

Deno.test("state store: a replaced large value's parts are garbage, deleted a slice at a time", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  for (let i = 1; i <= 6; i++) {
    const batch = store.batch();
    batch.put("big", new Uint8Array(200_000).fill(i));
    batch.endEntry({ index: i, term: 1 });
    await batch.commit();
  }
  assert.deepEqual(await leftovers(kv, store), []);
  assert.deepEqual(await store.get("big"), new Uint8Array(200_000).fill(6));
  assert.equal(store.pendingGarbage, 0);
});

Deno.test("state store: a crash at every commit point of a batch leaves exactly an applied prefix", async () => {
  const r = new Random(1919);
  const base = randomEntries(r, 1, 20);
  // Wide entries (up to 80 writes each) with large values: several cuts, parts written ahead.
  // Keys mostly distinct (a row written again in a commit is stored once: fewer cuts).
  const batchEntries = randomEntries(r, 21, 40, 80, 100_000);
  const prefixes: Model[] = [];
  const model: Model = new Map();
  applyModel(model, base);
  prefixes[20] = new Map(model);
  for (const e of batchEntries) {
    applyModel(model, [e]);
    prefixes[e.point.index] = new Map(model);
  }
  const setup = async () => {
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    const batch = store.batch();
    stage(batch, base);
    await batch.commit();
    return { kv, store };
  };
  // How many commits the batch makes uncrashed.
  const { kv: clean, store: cleanStore } = await setup();
  const before = clean.commits;
  const batch = cleanStore.batch();
  stage(batch, batchEntries);
  await batch.commit();
  const total = clean.commits - before;
  assert.ok(total >= 6, `the batch makes ${total} commits; the test needs several`);
  const seen = new Set<number>();
  for (let n = 0; n <= total; n++) {
    const { kv, store } = await setup();
    kv.crashAfter(n);
    const batch = store.batch();
    stage(batch, batchEntries);
    const result = await batch.commit().then(() => "ok", (err) => err);
    if (n < total) assert.ok(crashed(result), `crash ${n}: ${result}`);
    else assert.equal(result, "ok");
    kv.crash(); // (after the last commit point: nothing in flight)
    const kv2 = kv.reopen();
    const reopened = await StateStore.open(kv2);
    const index = reopened.applied.index;
    seen.add(index);
    assert.ok(prefixes[index], `crash ${n}: applied ${index} is not an entry boundary`);
    assert.deepEqual((await dump(reopened)).model, prefixes[index], `crash ${n} at ${index}`);
    assert.deepEqual(await leftovers(kv2, reopened), [], `crash ${n}: leftovers`);
  }
  assert.ok(seen.size >= 4, `crashes stopped at ${[...seen]}`);
});

Deno.test("state store: a view stays at its point while writes go on (random interleavings, against a model)", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const r = new Random(seed);
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    const model: Model = new Map();
    let index = 1;
    const write = async (n: number) => {
      const entries = randomEntries(r, index, n);
      index += n;
      applyModel(model, entries);
      const batch = store.batch();
      stage(batch, entries);
      await batch.commit();
    };
    const writeWide = async () => {
      const data = Array.from({ length: 950 }, (_, i): [string, StateValue | null] => [
        `k${i}`,
        r.chance(0.3) ? null : `w${index}-${i}`,
      ]);
      const entry: TestEntry = { point: { index: index++, term: 1 }, data, sessions: [] };
      applyModel(model, [entry]);
      const batch = store.batch();
      stage(batch, [entry]);
      await batch.commit();
    };
    await write(30);
    await writeWide();
    for (let round = 0; round < 3; round++) {
      const expected = new Map(model);
      const point = store.applied;
      const view = await store.view();
      assert.deepEqual(view.point, point);
      const got: Model = new Map();
      const pages: StatePage[] = [];
      const stream = (async () => {
        for await (
          const page of view.pages({
            pageBytes: r.between(100, 5000),
            rowsPerRead: r.between(1, 9),
          })
        ) {
          pages.push(page);
          for (const [table, key, value] of page.rows) {
            got.set(table + key, table === "s" ? decodeSession(value) : value);
          }
        }
      })();
      const writes = (async () => {
        for (let i = r.int(8); i > 0; i--) {
          // Now and then an entry too large for one commit (redone), over keys the view holds.
          if (r.chance(0.2)) await writeWide();
          else await write(r.between(1, 5));
        }
      })();
      await Promise.all([stream, writes]);
      view.close();
      assert.deepEqual(got, expected, `seed ${seed} round ${round}`);
      // The stream installs into another store as the same state.
      const other = new SimKv();
      const target = await StateStore.open(other);
      await target.install(pages);
      assert.deepEqual(target.applied, point);
      assert.deepEqual((await dump(target)).model, expected);
      assert.deepEqual(await leftovers(other, target), []);
    }
    assert.deepEqual((await dump(store)).model, model);
    assert.deepEqual(await leftovers(kv, store), [], `seed ${seed}: views' copies are collected`);
  }
});

Deno.test("state store: a crash at every commit point of an install leaves the old state or the new", async () => {
  const r = new Random(77);
  const source = await StateStore.open(new SimKv());
  const sourceEntries = randomEntries(r, 1, 55, 30);
  // And 750 more rows of 2 KB: several commits' worth.
  for (let e = 0; e < 5; e++) {
    const data: [string, StateValue][] = Array.from(
      { length: 150 },
      (_, i) => [`w${e}-${i}`, "y".repeat(2000)],
    );
    sourceEntries.push({ point: { index: 56 + e, term: 2 }, data, sessions: [] });
  }
  const batch = source.batch();
  stage(batch, sourceEntries);
  await batch.commit();
  const { model: next, pages } = await dump(source);
  const oldEntries = randomEntries(r, 1, 10);
  const old: Model = new Map();
  applyModel(old, oldEntries);
  const setup = async () => {
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    const batch = store.batch();
    stage(batch, oldEntries);
    await batch.commit();
    return { kv, store };
  };
  const { kv: clean, store: cleanStore } = await setup();
  const before = clean.commits;
  await cleanStore.install(pages);
  const total = clean.commits - before;
  assert.ok(total >= 4, `the install makes ${total} commits`);
  for (let n = 0; n <= total; n++) {
    const { kv, store } = await setup();
    kv.crashAfter(n);
    const result = await store.install(pages).then(() => "ok", (err) => err);
    if (n < total) assert.ok(crashed(result), `crash ${n}: ${result}`);
    else assert.equal(result, "ok");
    kv.crash();
    const kv2 = kv.reopen();
    const reopened = await StateStore.open(kv2);
    const switched = reopened.applied.index === 60;
    assert.equal(switched, n >= total, `crash ${n}`);
    assert.equal(reopened.applied.index, switched ? 60 : 10);
    assert.deepEqual((await dump(reopened)).model, switched ? next : old, `crash ${n}`);
    assert.deepEqual(await leftovers(kv2, reopened), [], `crash ${n}: leftovers`);
  }
});

Deno.test("state store: a crash at every commit point of garbage collection loses nothing and leaks nothing", async () => {
  const r = new Random(404);
  const source = await StateStore.open(new SimKv());
  const sourceBatch = source.batch();
  stage(sourceBatch, randomEntries(r, 1, 100, 10));
  await sourceBatch.commit();
  const { model: installed, pages } = await dump(source);
  const setup = async () => {
    const r = new Random(405);
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    const model: Model = new Map();
    let index = 1;
    const write = async (entries: TestEntry[]) => {
      applyModel(model, entries);
      index += entries.length;
      const batch = store.batch();
      stage(batch, entries);
      await batch.commit();
    };
    // A generation replaced by an install, then in the new one replaced large values
    // (parts) and a view's copies. The old generation has more keys than the batches after
    // the install delete on their way (GARBAGE_PER_COMMIT each), so collection has work left.
    for (let i = 0; i < 3; i++) await write(randomEntries(r, index, 10, 8, 200));
    for (let i = 0; i < 4; i++) {
      const data = Array.from({ length: 800 }, (_, k): [string, StateValue] => [`w${i}-${k}`, "x"]);
      await write([{ point: { index, term: 1 }, data, sessions: [] }]);
    }
    await store.install(pages);
    model.clear();
    for (const [k, v] of installed) model.set(k, v);
    index = 101;
    for (let i = 0; i < 3; i++) await write(randomEntries(r, index, 10, 8, 200));
    const view = await store.view();
    await write(randomEntries(r, index, 10, 8, 200));
    view.close();
    // Large values replaced, in the last batches (which can delete little garbage on their way).
    for (let round = 0; round < 2; round++) {
      await write([0, 1, 2, 3].map((i) => ({
        point: { index: index + i, term: 9 },
        data: [[`big${i}`, bigValue(r, 1)]],
        sessions: [],
      })));
    }
    return { kv, store, model };
  };
  const { kv: clean, store: cleanStore, model } = await setup();
  const start = clean.commits;
  while (await cleanStore.collectGarbage(300) > 0) { /* in slices */ }
  const total = clean.commits - start;
  assert.ok(total >= 5, `garbage collection takes ${total} commits`);
  for (let n = 0; n <= total; n++) {
    const { kv, store } = await setup();
    kv.crashAfter(n);
    const result = await (async () => {
      while (await store.collectGarbage(300) > 0) { /* until the crash */ }
    })().then(() => "ok", (err) => err);
    if (n < total) assert.ok(crashed(result), `crash ${n}: ${result}`);
    kv.crash();
    const kv2 = kv.reopen();
    const reopened = await StateStore.open(kv2);
    assert.equal(reopened.applied.index, cleanStore.applied.index);
    assert.deepEqual((await dump(reopened)).model, model, `crash ${n}`);
    assert.deepEqual(await leftovers(kv2, reopened), [], `crash ${n}: leftovers`);
  }
});

Deno.test("state store: an incomplete or inconsistent stream is refused, and the store is unchanged", async () => {
  const source = await StateStore.open(new SimKv());
  const batch = source.batch();
  stage(batch, randomEntries(new Random(5), 1, 40));
  await batch.commit();
  const { pages } = await dump(source);
  assert.ok(pages.length >= 3);
  const kv = new SimKv();
  const target = await StateStore.open(kv);
  const small = target.batch();
  small.put("mine", "1");
  small.endEntry({ index: 3, term: 1 });
  await small.commit();
  const wrong: [string, StatePage[]][] = [
    ["a page missing", [pages[0], ...pages.slice(2)]],
    ["cut short", pages.slice(0, -1)],
    ["a row altered", [
      { ...pages[0], rows: [["d", "k1", "forged"], ...pages[0].rows.slice(1)] },
      ...pages.slice(1),
    ]],
    ["a malformed row", [{ ...pages[0], rows: [["x", "k", "v"] as never] }, ...pages.slice(1)]],
  ];
  for (const [what, stream] of wrong) {
    await assert.rejects(target.install(stream), StateInstallError, what);
    assert.equal(target.applied.index, 3);
    assert.equal(await target.get("mine"), "1");
  }
  // A stream behind the store's applied point.
  const ahead = target.batch();
  ahead.put("mine", "2");
  ahead.endEntry({ index: 100, term: 2 });
  await ahead.commit();
  await assert.rejects(target.install(pages), /behind the applied 100/);
  assert.deepEqual(await leftovers(kv, target), []);
  assert.equal(await target.get("mine"), "2");
});

Deno.test("state store: an install in steps: page by page beside batches, switched with its point, or abandoned", async () => {
  const source = await StateStore.open(new SimKv());
  const sourceBatch = source.batch();
  stage(sourceBatch, randomEntries(new Random(9), 1, 60));
  await sourceBatch.commit();
  const { model, pages } = await dump(source);
  assert.ok(pages.length >= 4, `${pages.length} pages`);
  const kv = new SimKv();
  const target = await StateStore.open(kv);
  const meta = { index: 60, term: 2, membership: { voters: ["a"] }, membershipIndex: 7 };
  // A first install is superseded by a second; each page is written (and committed) alone.
  const first = await target.beginInstall({ point: meta });
  await first.write([pages[0]]);
  const install = await target.beginInstall({ point: meta });
  await assert.rejects(first.write([pages[1]]), /superseded/);
  let entry = 1;
  for (const page of pages) {
    const commits = kv.commits;
    await install.write([page]);
    assert.ok(kv.commits > commits, `page ${page.seq} was committed before write resolved`);
    // Batches go on meanwhile, on the state in use.
    const batch = target.batch();
    batch.put("mine", `${entry}`);
    batch.endEntry({ index: entry++, term: 1 });
    await batch.commit();
    assert.equal(install.complete, page.last !== undefined);
  }
  assert.equal(await target.get("mine"), `${entry - 1}`);
  await install.switch();
  assert.deepEqual(target.applied, meta, "the switch stores the given point, membership included");
  assert.deepEqual((await dump(target)).model, model);
  await assert.rejects(install.write([pages[0]]), /switched, abandoned or superseded/);
  assert.deepEqual(await leftovers(kv, target), []);
  // Pages of another point than the one given are refused; an abandoned install leaves nothing.
  const wrong = await target.beginInstall({ point: { index: 61, term: 2 } });
  await assert.rejects(wrong.write([pages[0]]), StateInstallError);
  const dropped = await target.beginInstall({ point: { index: 70, term: 2 } });
  await dropped.abandon();
  await assert.rejects(dropped.switch(), /abandoned/);
  await assert.rejects(
    target.beginInstall({ point: { index: 59, term: 2 } }),
    /behind the applied 60/,
  );
  assert.deepEqual(await leftovers(kv, target), []);
  await target.close();
  kv.close();
  assert.deepEqual(
    (await StateStore.open(kv.reopen())).applied,
    meta,
    "the point survives a reopen",
  );
});

Deno.test("state store: an entry too large for one commit is redone from a record; a crash at any point finishes it", async () => {
  const wide = (index: number, value: string): TestEntry => ({
    point: { index, term: 1 },
    data: Array.from({ length: 2500 }, (_, i): [string, StateValue | null] => [
      `wide${i}`,
      i % 7 === 0 ? null : `${value}${i}`,
    ]),
    sessions: [["c", { seq: index }]],
  });
  const r = new Random(21);
  const entries = [
    ...randomEntries(r, 1, 3),
    wide(4, "a"),
    ...randomEntries(r, 5, 3),
    wide(8, "b"),
    { point: { index: 9, term: 1 }, data: [["big0", bigValue(r, 1)]], sessions: [] } as TestEntry,
  ];
  const prefixes: Model[] = [new Map()];
  const model: Model = new Map();
  for (const e of entries) {
    applyModel(model, [e]);
    prefixes[e.point.index] = new Map(model);
  }
  const clean = new SimKv();
  const cleanStore = await StateStore.open(clean);
  const batch = cleanStore.batch();
  stage(batch, entries);
  await batch.commit();
  const total = clean.commits;
  assert.deepEqual((await dump(cleanStore)).model, model);
  assert.deepEqual(await leftovers(clean, cleanStore), []);
  const seen = new Set<number>();
  for (let n = 0; n <= total; n++) {
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    kv.crashAfter(n);
    const batch = store.batch();
    stage(batch, entries);
    // Reads during the redo see the whole entry.
    const reads = (async () => {
      for (let i = 0; i < 40; i++) {
        const value = await store.get("wide1").catch(() => "crashed");
        assert.ok([null, "a1", "b1", "crashed"].includes(value as string), `read ${value}`);
      }
    })();
    const result = await batch.commit().then(() => "ok", (err) => err);
    await reads;
    if (n < total) assert.ok(crashed(result), `crash ${n}: ${result}`);
    else assert.equal(result, "ok");
    kv.crash();
    const kv2 = kv.reopen();
    const reopened = await StateStore.open(kv2);
    const index = reopened.applied.index;
    seen.add(index);
    assert.ok(prefixes[index], `crash ${n}: applied ${index} is not an entry boundary`);
    assert.deepEqual((await dump(reopened)).model, prefixes[index], `crash ${n} at ${index}`);
    assert.deepEqual(await leftovers(kv2, reopened), [], `crash ${n}: leftovers`);
  }
  assert.ok(seen.has(4) && seen.has(8) && seen.has(9), `crashes stopped at ${[...seen]}`);
});

/** `kv`, calling `after` once each commit has resolved (before the committer goes on). */
function hooked(kv: KvLike, after: () => Promise<void>): KvLike {
  return {
    get: (key) => kv.get(key),
    getMany: ((keys: Deno.KvKey[]) => kv.getMany(keys)) as KvLike["getMany"],
    list: (selector, options) => kv.list(selector, options),
    close: () => kv.close(),
    atomic() {
      const op = kv.atomic();
      const wrapped: ReturnType<KvLike["atomic"]> = {
        check(...checks) {
          op.check(...checks);
          return this;
        },
        set(key, value) {
          op.set(key, value);
          return this;
        },
        delete(key) {
          op.delete(key);
          return this;
        },
        async commit() {
          const result = await op.commit();
          await after();
          return result;
        },
      };
      return wrapped;
    },
  };
}

Deno.test("state store: a view streamed between the commits of a redone entry stays at its point", async () => {
  let step = () => Promise.resolve();
  const store = await StateStore.open(hooked(new SimKv(), () => step()));
  const model: Model = new Map();
  const first: TestEntry = {
    point: { index: 1, term: 1 },
    data: Array.from({ length: 950 }, (_, i): [string, StateValue] => [`k${1000 + i}`, `a${i}`]),
    sessions: [],
  };
  applyModel(model, [first]);
  const batch = store.batch();
  stage(batch, [first]);
  await batch.commit();
  const view = await store.view();
  const got: Model = new Map();
  const pages = view.pages({ pageBytes: 1, rowsPerRead: 1 });
  const pull = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const next = await pages.next();
      if (next.done) return;
      for (const [table, key, value] of next.value.rows) got.set(table + key, value);
    }
  };
  // Between every two commits of the entry, the stream moves on a few rows.
  step = () => pull(3);
  const second: TestEntry = {
    point: { index: 2, term: 1 },
    data: Array.from({ length: 950 }, (_, i): [string, StateValue | null] => [
      `k${1000 + i}`,
      i % 2 ? null : `b${i}`,
    ]),
    sessions: [],
  };
  const next = store.batch();
  stage(next, [second]);
  await next.commit();
  step = () => Promise.resolve();
  await pull(Infinity);
  view.close();
  assert.ok(got.size > 0);
  assert.deepEqual(got, model);
});

Deno.test("state store: a key too long for Deno KV is refused when staged", () => {
  return StateStore.open(new SimKv()).then((store) => {
    assert.throws(() => store.batch().put("k".repeat(2100), "v"), StateLimitError);
    assert.throws(() => store.batch().setSession("\0".repeat(1100), 1), StateLimitError);
  });
});

Deno.test("state store: keys near the limit fill commits within every Deno KV limit", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  const batch = store.batch();
  const long = (i: number) => `${i}-${"é".repeat(900)}`; // ~1,800 bytes stored
  for (let i = 0; i < 200; i++) {
    batch.put(long(i), "v".repeat(3000));
    batch.setSession(long(i), { seq: i });
    batch.endEntry({ index: i + 1, term: 1 });
  }
  await batch.commit(); // SimKv refuses, as Deno KV does, a commit over any limit
  assert.ok(kv.commits > 5);
  assert.equal(await store.get(long(199)), "v".repeat(3000));
  const view = await store.view();
  const copy = await StateStore.open(new SimKv());
  await copy.install(view.pages());
  view.close();
  assert.deepEqual(await copy.session(long(7)), { seq: 7 });
});

Deno.test("state store: applied never decreases", async () => {
  const store = await StateStore.open(new SimKv());
  const batch = store.batch();
  batch.endEntry({ index: 5, term: 1 });
  assert.throws(() => batch.endEntry({ index: 5, term: 1 }), StateInvariantError);
  const rival = store.batch();
  rival.endEntry({ index: 4, term: 1 });
  await batch.commit();
  // Built when 0 was applied, committed after 5 was: refused before anything is written.
  await assert.rejects(rival.commit(), StateInvariantError);
  assert.equal(store.applied.index, 5);
  const staged = store.batch();
  staged.put("x", "1");
  await assert.rejects(staged.commit(), /after the last endEntry/);
});

Deno.test("state store: on a real Deno KV file, batches, a view and an install, across a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = new Random(3);
    const entries = randomEntries(r, 1, 50, 20);
    const model: Model = new Map();
    applyModel(model, entries);
    let kv = await Deno.openKv(`${dir}/a.kv`);
    let store = await StateStore.open(kv);
    const batch = store.batch();
    stage(batch, entries);
    await batch.commit();
    await store.close();
    kv.close();
    kv = await Deno.openKv(`${dir}/a.kv`);
    store = await StateStore.open(kv);
    assert.equal(store.applied.index, 50);
    const { model: stored, pages } = await dump(store);
    assert.deepEqual(stored, model);
    const other = await Deno.openKv(`${dir}/b.kv`);
    const target = await StateStore.open(other);
    await target.install(pages);
    assert.deepEqual((await dump(target)).model, model);
    assert.deepEqual(await leftovers(other, target), []);
    other.close();
    kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("state store: a state of format 1 opens and is written as 2 from its next commit; an unknown format is refused", async () => {
  const { StateLayout } = await import("./state_layout.ts");
  const { StorageCorruptionError } = await import("./storage_errors.ts");
  const kv = new SimKv();
  const layout = new StateLayout(kv, { where: "test", prefix: ["state"], codec: defaultCodec });
  const setFormat = async (format: number) => {
    const current = layout.decodeCurrent((await kv.get(["state", "current"])).value);
    await kv.atomic().set(["state", "current"], layout.encodeCurrent({ ...current, format }))
      .commit();
  };
  const formatNow = async () =>
    layout.decodeCurrent((await kv.get(["state", "current"])).value).format;
  let store = await StateStore.open(kv);
  let batch = store.batch();
  batch.put("k", "v");
  batch.endEntry({ index: 1, term: 1 });
  await batch.commit();
  await store.close();
  assert.equal(await formatNow(), 2);
  // Written by a distkit before values in the log: read as ever.
  await setFormat(1);
  store = await StateStore.open(kv);
  assert.equal(await store.get("k"), "v");
  batch = store.batch();
  batch.put("k", "w");
  batch.endEntry({ index: 2, term: 1 });
  await batch.commit();
  await store.close();
  assert.equal(await formatNow(), 2, "a commit writes the format this distkit writes");
  // Written by a later distkit: refused, saying what to do.
  await setFormat(3);
  await assert.rejects(StateStore.open(kv), (err) => {
    assert.ok(err instanceof StorageCorruptionError);
    assert.match(err.message, /format 3, which this distkit does not know .*1 and 2/);
    return true;
  });
});

Deno.test("state store: batches alone delete a replaced generation and views' copies, a slice at a time", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  let index = 1;
  const put = async (keys: string[]) => {
    const batch = store.batch();
    for (const key of keys) {
      batch.put(key, `v${index}`);
      batch.endEntry({ index: index++, term: 1 });
    }
    await batch.commit();
  };
  for (let b = 0; b < 5; b++) await put(Array.from({ length: 300 }, (_, i) => `old${b}-${i}`));
  const source = await StateStore.open(new SimKv());
  const sourceBatch = source.batch();
  sourceBatch.put("new", "1");
  sourceBatch.endEntry({ index: 5000, term: 2 });
  await sourceBatch.commit();
  await store.install((await dump(source)).pages);
  index = 5001;
  const view = await store.view();
  await put(Array.from({ length: 100 }, (_, i) => `copied${i}`));
  view.close();
  const gen = store.generation;
  // Nothing calls collectGarbage while a service runs: its batches must do it.
  let batches = 0;
  while (store.pendingGarbage > 0) {
    assert.ok(++batches <= 20, `garbage left after ${batches} batches: ${store.pendingGarbage}`);
    await put([`k${batches}`]);
  }
  const stray = (await allKeys(kv)).filter((k) =>
    !(k.length === 2 && k[1] === "current") && !(k[1] === gen && (k[2] === "d" || k[2] === "s"))
  );
  assert.deepEqual(stray, []);
  assert.equal(await store.get("new"), "1");
  assert.equal(await store.get("old0-1"), null);
});
