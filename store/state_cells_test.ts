// Values whose row would spill out of its SQLite cell are cut into cell-sized parts
// (`CELL_BYTES` in state_layout.ts): what that stores, what it costs on disk, and the reads
// and views that meet it while it changes.
import assert from "node:assert/strict";
import { SimKv } from "./sim_kv.ts";
import type { KvAtomicLike, KvLike, KvListIteratorLike } from "./kv_like.ts";
import { StateStore } from "./state_store.ts";
import { CELL_BYTES, CELL_CUT_MAX } from "./state_layout.ts";
import { encodedKeyLength } from "./kv_key.ts";

const KEY = "k000000000000001";

function value(size: number, fill: number): Uint8Array {
  return new Uint8Array(size).fill(fill);
}

async function put(store: StateStore, index: number, key: string, v: Uint8Array | string) {
  const batch = store.batch();
  batch.put(key, v);
  batch.endEntry({ index, term: 1 });
  await batch.commit();
}

async function keysOf(kv: KvLike): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: ["state"] })) out.push(e.key);
  return out;
}

Deno.test("state cells: a 1 KiB value is cut into parts that each fit a cell, written in the row's one commit", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  const before = kv.commits;
  await put(store, 1, KEY, value(1024, 7));
  assert.equal(kv.commits - before, 1, "the parts share the row's commit");
  const parts = (await keysOf(kv)).filter((k) => k[2] === "p");
  assert.equal(parts.length, 2);
  for (const k of parts) {
    const part = (await kv.get<Uint8Array>(k)).value!;
    assert.ok(encodedKeyLength(k) + part.length <= CELL_BYTES, `part ${String(k)} fits its cell`);
  }
  const row = (await kv.get<Uint8Array>(["state", store.generation, "d", KEY])).value!;
  assert.ok(row.length < 64, "the row is a pointer");
  assert.deepEqual(await store.get(KEY), value(1024, 7));
  // Small values and values over the cut range stay inline, one row each.
  await put(store, 2, "small", value(800, 1));
  await put(store, 3, "large", value(CELL_CUT_MAX + 1, 2));
  assert.equal((await keysOf(kv)).filter((k) => k[2] === "p").length, 2);
  await store.close();
  kv.close();
  const again = await StateStore.open(kv.reopen());
  assert.deepEqual(await again.get(KEY), value(1024, 7));
  assert.equal(await again.get("missing"), null);
});

Deno.test("state cells: overwriting or deleting a cut value deletes its parts in the same commit, leaving no garbage", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  for (let i = 1; i <= 20; i++) await put(store, i, KEY, "ü".repeat(300 + 80 * i));
  assert.equal(store.pendingGarbage, 0);
  const live = (await keysOf(kv)).filter((k) => k[2] === "p" || k[2] === "g");
  const row = (await kv.get<Uint8Array>(["state", store.generation, "d", KEY])).value!;
  const id = new DataView(row.buffer, row.byteOffset + 5).getFloat64(0);
  assert.ok(
    live.length > 0 && live.every((k) => k[2] === "p" && k[3] === id),
    "only the live parts",
  );
  assert.equal(await store.get(KEY), "ü".repeat(1900));
  const batch = store.batch();
  batch.delete(KEY);
  batch.endEntry({ index: 21, term: 1 });
  await batch.commit();
  assert.deepEqual((await keysOf(kv)).filter((k) => k[2] === "p" || k[2] === "g"), []);
  assert.equal(store.pendingGarbage, 0);
});

Deno.test("state cells: a view open across an overwrite reads the old parts, collected once it closes", async () => {
  const kv = new SimKv();
  const store = await StateStore.open(kv);
  await put(store, 1, KEY, value(2000, 1));
  await put(store, 2, "other", "x");
  const view = await store.view();
  await put(store, 3, KEY, value(3000, 2));
  const rows = [];
  for await (const page of view.pages({ pageBytes: 512, rowsPerRead: 1 })) rows.push(...page.rows);
  assert.deepEqual(rows.find((r) => r[1] === KEY)?.[2], value(2000, 1));
  view.close();
  assert.ok(store.pendingGarbage > 0);
  while (await store.collectGarbage(1000) > 0) { /* all of it */ }
  const parts = (await keysOf(kv)).filter((k) => k[2] === "p" || k[2] === "g" || k[2] === "v");
  const row = (await kv.get<Uint8Array>(["state", store.generation, "d", KEY])).value!;
  const id = new DataView(row.buffer, row.byteOffset + 5).getFloat64(0);
  assert.ok(parts.length > 0 && parts.every((k) => k[2] === "p" && k[3] === id), String(parts));
  assert.deepEqual(await store.get(KEY), value(3000, 2));
});

/** A database whose commits, once applied, wait for `release` before their caller hears. */
class SlowAcks implements KvLike {
  readonly inner: SimKv;
  hold = false;
  #waiting: (() => void)[] = [];
  listed = 0;
  constructor(inner: SimKv) {
    this.inner = inner;
  }
  release(): void {
    for (const w of this.#waiting.splice(0)) w();
  }
  get applied(): number {
    return this.#waiting.length;
  }
  get<T = unknown>(key: Deno.KvKey) {
    return this.inner.get<T>(key);
  }
  getMany<T extends readonly unknown[]>(keys: readonly [...{ [K in keyof T]: Deno.KvKey }]) {
    return this.inner.getMany<T>(keys);
  }
  /** While set, a list waits for it before it reads anything. */
  gate: Promise<void> | undefined;
  list<T = unknown>(s: Deno.KvListSelector, o?: Deno.KvListOptions): KvListIteratorLike<T> {
    this.listed++;
    const gate = this.gate;
    if (!gate) return this.inner.list<T>(s, o);
    let inner: KvListIteratorLike<T> | undefined;
    const open = async () => {
      await gate;
      return inner ??= this.inner.list<T>(s, o);
    };
    const it: KvListIteratorLike<T> = {
      get cursor() {
        return inner?.cursor ?? "";
      },
      next: async () => (await open()).next(),
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
  atomic(): KvAtomicLike {
    const op = this.inner.atomic();
    const outer: KvAtomicLike = {
      check: (...c) => (op.check(...c), outer),
      set: (k, v) => (op.set(k, v), outer),
      delete: (k) => (op.delete(k), outer),
      commit: async () => {
        const result = await op.commit();
        if (this.hold) await new Promise<void>((resolve) => this.#waiting.push(resolve));
        return result;
      },
    };
    return outer;
  }
  close(): void {
    this.inner.close();
  }
}

Deno.test("state cells: a read that finds a cut value's parts gone under it, before the store hears of the commit, reads again", async () => {
  const slow = new SlowAcks(new SimKv());
  const store = await StateStore.open(slow, { cacheBytes: 0 });
  await put(store, 1, KEY, value(1500, 1));
  // A read takes the old row, then waits to list its parts...
  let open!: () => void;
  slow.gate = new Promise<void>((resolve) => open = resolve);
  const listed = slow.listed;
  const reading = store.get(KEY);
  for (let turns = 0; slow.listed === listed; turns++) {
    assert.ok(turns < 1000, "the read lists the value's parts");
    await new Promise((r) => setTimeout(r, 0));
  }
  slow.gate = undefined;
  // ...while an overwrite commits (the old parts deleted with it) and the store has not heard.
  slow.hold = true;
  const batch = store.batch();
  batch.put(KEY, value(1500, 2));
  batch.endEntry({ index: 2, term: 1 });
  const committing = batch.commit();
  for (let turns = 0; slow.applied === 0; turns++) {
    assert.ok(turns < 1000, "the overwrite reaches the database");
    await new Promise((r) => setTimeout(r, 0));
  }
  open();
  assert.deepEqual(await reading, value(1500, 2), "the committed value, not a corruption error");
  slow.hold = false;
  slow.release();
  await committing;
  assert.deepEqual(await store.get(KEY), value(1500, 2));
});

Deno.test("state cells: on a real Deno KV file, 1 KiB values take under half the disk they took as one row each", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kv = await Deno.openKv(`${dir}/s.kv`);
    const store = await StateStore.open(kv);
    const n = 3000;
    for (let i = 0; i < n; i += 300) {
      // A put an entry, as the KV service applies them.
      const batch = store.batch();
      for (let j = i; j < i + 300; j++) {
        batch.put(`k${String(j).padStart(15, "0")}`, value(1024, j));
        batch.endEntry({ index: j + 1, term: 1 });
      }
      await batch.commit();
    }
    assert.deepEqual(await store.get(`k${String(17).padStart(15, "0")}`), value(1024, 17));
    await store.close();
    kv.close();
    // One row of a 1 KiB value spills into a 4 KiB overflow page of its own: ≈ 4.7 KiB a value.
    const bytes = (await Deno.stat(`${dir}/s.kv`)).size;
    let wal = 0;
    try {
      wal = (await Deno.stat(`${dir}/s.kv-wal`)).size;
    } catch { /* checkpointed on close */ }
    const perValue = (bytes + wal) / n;
    assert.ok(perValue < 2048, `${perValue.toFixed(0)} bytes of file per 1 KiB value`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A database that counts reads by kind. */
class CountingKv extends SlowAcks {
  getManys = 0;
  override getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ) {
    this.getManys++;
    return super.getMany<T>(keys);
  }
}

Deno.test("state cells: a stream reads cut values' parts many to a read, in write order or not, and finds a missing part", async () => {
  for (const order of ["written in key order", "written in another order"]) {
    const kv = new CountingKv(new SimKv());
    const store = await StateStore.open(kv);
    const n = 600;
    const keyOf = (j: number) =>
      `k${String(order === "written in key order" ? j : (j * 7919) % n).padStart(6, "0")}`;
    const batch = store.batch();
    for (let j = 0; j < n; j++) {
      batch.put(keyOf(j), value(1500, j));
      batch.endEntry({ index: j + 1, term: 1 });
    }
    await batch.commit();
    const view = await store.view();
    const [lists, getManys] = [kv.listed, kv.getManys];
    const got = new Map<string, unknown>();
    for await (const page of view.pages({ rowsPerRead: 200 })) {
      for (const [, key, v] of page.rows) got.set(key, v);
    }
    view.close();
    const reads = kv.listed - lists + kv.getManys - getManys;
    assert.equal(got.size, n);
    for (let j = 0; j < n; j++) assert.deepEqual(got.get(keyOf(j)), value(1500, j), keyOf(j));
    // One read per value (as before) would be 600; ten part keys a read at most 600 × 2 / 10.
    assert.ok(reads <= 130, `${order}: ${reads} reads for ${n} values`);
  }
  // A part gone is found (the value's checksum and count are checked).
  const sim = new SimKv();
  const store = await StateStore.open(sim);
  await put(store, 1, KEY, value(2000, 9));
  const part = (await keysOf(sim)).find((k) => k[2] === "p")!;
  const op = sim.atomic();
  op.delete(part);
  await op.commit();
  const view = await store.view();
  await assert.rejects(async () => {
    for await (const _ of view.pages()) { /* until it fails */ }
  }, /missing part|parts/);
  view.close();
});
