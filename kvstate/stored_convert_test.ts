import assert from "node:assert/strict";
import { streamOf } from "../rsm/test_util.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import { KvStateMachine } from "./state.ts";
import { StoredKvState } from "./stored_state.ts";
import {
  anySnapshotPages,
  isMemorySnapshot,
  memorySnapshotOfPages,
  memoryStatePages,
} from "./stored_convert.ts";

const KEYS = 1500;

function memoryState(): KvStateMachine {
  const kv = new KvStateMachine();
  for (let i = 0; i < KEYS; i++) {
    kv.apply({
      client: `c${i % 7}`,
      seq: i + 1,
      write: { type: "put", key: `k${i}`, value: `${i}` },
    });
  }
  kv.apply({ client: "c1", seq: KEYS + 1, write: { type: "delete", key: "k3" } });
  return kv;
}

Deno.test("stored convert: memory → stored → memory keeps keys and sessions", async () => {
  const before = memoryState();
  const bytes = before.snapshot();
  assert.ok(isMemorySnapshot(bytes));
  const store = await StateStore.open(new SimKv());
  await store.install(memoryStatePages(bytes, { index: 9, term: 2 }));
  const stored = await StoredKvState.open(store);
  assert.equal(stored.size, KEYS - 1);
  const stream = await streamOf(store);
  assert.ok(!isMemorySnapshot(stream));
  const after = new KvStateMachine();
  after.restore(memorySnapshotOfPages(stream));
  assert.equal(after.size, KEYS - 1);
  for (const i of [0, 3, 700, KEYS - 1]) assert.equal(after.get(`k${i}`), before.get(`k${i}`));
  // Every session's last write is answered as a retry, with the result it had.
  const retry = { client: "c1", seq: KEYS + 1, write: { type: "delete" as const, key: "k3" } };
  assert.deepEqual(after.applied(retry), before.applied(retry));
  assert.deepEqual(await stored.applied(retry), before.applied(retry));
  // A stored follower takes either form.
  const again = await StateStore.open(new SimKv());
  await again.install(anySnapshotPages(stream, { index: 9, term: 2 }));
  assert.equal(await again.get("k700"), "700");
  await store.close();
  await again.close();
});

Deno.test("stored convert: a cut stream or a foreign snapshot is refused", async () => {
  const store = await StateStore.open(new SimKv());
  await store.install(memoryStatePages(memoryState().snapshot(), { index: 9, term: 2 }));
  const stream = await streamOf(store);
  assert.throws(
    () => memorySnapshotOfPages(stream.subarray(0, stream.length - 10)),
    /ends inside a page/,
  );
  assert.throws(
    () => [...memoryStatePages(new Uint8Array([0x82, 1, 2]), { index: 1, term: 1 })],
    /not a KV snapshot/,
  );
  await store.close();
});
