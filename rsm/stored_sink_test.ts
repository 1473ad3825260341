import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import { StateInstallError } from "../store/errors.ts";
import { storeSource } from "./stored_machine.ts";
import { StoreSink } from "./stored_sink.ts";

const meta = (index: number) => ({
  index,
  term: 3,
  membership: { voters: ["a", "b"], learners: [] },
  membershipIndex: 1,
});

/** A store with `n` keys (some values several pages long) at index 40, term 3. */
async function source(n: number): Promise<StateStore> {
  const store = await StateStore.open(new SimKv());
  const batch = store.batch();
  for (let i = 0; i < n; i++) batch.put(`k${i}`, i % 34 === 0 ? "z".repeat(70_000) : `v${i}`);
  batch.setSession("once/c", { seq: 9 });
  batch.endEntry({ index: 40, term: 3 });
  await batch.commit();
  return store;
}

/** The stream the leader sends, cut into chunks of random sizes up to `most`. */
async function* chunks(store: StateStore, r: Random, most: number): AsyncGenerator<Uint8Array> {
  const stream = await storeSource(store).open();
  let carry = new Uint8Array();
  for await (const page of stream.pages()) {
    const all = new Uint8Array(carry.length + page.length);
    all.set(carry);
    all.set(page, carry.length);
    let at = 0;
    while (all.length - at > most) {
      const n = r.between(1, most);
      yield all.slice(at, at + n);
      at += n;
    }
    carry = all.slice(at);
  }
  if (carry.length > 0) yield carry;
  stream.close();
}

Deno.test("store sink: chunks cut anywhere install the same state, holding a chunk and one page at most", async () => {
  const from = await source(400);
  const r = new Random(19);
  let largestFrame = 0;
  const framed = await storeSource(from).open();
  let total = 0;
  for await (const page of framed.pages()) {
    largestFrame = Math.max(largestFrame, page.length);
    total += page.length;
  }
  framed.close();
  for (const most of [16, 512, 4096, 70_000]) {
    const kv = new SimKv();
    const to = await StateStore.open(kv);
    const sink = new StoreSink(to);
    await sink.begin(meta(40));
    let biggest = 0;
    for await (const chunk of chunks(from, r, most)) {
      biggest = Math.max(biggest, chunk.length);
      await sink.write(chunk);
    }
    assert.equal(to.applied.index, 0, "nothing switched before finish");
    await sink.finish({ after: 0, signal: new AbortController().signal });
    assert.deepEqual(to.applied, meta(40));
    assert.deepEqual(sink.installed(), meta(40), "the store says which snapshot it holds");
    for (const i of [0, 17, 34, 399]) assert.equal(await to.get(`k${i}`), await from.get(`k${i}`));
    assert.deepEqual(await to.session("once/c"), { seq: 9 });
    // The bound: one chunk plus one page carried over, far below the state.
    assert.ok(
      sink.peakBytes <= biggest + largestFrame,
      `${sink.peakBytes} bytes held (chunks ${most})`,
    );
    assert.ok(sink.peakBytes < total / 2, `${sink.peakBytes} of ${total} bytes held`);
    const batch = to.batch();
    batch.put("k0", "next");
    batch.endEntry({ index: 41, term: 3 });
    await batch.commit();
    assert.equal(sink.installed(), undefined, "the state moved on from the snapshot");
  }
});

Deno.test("store sink: a restart of the stream, a cut stream and a stalled service", async () => {
  const from = await source(60);
  const r = new Random(5);
  const to = await StateStore.open(new SimKv());
  const sink = new StoreSink(to);
  // A stream cut midway, then begun again (the sender restarted): only the second counts.
  await sink.begin(meta(40));
  let n = 0;
  for await (const chunk of chunks(from, r, 500)) if (n++ < 5) await sink.write(chunk);
  await sink.begin(meta(40));
  const all: Uint8Array[] = [];
  for await (const chunk of chunks(from, r, 500)) all.push(chunk);
  for (const chunk of all.slice(0, -1)) await sink.write(chunk);
  await assert.rejects(
    sink.finish({ after: 0, signal: new AbortController().signal }),
    StateInstallError,
    "a stream that ends inside a page or before its last page is refused",
  );
  await sink.begin(meta(40));
  for (const chunk of all) await sink.write(chunk);
  // The switch waits for the service to have stored what it was handed (index 3 here): each
  // commit short of it is a chance to switch too early, taken and checked one by one.
  const stop = new AbortController();
  const waiting = sink.finish({ after: 3, signal: stop.signal });
  let switched = false;
  waiting.then(() => (switched = true), () => {});
  for (let i = 1; i <= 3; i++) {
    assert.equal(switched, false, `switched with the service's store at ${i - 1}, before 3`);
    const batch = to.batch();
    batch.put("old", `${i}`);
    batch.endEntry({ index: i, term: 1 });
    await batch.commit();
    if (i === 3) break;
    assert.equal(to.applied.index, i, `the store switched after entry ${i}, before 3`);
    assert.equal(await to.get("old"), `${i}`, "the service's own state until the switch");
  }
  await waiting;
  assert.equal(to.applied.index, 40);
  assert.equal(await to.get("old"), null, "the state is the stream's");
  assert.equal(await to.get("k59"), "v59");
  // A node that stops while the switch waits: it never happens.
  const other = await StateStore.open(new SimKv());
  const late = new StoreSink(other);
  await late.begin(meta(40));
  for (const chunk of all) await late.write(chunk);
  const halted = new AbortController();
  const pending = late.finish({ after: 1, signal: halted.signal });
  halted.abort(new Error("stopped"));
  await assert.rejects(pending, /stopped/);
  const b = other.batch();
  b.put("x", "1");
  b.endEntry({ index: 1, term: 1 });
  await b.commit();
  assert.equal(other.applied.index, 1, "no switch after the node stopped");
  // Bytes that are not pages.
  const junk = new StoreSink(await StateStore.open(new SimKv()));
  await junk.begin(meta(40));
  await assert.rejects(junk.write(Uint8Array.of(0, 0, 0, 2, 0xc1, 0xc1)), StateInstallError);
});
