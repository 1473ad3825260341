import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { simulate } from "../net/sim/simulate.ts";
import { delay } from "../net/async.ts";
import type { KvLike } from "./kv_like.ts";
import { SimKv, SimKvCrashedError } from "./sim_kv.ts";
import { compareKvKeys } from "./kv_key.ts";

/** Collects a list's keys. */
async function keys(kv: KvLike, selector: Deno.KvListSelector, options?: Deno.KvListOptions) {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list(selector, options)) out.push(e.key);
  return out;
}

function randomPart(r: Random): Deno.KvKeyPart {
  switch (r.int(6)) {
    case 0:
      return Uint8Array.from({ length: r.int(4) }, () => r.int(3) * 127);
    case 1:
      return ["", "a", "a\0", "ab", "b", "é", "\u{1f600}"][r.int(7)];
    case 2:
      return BigInt(r.between(-300, 300)) * (r.chance(0.2) ? 2n ** 70n : 1n);
    case 3:
      return [-Infinity, -1e300, -2.5, -1, -0, 0, 0.5, 1, 3, 1e300, Infinity, NaN][r.int(12)];
    case 4:
      return r.chance(0.5);
    default:
      return r.between(-5, 5);
  }
}

function randomKey(r: Random): Deno.KvKey {
  return Array.from({ length: r.between(1, 3) }, () => randomPart(r));
}

Deno.test("sim kv: keys in Deno KV's order, the same as a real database lists them", async () => {
  const real = await Deno.openKv(":memory:");
  const sim = new SimKv();
  const r = new Random(19);
  for (let i = 0; i < 300; i++) {
    const key = randomKey(r);
    for (const kv of [real, sim] as KvLike[]) await kv.atomic().set(key, Uint8Array.of(i)).commit();
  }
  const all = await keys(sim, { prefix: [] });
  assert.deepEqual(all, await keys(real, { prefix: [] }));
  assert.ok(all.length > 100);
  for (let i = 1; i < all.length; i++) assert.ok(compareKvKeys(all[i - 1], all[i]) < 0);
  // Ranges and prefixes select the same keys.
  for (let i = 0; i < 30; i++) {
    const [a, b] = [randomKey(r), randomKey(r)].sort(compareKvKeys);
    assert.deepEqual(await keys(sim, { start: a, end: b }), await keys(real, { start: a, end: b }));
    const prefix = randomKey(r).slice(0, 1);
    assert.deepEqual(await keys(sim, { prefix }), await keys(real, { prefix }));
    assert.deepEqual(
      await keys(sim, { prefix }, { reverse: true }),
      await keys(real, { prefix }, { reverse: true }),
    );
  }
  real.close();
});

/** A commit's outcome: ok, check failed, or the error's message. */
async function outcome(kv: KvLike, build: (op: ReturnType<KvLike["atomic"]>) => void) {
  const op = kv.atomic();
  build(op);
  try {
    return (await op.commit()).ok ? "ok" : "check failed";
  } catch (err) {
    assert.ok(err instanceof TypeError, `${err}`);
    return err.message;
  }
}

Deno.test("sim kv: a commit over a limit is refused with Deno KV's error, and applies nothing", async () => {
  const real = await Deno.openKv(":memory:");
  const sim = new SimKv();
  const bytes = (n: number) => new Uint8Array(n);
  const cases: [string, (op: ReturnType<KvLike["atomic"]>) => void][] = [
    ["value at limit", (op) => op.set(["v"], bytes(65536))],
    ["value over", (op) => op.set(["v"], bytes(65537))],
    ["key at limit", (op) => op.set(["k", "x".repeat(2042)], bytes(1))],
    ["key over", (op) => op.set(["k", "x".repeat(2043)], bytes(1))],
    ["1000 mutations", (op) => Array.from({ length: 1000 }, (_, i) => op.set(["m", i], bytes(1)))],
    ["1001 mutations", (op) => Array.from({ length: 1001 }, (_, i) => op.delete(["m", i]))],
    ["total at limit", (op) => {
      for (let i = 0; i < 12; i++) op.set(["n", "", i], bytes(65536));
      op.set(["n", "", 99], bytes(32404));
    }],
    ["total over", (op) => {
      for (let i = 0; i < 12; i++) op.set(["n", "", i], bytes(65536));
      op.set(["n", "", 99], bytes(32405));
    }],
    ["deletes count their keys once", (op) => {
      for (let i = 0; i < 700; i++) op.delete(["d", "x".repeat(1000), i]);
    }],
    ["deletes over", (op) => {
      for (let i = 0; i < 850; i++) op.delete(["d", "x".repeat(1000), i]);
    }],
    ["written keys", (op) => {
      for (let i = 0; i < 81; i++) op.set(["d", "x".repeat(1000), i], bytes(0));
    }],
    ["100 checks", (op) => {
      for (let i = 0; i < 100; i++) op.check({ key: ["c", i], versionstamp: null });
    }],
    ["101 checks", (op) => {
      for (let i = 0; i < 101; i++) op.check({ key: ["c", i], versionstamp: null });
    }],
    ["failed check", (op) => op.check({ key: ["v"], versionstamp: null }).set(["w"], bytes(1))],
  ];
  for (const [name, build] of cases) {
    const want = await outcome(real, build);
    assert.equal(await outcome(sim, build), want, name);
  }
  // What was refused left nothing behind; what passed is there.
  assert.deepEqual(await keys(sim, { prefix: [] }), await keys(real, { prefix: [] }));
  await assert.rejects(sim.getMany(Array.from({ length: 11 }, (_, i) => ["m", i])), TypeError);
  await assert.rejects(keys(sim, { prefix: ["m"] }, { batchSize: 1001 }), /Too many entries/);
  assert.throws(() => sim.list({ prefix: ["m"], start: ["a"] }), /not in the keyspace/);
  real.close();
});

Deno.test("sim kv: paging with limit and cursor covers a list once, forward and reversed", async () => {
  const kv = new SimKv();
  for (let i = 0; i < 57; i++) await kv.atomic().set(["p", i], Uint8Array.of(i)).commit();
  await kv.atomic().set(["p"], Uint8Array.of(0)).set(["q", 0], Uint8Array.of(0)).commit();
  for (const reverse of [false, true]) {
    const seen: Deno.KvKey[] = [];
    let cursor: string | undefined;
    for (;;) {
      const it = kv.list({ prefix: ["p"] }, { limit: 10, cursor, reverse, batchSize: 3 });
      let n = 0;
      for await (const e of it) {
        seen.push(e.key);
        n++;
      }
      if (n < 10) break;
      cursor = it.cursor;
    }
    const want = Array.from({ length: 57 }, (_, i) => ["p", i]);
    assert.deepEqual(seen, reverse ? want.reverse() : want);
  }
});

Deno.test("sim kv: a list reads a batch at a time, so it sees commits made between batches", async () => {
  const kv = new SimKv();
  for (let i = 0; i < 10; i++) await kv.atomic().set(["p", i], Uint8Array.of(i)).commit();
  const seen: number[] = [];
  for await (const e of kv.list<Uint8Array>({ prefix: ["p"] }, { batchSize: 4 })) {
    seen.push(e.key[1] as number);
    // Within a batch: a point-in-time read. The write to 9 lands before the third batch.
    if (seen.length === 1) await kv.atomic().delete(["p", 2]).delete(["p", 9]).commit();
  }
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

Deno.test("sim kv: checks compare versionstamps; a failed check applies nothing", async () => {
  const kv = new SimKv();
  const first = await kv.atomic().set(["a"], Uint8Array.of(1)).commit();
  assert.ok(first.ok);
  const stale = await kv.atomic().check({ key: ["a"], versionstamp: null })
    .set(["b"], Uint8Array.of(2)).commit();
  assert.deepEqual(stale, { ok: false });
  assert.equal((await kv.get(["b"])).value, null);
  const ok = await kv.atomic().check({ key: ["a"], versionstamp: first.versionstamp })
    .set(["b"], Uint8Array.of(2)).commit();
  assert.ok(ok.ok && ok.versionstamp > first.versionstamp && ok.versionstamp.length === 20);
  assert.equal((await kv.get(["b"])).versionstamp, ok.versionstamp);
});

Deno.test("sim kv: a value read or written is a copy", async () => {
  const kv = new SimKv();
  const value = Uint8Array.of(1, 2);
  await kv.atomic().set(["a"], value).commit();
  value[0] = 9;
  const read = (await kv.get<Uint8Array>(["a"])).value!;
  read[1] = 9;
  assert.deepEqual((await kv.get(["a"])).value, Uint8Array.of(1, 2));
  await assert.rejects(kv.atomic().set(["s"], "text").commit(), /Uint8Array values only/);
});

Deno.test("sim kv: a crash loses the commits in flight, keeps the resolved ones, kills the handle", async () => {
  const kv = new SimKv();
  await kv.atomic().set(["a"], Uint8Array.of(1)).commit();
  const b = kv.atomic().set(["b"], Uint8Array.of(2)).commit();
  const c = kv.atomic().set(["c"], Uint8Array.of(3)).commit();
  assert.equal(kv.pendingCommits, 2);
  kv.crash();
  await assert.rejects(b, SimKvCrashedError);
  await assert.rejects(c, SimKvCrashedError);
  await assert.rejects(kv.get(["a"]), SimKvCrashedError);
  await assert.rejects(kv.atomic().set(["d"], Uint8Array.of(4)).commit(), SimKvCrashedError);
  const after = kv.reopen();
  assert.deepEqual(await keys(after, { prefix: [] }), [["a"]]);
  assert.throws(() => after.reopen(), /close or crash/);
});

Deno.test("sim kv: a crash may keep a prefix of the commits in flight, in order", async () => {
  for (let keep = 0; keep <= 3; keep++) {
    const kv = new SimKv();
    const commits = [1, 2, 3].map((i) => kv.atomic().set(["k", i], Uint8Array.of(i)).commit());
    kv.crash({ keep });
    for (const c of commits) await assert.rejects(c, SimKvCrashedError);
    const want = [1, 2, 3].slice(0, keep).map((i) => ["k", i]);
    assert.deepEqual(await keys(kv.reopen(), { prefix: ["k"] }), want);
  }
});

Deno.test("sim kv: crashAfter(n) lets n commits resolve and loses the next", async () => {
  const kv = new SimKv();
  kv.crashAfter(2);
  const results = await Promise.allSettled(
    [1, 2, 3, 4].map((i) => kv.atomic().set(["k", i], Uint8Array.of(i)).commit()),
  );
  assert.deepEqual(results.map((r) => r.status), [
    "fulfilled",
    "fulfilled",
    "rejected",
    "rejected",
  ]);
  const after = kv.reopen();
  assert.deepEqual(await keys(after, { prefix: ["k"] }), [["k", 1], ["k", 2]]);
  assert.equal(after.commits, 2);
});

Deno.test("sim kv: lose rolls back resolved commits (damage beyond the contract)", async () => {
  const kv = new SimKv();
  await kv.atomic().set(["a"], Uint8Array.of(1)).commit();
  await kv.atomic().set(["a"], Uint8Array.of(2)).set(["b"], Uint8Array.of(2)).commit();
  await kv.atomic().delete(["a"]).commit();
  kv.crash({ lose: 2 });
  const after = kv.reopen();
  assert.deepEqual((await after.get(["a"])).value, Uint8Array.of(1));
  assert.equal((await after.get(["b"])).value, null);
});

Deno.test("sim kv: with a clock, a commit takes virtual time, and a crash at any moment keeps a prefix", async () => {
  await simulate(async ({ clock, random }) => {
    for (let round = 0; round < 20; round++) {
      const kv = new SimKv({ clock, commitMs: 2 });
      const commits = [0, 1, 2, 3, 4].map((i) =>
        kv.atomic().set(["k", i], Uint8Array.of(i)).commit()
      );
      const settled = commits.map((c) => c.then(() => true, () => false));
      await delay(random.int(12), { clock });
      kv.crash({ keep: random.int(kv.pendingCommits + 1) });
      const resolved = (await Promise.all(settled)).filter(Boolean).length;
      const stored = (await keys(kv.reopen(), { prefix: ["k"] })).map((k) => k[1]);
      assert.deepEqual(stored, [0, 1, 2, 3, 4].slice(0, stored.length));
      assert.ok(stored.length >= resolved);
    }
  }, { seed: 7 });
});

Deno.test("sim kv: Deno.Kv is a KvLike", async () => {
  const kv: KvLike = await Deno.openKv(":memory:");
  await kv.atomic().set(["x"], Uint8Array.of(1)).commit();
  assert.deepEqual((await kv.get(["x"])).value, Uint8Array.of(1));
  kv.close();
});

Deno.test("sim kv: a copy holds what the database holds, and the two go on apart", async () => {
  const kv = new SimKv();
  await kv.atomic().set(["a"], Uint8Array.of(1)).set(["b"], Uint8Array.of(2)).commit();
  const copy = kv.copy();
  await kv.atomic().set(["a"], Uint8Array.of(9)).delete(["b"]).commit();
  await copy.atomic().set(["c"], Uint8Array.of(3)).commit();
  assert.deepEqual((await copy.get(["a"])).value, Uint8Array.of(1));
  assert.deepEqual((await copy.get(["b"])).value, Uint8Array.of(2));
  assert.deepEqual((await kv.get(["a"])).value, Uint8Array.of(9));
  assert.equal((await kv.get(["c"])).value, null);
  // Crashing one leaves the other as it is.
  kv.crash();
  assert.deepEqual((await copy.get(["c"])).value, Uint8Array.of(3));
  copy.close();
});
