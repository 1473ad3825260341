import assert from "node:assert/strict";
import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
import { defaultCodec } from "../net/codec.ts";
import { MemoryStorage } from "../raft/storage.ts";
import { STATE_KIND_KEY, StateKindError } from "../rsm/node_state.ts";
import { StateStoreFailedError } from "../store/errors.ts";
import { SimKv, SimKvCrashedError } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import { streamOf } from "../rsm/test_util.ts";
import { initialConfig, joinGroups, keyToShard } from "./config.ts";
import { openGroupNodeState } from "./group_node_state.ts";
import { ShardGroupState } from "./group_state.ts";
import { StoredShardGroupState } from "./stored_group_state.ts";

const GID = 100;
const OPTIONS = { gid: GID, limits: DEFAULT_KV_LIMITS };
const MEMBERS = { voters: ["0"], learners: [] };
const decoder = new TextDecoder();

/**
 * A group server's folder that kept its state in memory, from before the
 * record: Raft state, and a snapshot at index 40 of a group holding `keys`
 * keys, some of its shards serving and some leaving (group 101 joined).
 */
async function memoryFolder(keys: number) {
  const kv = new SimKv();
  // Raft's own keys are what tells an old folder from a new one.
  await kv.atomic().set(["raft", "hs"], new Uint8Array([1])).commit();
  const machine = new ShardGroupState(OPTIONS);
  const c1 = joinGroups(initialConfig(), { [GID]: ["a"] });
  machine.apply({ kind: "config", config: c1, sources: {} });
  for (let i = 0; i < keys; i++) {
    const write = {
      type: "put",
      key: `${i % 10}k${i}`,
      value: i % 7 === 0 ? `v${i}` : `${i} `.repeat(5),
    };
    machine.apply({ kind: "op", command: { client: `c${i % 3}`, seq: i + 1, write } });
  }
  // Group 101 joins: the shards it takes are leaving this group, their keys still here.
  machine.apply({ kind: "config", config: joinGroups(c1, { 101: ["b"] }), sources: {} });
  const statuses = new Set(machine.statuses().values());
  assert.ok(statuses.has("serving") && statuses.has("leaving"), `statuses ${[...statuses]}`);
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

/** A transfer page with its dedup table in client order (the two forms list it differently). */
function decodePage(bytes: Uint8Array | undefined): unknown {
  const page = defaultCodec.decode(bytes!) as { dedup?: [string, unknown][] };
  page.dedup?.sort((a, b) => a[0] < b[0] ? -1 : 1);
  return page;
}

/** The stored group answers as `machine`: configuration, statuses, keys, retries, leaving pages. */
async function assertSameGroup(store: StateStore, machine: ShardGroupState, keys: number) {
  const stored = await StoredShardGroupState.open(store, OPTIONS);
  assert.deepEqual(stored.config, machine.config);
  assert.deepEqual(stored.statuses(), machine.statuses());
  for (let i = 0; i < keys; i++) {
    const key = `${i % 10}k${i}`;
    assert.deepEqual(await stored.get(key), machine.store(keyToShard(key))?.get(key), key);
  }
  for (const [shard, status] of machine.statuses()) {
    if (status !== "leaving") continue;
    const page = { after: null, maxBytes: 1 << 20 };
    assert.deepEqual(
      decodePage((await stored.leavingPage(shard, 2, page))?.data),
      decodePage(machine.leavingPage(shard, 2, page)?.data),
      `shard ${shard}'s page`,
    );
  }
  // The sessions' last writes are answered from the stored rows, as retries.
  for (let i = keys - 3; i < keys; i++) {
    const write = { type: "put", key: `${i % 10}k${i}`, value: "retry" };
    const retry = { kind: "op", command: { client: `c${i % 3}`, seq: i + 1, write } };
    const want = machine.recall(retry);
    const got = await stored.recall(retry);
    if (got?.kind === "write") delete got.num;
    if (want?.kind === "write") delete want.num;
    assert.deepEqual(got, want, `retry ${i}`);
  }
}

Deno.test("group node state: a new folder keeps its state in memory by default", async () => {
  const kv = new SimKv();
  const state = await openGroupNodeState(new MemoryStorage(), kv, { gid: GID });
  assert.equal(state.kind, "memory");
  assert.equal(state.store, undefined);
  assert.equal(await recorded(kv), "memory");
});

Deno.test("group node state: a new folder asked for disk keeps its state on disk, and refuses memory after", async () => {
  const kv = new SimKv();
  const state = await openGroupNodeState(new MemoryStorage(), kv, { gid: GID, state: "disk" });
  assert.equal(state.kind, "disk");
  assert.ok(state.store);
  await state.store.close();
  assert.equal(await recorded(kv), "disk");
  await assert.rejects(
    openGroupNodeState(new MemoryStorage(), kv, {
      gid: GID,
      state: "memory",
      where: "data/g100-0",
      address: "127.0.0.1:7101",
    }),
    (err) => {
      assert.ok(err instanceof StateKindError);
      assert.equal(err.recorded, "disk");
      assert.equal(err.wanted, "memory");
      assert.match(err.message, /data\/g100-0 keeps its shard group state on disk .*--state disk/);
      assert.match(err.message, /Member\.Remove '\{"node": "127\.0\.0\.1:7101"\}'/);
      assert.match(err.message, /start it again with --join --state memory, then add it/);
      return true;
    },
  );
});

Deno.test("group node state: a memory folder stays one without state, and moves to disk when asked", async () => {
  const keys = 2500; // several pages
  const { kv, storage, machine } = await memoryFolder(keys);
  assert.equal((await openGroupNodeState(storage, kv, { gid: GID })).kind, "memory");
  assert.equal(await recorded(kv), null, "nothing written for a folder that keeps its kind");
  const lines: string[] = [];
  const state = await openGroupNodeState(storage, kv, {
    gid: GID,
    state: "disk",
    log: (l) => lines.push(l),
  });
  assert.equal(state.kind, "disk");
  assert.equal(state.migrated, true);
  assert.equal(await recorded(kv), "disk");
  assert.deepEqual(state.store!.applied, { index: 40, term: 3 });
  await assertSameGroup(state.store!, machine, keys);
  assert.match(lines.join("\n"), /moving the shard group state of snapshot 40 from memory to disk/);
  // Raft starts from what the migration loaded (the log after the snapshot is replayed).
  const loaded = await state.storage.load();
  assert.deepEqual(loaded.entries.map((e) => e.index), [41]);
  await state.store!.close();
});

Deno.test("group node state: a crash at any point of a migration leaves a memory folder or a disk one", async () => {
  const keys = 1200;
  let completed = false;
  let cut = 0;
  for (let crashAfter = 0; !completed; crashAfter++) {
    assert.ok(crashAfter < 200, "the migration never completed");
    const { kv, storage, machine } = await memoryFolder(keys);
    kv.crashAfter(crashAfter);
    try {
      const state = await openGroupNodeState(storage, kv, { gid: GID, state: "disk" });
      await state.store!.close();
      completed = true;
      kv.close();
    } catch (err) {
      const crashed = err instanceof SimKvCrashedError ||
        (err instanceof StateStoreFailedError && err.cause instanceof SimKvCrashedError);
      assert.ok(crashed, `crash after ${crashAfter}: ${err}`);
    }
    const after = kv.reopen();
    const kind = await recorded(after);
    if (kind === null) {
      cut++;
      assert.equal((await openGroupNodeState(storage, after, { gid: GID })).kind, "memory");
      // A memory folder migrates on the next try, whatever the crash left in the store.
      const state = await openGroupNodeState(storage, after, { gid: GID, state: "disk" });
      assert.equal(state.migrated, true);
      await assertSameGroup(state.store!, machine, keys);
      await state.store!.close();
    } else {
      assert.equal(kind, "disk", `crash after ${crashAfter}`);
      const state = await openGroupNodeState(storage, after, { gid: GID });
      assert.equal(state.kind, "disk");
      await assertSameGroup(state.store!, machine, keys);
      await state.store!.close();
    }
  }
  // The install takes several commits: crashes fell inside it, not only before the record.
  assert.ok(cut >= 3, `only ${cut} crash points before the switch`);
});

Deno.test("group node state: a memory folder whose last snapshot is a stored leader's stream moves to disk", async () => {
  // A memory follower keeps a stored leader's snapshot as it came (a stream of the store's
  // pages) until it snapshots on its own: moving that folder to disk reads either form.
  const leaderStore = await StateStore.open(new SimKv());
  const leader = await StoredShardGroupState.open(leaderStore, OPTIONS);
  const batch = leaderStore.batch();
  const config = joinGroups(initialConfig(), { [GID]: ["a"] });
  await leader.apply({ kind: "config", config, sources: {} }, batch, 1);
  batch.endEntry({ index: 1, term: 1 });
  const put = { type: "put", key: "x", value: "1" } as const;
  await leader.apply({ kind: "op", command: { client: "c", seq: 1, write: put } }, batch, 2);
  batch.endEntry({ index: 2, term: 1 });
  await batch.commit();
  const data = await streamOf(leaderStore);
  await leaderStore.close();
  const kv = new SimKv();
  await kv.atomic().set(["raft", "hs"], new Uint8Array([1])).commit();
  const storage = new MemoryStorage();
  await storage.save({
    hardState: { term: 1, vote: "0", commit: 2 },
    entries: [],
    snapshot: {
      meta: { index: 2, term: 1, membership: MEMBERS },
      data,
    },
    resetLog: false,
  });
  const state = await openGroupNodeState(storage, kv, { gid: GID, state: "disk" });
  assert.equal(state.kind, "disk");
  const stored = await StoredShardGroupState.open(state.store!, OPTIONS);
  assert.equal(await stored.get("x"), "1");
  await state.store!.close();
});
