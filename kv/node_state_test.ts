import assert from "node:assert/strict";
import { MemoryStorage } from "../raft/storage.ts";
import { SimKv, SimKvCrashedError } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import { streamOf } from "../rsm/test_util.ts";
import { StateStoreFailedError } from "../store/errors.ts";
import { KvStateMachine } from "../kvstate/state.ts";
import { StoredKvState } from "../kvstate/stored_state.ts";
import { openNodeState, STATE_KIND_KEY, StateKindError } from "./node_state.ts";

const MEMBERS = { voters: ["0"], learners: [] };
const decoder = new TextDecoder();

/** A memory folder from before the record: Raft state, a snapshot of `keys` keys at index 40. */
async function legacyFolder(keys: number) {
  const kv = new SimKv();
  // Raft's own keys are what tells an old folder from a new one.
  await kv.atomic().set(["raft", "hs"], new Uint8Array([1])).commit();
  const machine = new KvStateMachine();
  for (let i = 0; i < keys; i++) {
    machine.apply({
      client: `c${i % 3}`,
      seq: i + 1,
      write: { type: "put", key: `k${i}`, value: `v${i}` },
    });
  }
  machine.apply({ client: "c0", seq: keys + 1, write: { type: "append", key: "k0", value: "+" } });
  const storage = new MemoryStorage();
  await storage.save({
    hardState: { term: 3, vote: "0", commit: 41 },
    entries: [{ index: 41, term: 3, kind: "command", command: "later" }],
    snapshot: { meta: { index: 40, term: 3, membership: MEMBERS }, data: machine.snapshot() },
    resetLog: false,
  });
  return { kv, storage, machine };
}

async function recorded(kv: SimKv): Promise<string | null> {
  const value = (await kv.get<Uint8Array>(STATE_KIND_KEY)).value;
  return value === null ? null : decoder.decode(value);
}

/** The stored state equals `machine`'s: keys, count, and each session's last write. */
async function assertSameState(store: StateStore, machine: KvStateMachine, keys: number) {
  const state = await StoredKvState.open(store);
  assert.equal(state.size, machine.size);
  for (let i = 0; i < keys; i++) assert.equal(await state.get(`k${i}`), machine.get(`k${i}`));
  // The session's last write is answered from the stored row, as a retry.
  const retry = {
    client: "c0",
    seq: keys + 1,
    write: { type: "append" as const, key: "k0", value: "+" },
  };
  assert.deepEqual(await state.applied(retry), machine.applied(retry));
  assert.notEqual(await state.applied(retry), undefined);
}

Deno.test("node state: a new folder keeps its state in memory by default, and records it", async () => {
  const kv = new SimKv();
  const state = await openNodeState(new MemoryStorage(), kv);
  assert.equal(state.kind, "memory");
  assert.equal(state.store, undefined);
  assert.equal(await recorded(kv), "memory");
});

Deno.test("node state: a new folder asked for disk keeps its state on disk, and records it", async () => {
  const kv = new SimKv();
  const state = await openNodeState(new MemoryStorage(), kv, { state: "disk" });
  assert.equal(state.kind, "disk");
  assert.equal(state.migrated, false);
  assert.ok(state.store);
  await state.store.close();
  assert.equal(await recorded(kv), "disk");
  // Asked for memory later: refused with what to do.
  await assert.rejects(
    openNodeState(new MemoryStorage(), kv, { state: "memory", where: "data/0" }),
    (err) => {
      assert.ok(err instanceof StateKindError);
      assert.equal(err.recorded, "disk");
      assert.equal(err.wanted, "memory");
      assert.match(err.message, /data\/0 keeps its KV state on disk .*--state disk/);
      return true;
    },
  );
});

Deno.test("node state: a new folder asked for memory records memory, and keeps it", async () => {
  const kv = new SimKv();
  const state = await openNodeState(new MemoryStorage(), kv, { state: "memory" });
  assert.equal(state.kind, "memory");
  assert.equal(state.store, undefined);
  assert.equal(await recorded(kv), "memory");
  // Even once Raft has state, the record decides (not the default for new folders).
  await kv.atomic().set(["raft", "hs"], new Uint8Array([1])).commit();
  assert.equal((await openNodeState(new MemoryStorage(), kv)).kind, "memory");
});

Deno.test("node state: a folder from before the record keeps memory unless asked for disk", async () => {
  const { kv, storage } = await legacyFolder(10);
  const state = await openNodeState(storage, kv);
  assert.equal(state.kind, "memory");
  assert.equal(state.storage, storage);
  assert.equal(await recorded(kv), null, "nothing written for a folder that keeps its kind");
});

Deno.test("node state: a memory folder asked for disk moves its last snapshot into the store", async () => {
  const keys = 2500; // several pages
  const { kv, storage, machine } = await legacyFolder(keys);
  const lines: string[] = [];
  const state = await openNodeState(storage, kv, { state: "disk", log: (l) => lines.push(l) });
  assert.equal(state.kind, "disk");
  assert.equal(state.migrated, true);
  assert.equal(await recorded(kv), "disk");
  assert.deepEqual(state.store!.applied, { index: 40, term: 3 });
  await assertSameState(state.store!, machine, keys);
  assert.match(lines.join("\n"), /moving the KV state of snapshot 40 from memory to disk/);
  // Raft starts from what the migration loaded (a second load would be of a used storage).
  const loaded = await state.storage.load();
  assert.equal(loaded.snapshot?.meta.index, 40);
  assert.deepEqual(loaded.entries.map((e) => e.index), [41]);
  await state.store!.close();
  // Then it is a disk folder.
  const again = await openNodeState(storage, kv);
  assert.equal(again.kind, "disk");
  assert.equal(again.migrated, false);
  assert.equal(again.store!.applied.index, 40);
  await again.store!.close();
});

Deno.test("node state: a crash at any point of a migration leaves a memory folder or a disk one", async () => {
  const keys = 1200;
  let completed = false;
  let cut = 0;
  for (let crashAfter = 0; !completed; crashAfter++) {
    assert.ok(crashAfter < 200, "the migration never completed");
    const { kv, storage, machine } = await legacyFolder(keys);
    kv.crashAfter(crashAfter);
    try {
      const state = await openNodeState(storage, kv, { state: "disk" });
      await state.store!.close();
      completed = true;
      kv.close();
    } catch (err) {
      const crashed = err instanceof SimKvCrashedError ||
        (err instanceof StateStoreFailedError && err.cause instanceof SimKvCrashedError);
      assert.ok(crashed, `crash after ${crashAfter}: ${err}`);
    }
    const after = kv.reopen();
    // What survived opens as one kind or the other.
    const kind = await recorded(after);
    if (kind === null) {
      cut++;
      assert.equal((await openNodeState(storage, after)).kind, "memory");
    } else {
      assert.equal(kind, "disk", `crash after ${crashAfter}`);
      const state = await openNodeState(storage, after);
      assert.equal(state.kind, "disk");
      await assertSameState(state.store!, machine, keys);
      await state.store!.close();
    }
    // And a memory folder migrates on the next try, whatever the crash left in the store.
    if (kind === null) {
      const state = await openNodeState(storage, after, { state: "disk" });
      assert.equal(state.migrated, true);
      await assertSameState(state.store!, machine, keys);
      await state.store!.close();
    }
  }
  // The install takes several commits: crashes fell inside it, not only before the record.
  assert.ok(cut >= 3, `only ${cut} crash points before the switch`);
});

Deno.test("node state: a memory folder whose last snapshot is a stored leader's stream moves to disk", async () => {
  // A memory follower keeps a stored leader's snapshot as it came (a stream of the store's
  // pages) until it snapshots on its own: moving that folder to disk reads either form.
  const leader = await StateStore.open(new SimKv());
  const batch = leader.batch();
  batch.put("x", "1");
  batch.endEntry({ index: 40, term: 3 });
  await batch.commit();
  const data = await streamOf(leader);
  await leader.close();
  const kv = new SimKv();
  await kv.atomic().set(["raft", "hs"], new Uint8Array([1])).commit();
  const storage = new MemoryStorage();
  await storage.save({
    hardState: { term: 3, vote: "0", commit: 40 },
    entries: [],
    snapshot: {
      meta: { index: 40, term: 3, membership: MEMBERS },
      data,
    },
    resetLog: false,
  });
  const state = await openNodeState(storage, kv, { state: "disk" });
  assert.equal(state.kind, "disk");
  assert.equal(await state.store!.get("x"), "1");
  assert.equal(state.store!.applied.index, 40);
  await state.store!.close();
});
