import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { RpcServer } from "../net/rpc_server.ts";
import type { SimNetwork } from "../net/sim/network.ts";
import type { Random } from "../net/random.ts";
import { simulate } from "../net/sim/simulate.ts";
import { MemoryStorage, type RaftStorage, type StorageBatch } from "../raft/storage.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { StateBatch } from "../store/state_batch.ts";
import { Replica } from "./replica.ts";
import { readPages, type StoredMachine } from "./stored_machine.ts";
import { streamOf } from "./test_util.ts";
import type { WriteOutcome } from "./exactly_once.ts";

/**
 * Counters by key, in a store; "boom" throws after staging a write (which
 * must be dropped); the values of keys "big..." carry 100 KB of padding.
 */
class Counters implements StoredMachine<number> {
  applied = 0;
  installs = 0;
  constructor(readonly store: StateStore) {}
  async apply(command: unknown, state: StateBatch): Promise<number> {
    this.applied++;
    const key = command as string;
    const n = Number(String(await state.get(key) ?? "0").replace(/^x*/, "")) + 1;
    state.put(key, (key.startsWith("big") ? "x".repeat(100_000) : "") + n);
    if (key === "boom") throw new Error("boom");
    return n;
  }
  installed(): void {
    this.installs++;
  }
}

interface Member {
  id: string;
  kv: SimKv;
  storage: MemoryStorage;
  machine: Counters;
  replica: Replica<number>;
}

type Sim = { net: SimNetwork; clock: Clock; random: Random };

/** What the replicas logged, as "level: message (index)". */
const logged: string[] = [];

async function startMember(
  id: string,
  sim: Sim,
  from: { kv?: SimKv; storage?: MemoryStorage; maxRaftState?: number; crashAfter?: number } = {},
): Promise<Member> {
  const kv = from.kv ?? new SimKv({ clock: sim.clock });
  const storage = from.storage ?? new MemoryStorage();
  const machine = new Counters(await StateStore.open(kv));
  if (from.crashAfter !== undefined) kv.crashAfter(from.crashAfter);
  // The process dies right after the database's last commit: no Raft save after it either (with
  // none, it dies at its first commit: Raft's saves before are its start-up's).
  const limit = from.crashAfter ? kv.commits + from.crashAfter : undefined;
  const server = new RpcServer();
  sim.net.addServer(id, server);
  const replica = await Replica.start(machine, {
    id,
    peers: ["a", "b", "c"],
    server,
    transport: sim.net.transportFor(`${id}-${sim.random.next()}`),
    storage: limit === undefined ? storage : diesWith(storage, kv, limit),
    clock: sim.clock,
    random: sim.random.fork(),
    maxRaftState: from.maxRaftState,
    snapshotChunkBytes: 64,
    logger: {
      log: (level, message, fields) => logged.push(`${level}: ${message} (${fields?.index})`),
    },
  });
  return { id, kv, storage, machine, replica };
}

/**
 * `storage`, dying with `kv`: once `kv` has made `limit` commits, a save
 * crashes the process (the database too) instead.
 */
function diesWith(storage: MemoryStorage, kv: SimKv, limit: number): RaftStorage {
  return {
    load: () => storage.load(),
    save: (batch: StorageBatch) => {
      if (kv.commits < limit) return storage.save(batch);
      kv.crash();
      return Promise.reject(new Error("the process crashed"));
    },
    raftStateSize: () => storage.raftStateSize(),
    snapshotSize: () => storage.snapshotSize(),
    close: () => storage.close(),
  };
}

async function write(
  members: Member[],
  request: { client: string; seq: number; command: string },
  clock: Clock,
): Promise<WriteOutcome<number>> {
  while (true) {
    const leader = members.find((m) => m.replica.raft.status().role === "leader");
    if (leader) {
      const reply = await leader.replica.write(request);
      if (reply.status === "ok") {
        const { status: _, ...outcome } = reply;
        return outcome as WriteOutcome<number>;
      }
    }
    await delay(20, { clock });
  }
}

async function caughtUp(member: Member, index: number, clock: Clock): Promise<void> {
  while (member.machine.store.applied.index < index) await delay(10, { clock });
}

Deno.test("stored machine: writes are applied once, stored with their index; a restart resumes after it", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(["a", "b", "c"].map((id) => startMember(id, sim)));
    for (let seq = 1; seq <= 10; seq++) {
      const outcome = await write(members, { client: "c1", seq, command: "x" }, clock);
      assert.deepEqual(outcome, { result: seq });
    }
    // A retry of the last write gets its recorded outcome: applied once.
    assert.deepEqual(await write(members, { client: "c1", seq: 10, command: "x" }, clock), {
      result: 10,
    });
    // An apply that throws answers with the error, and what it staged is not stored.
    assert.deepEqual(await write(members, { client: "c1", seq: 11, command: "boom" }, clock), {
      error: "apply",
      message: "boom",
    });
    const leader = members.find((m) => m.replica.raft.status().role === "leader")!;
    // Answered once staged (the default): the store has the writes once its batch commits.
    await leader.machine.store.whenApplied(leader.replica.appliedIndex);
    assert.equal(await leader.machine.store.get("x"), "10");
    assert.equal(await leader.machine.store.get("boom"), null);
    assert.ok(
      logged.some((line) => line.startsWith("warn: apply threw")),
      `not reported: ${logged}`,
    );

    // A follower crashes (its state loses what was not committed) and restarts from its store.
    const follower = members.find((m) => m !== leader)!;
    sim.net.deleteServer(follower.id);
    follower.kv.crash();
    const storage = follower.storage.copy();
    await follower.replica.stop();
    const restarted = await startMember(follower.id, sim, { kv: follower.kv.reopen(), storage });
    const durable = restarted.machine.store.applied.index;
    members[members.indexOf(follower)] = restarted;
    assert.equal(restarted.replica.appliedIndex, durable, "it starts where its store is");
    assert.deepEqual(await write(members, { client: "c1", seq: 12, command: "x" }, clock), {
      result: 11,
    });
    const last = leader.replica.appliedIndex;
    await caughtUp(restarted, last, clock);
    assert.equal(await restarted.machine.store.get("x"), "11", "no entry applied twice");
    assert.ok(restarted.machine.applied <= last - durable);
    await Promise.all(members.map((m) => m.replica.stop()));
  }, { seed: 19, limitMs: 600_000 });
});

Deno.test("stored machine: compaction encodes nothing, and a replica that lags installs the leader's streamed store", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(
      ["a", "b"].map((id) => startMember(id, sim, { maxRaftState: 1000 })),
    );
    for (let seq = 1; seq <= 40; seq++) {
      await write(members, { client: "c1", seq, command: `k${seq % 7}` }, clock);
    }
    const leader = members.find((m) => m.replica.raft.status().role === "leader")!;
    while (leader.replica.raft.status().snapshotIndex === 0) await delay(10, { clock });
    assert.equal(
      leader.storage.snapshotSize(),
      0,
      "the log was compacted without the state's bytes",
    );

    const c = await startMember("c", sim, { maxRaftState: 1000 });
    members.push(c);
    await write(members, { client: "c1", seq: 41, command: "k0" }, clock);
    await caughtUp(c, leader.replica.appliedIndex, clock);
    assert.ok(c.machine.installs >= 1, "c installed the leader's state");
    for (let k = 0; k < 7; k++) {
      assert.equal(await c.machine.store.get(`k${k}`), await leader.machine.store.get(`k${k}`));
    }
    // Its sessions came with it: a retry of an old write is not applied again.
    assert.deepEqual(await write(members, { client: "c1", seq: 41, command: "k0" }, clock), {
      result: Number(await leader.machine.store.get("k0")),
    });
    await Promise.all(members.map((m) => m.replica.stop()));
  }, { seed: 5, limitMs: 600_000 });
});

Deno.test("stored machine: a store streams as pages that install into another store", async () => {
  const from = await StateStore.open(new SimKv());
  const batch = from.batch();
  for (let i = 0; i < 50; i++) batch.put(`key${i}`, "v".repeat(i * 10));
  batch.setSession("once/c", { seq: 1 });
  batch.endEntry({ index: 3, term: 1 });
  await batch.commit();
  const bytes = await streamOf(from);
  const to = await StateStore.open(new SimKv());
  await to.install(readPages(bytes));
  assert.equal(to.applied.index, 3);
  assert.equal(await to.get("key49"), "v".repeat(490));
  assert.deepEqual(await to.session("once/c"), { seq: 1 });
  assert.throws(() => [...readPages(bytes.subarray(0, bytes.length - 1))], /ends inside a page/);
  await from.close();
  await to.close();
});

/** What Counters holds after the writes of `commands` (keys "big..."): key → value. */
function bigModel(commands: string[]): Map<string, string> {
  const counts = new Map<string, number>();
  for (const key of commands) counts.set(key, (counts.get(key) ?? 0) + 1);
  return new Map([...counts].map(([k, n]) => [k, "x".repeat(100_000) + n]));
}

/** How a crash left server c (see installWithCrash). */
type CrashOutcome = "none" | "old" | "new" | "new, unrecorded";

/**
 * Server c, empty, catches up from a compacted leader (so by installing
 * its streamed store) and the process crashes after `crashAfter` commits of
 * its database (no Raft save after it either). The reopened store must be
 * the old state (empty) or the new one (the snapshot, or beyond), and c
 * must restart from it and catch up to the model's state.
 */
async function installWithCrash(crashAfter: number): Promise<CrashOutcome> {
  return await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(
      ["a", "b"].map((id) => startMember(id, sim, { maxRaftState: 1000 })),
    );
    const commands: string[] = [];
    for (let seq = 1; seq <= 30; seq++) {
      await write(members, { client: "c1", seq, command: `big${seq % 12}` }, clock);
      commands.push(`big${seq % 12}`);
    }
    const leader = members.find((m) => m.replica.raft.status().role === "leader")!;
    while (leader.replica.raft.status().snapshotIndex === 0) await delay(10, { clock });
    let c = await startMember("c", sim, { maxRaftState: 1000, crashAfter });
    members.push(c);
    await write(members, { client: "c1", seq: 31, command: "big0" }, clock);
    commands.push("big0");
    const target = leader.replica.appliedIndex;
    while (c.machine.store.applied.index < target && !c.replica.stopped) {
      await delay(10, { clock });
    }
    let outcome: CrashOutcome = "none";
    if (c.replica.stopped) {
      sim.net.deleteServer("c");
      const storage = c.storage.copy();
      const kv = c.kv.reopen();
      const reopened = await StateStore.open(kv);
      const applied = reopened.applied.index;
      const raftSnapshot = (await storage.load()).snapshot?.meta.index ?? 0;
      if (applied === 0) {
        outcome = "old";
        assert.equal(await reopened.get("big1"), null, `crash ${crashAfter}: the old, empty state`);
        assert.equal(
          raftSnapshot,
          0,
          `crash ${crashAfter}: Raft recorded a snapshot the state lacks`,
        );
      } else {
        outcome = raftSnapshot < applied ? "new, unrecorded" : "new";
        assert.ok(
          applied >= raftSnapshot,
          `crash ${crashAfter}: the state is behind Raft's record`,
        );
        assert.ok(await reopened.get("big1"), `crash ${crashAfter}: the new state`);
      }
      await reopened.close();
      c = await startMember("c", sim, { kv, storage, maxRaftState: 1000 });
      members[2] = c;
      await caughtUp(c, target, clock);
    }
    for (const [key, value] of bigModel(commands)) {
      const got = await c.machine.store.get(key);
      assert.ok(got === value, `crash ${crashAfter}: ${key} is ${String(got).replace(/^x*/, "")}`);
    }
    assert.ok(c.machine.installs >= 1 || outcome !== "none", "c caught up by installing");
    await Promise.all(members.map((m) => m.replica.stop()));
    return outcome;
  }, { seed: 11, limitMs: 600_000 });
}

Deno.test("stored machine: a crash at any commit of a snapshot install leaves a replica that restarts and catches up", async () => {
  const outcomes: CrashOutcome[] = [];
  for (let points = 0;; points++) {
    const outcome = await installWithCrash(points);
    if (outcome === "none") break;
    outcomes.push(outcome);
    assert.ok(points < 500, "the install never finished without a crash");
  }
  assert.ok(outcomes.length >= 3, `only ${outcomes.length} commit points: not several commits`);
  assert.ok(outcomes.includes("old"), `${outcomes}`);
  assert.ok(
    outcomes.includes("new, unrecorded"),
    `no crash came between the switch and Raft's record: ${outcomes}`,
  );
});

Deno.test("stored machine: the leader dies mid-stream, and the next leader's stream replaces the half-written one", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(
      ["a", "b"].map((id) => startMember(id, sim, { maxRaftState: 1000 })),
    );
    const commands: string[] = [];
    for (let seq = 1; seq <= 30; seq++) {
      await write(members, { client: "c1", seq, command: `big${seq % 12}` }, clock);
      commands.push(`big${seq % 12}`);
    }
    const leader = members.find((m) => m.replica.raft.status().role === "leader")!;
    while (members.some((m) => m.replica.raft.status().snapshotIndex === 0)) {
      await delay(10, { clock });
    }
    const c = await startMember("c", sim, { maxRaftState: 1000 });
    members.push(c);
    // Mid-stream: pages of the leader's state are written, nothing is switched.
    while (c.kv.commits < 2) await delay(1, { clock });
    assert.equal(c.machine.store.applied.index, 0, "not switched yet");
    await leader.replica.stop();
    sim.net.deleteServer(leader.id);
    const rest = members.filter((m) => m !== leader);
    // The next leader needs c's acknowledgements: they come once c installed its stream.
    for (let seq = 31; seq <= 36; seq++) {
      await write(rest, { client: "c1", seq, command: `big${seq % 5}` }, clock);
      commands.push(`big${seq % 5}`);
    }
    const next = rest.find((m) => m.replica.raft.status().role === "leader")!;
    assert.notEqual(next, leader);
    await caughtUp(c, next.replica.appliedIndex, clock);
    for (const [key, value] of bigModel(commands)) {
      const got = await c.machine.store.get(key);
      assert.ok(got === value, `${key} is ${String(got).replace(/^x*/, "")}`);
    }
    assert.ok(c.machine.installs >= 1, "c installed a stream");
    assert.ok(
      c.machine.store.generation >= 3,
      "into a new generation: the half-written one was dropped",
    );
    await Promise.all(rest.map((m) => m.replica.stop()));
  }, { seed: 23, limitMs: 600_000 });
});

Deno.test("stored machine: a log fed faster than its staged batches are sealed stays within its bound (the staged entries are stored when they hold compaction back)", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const maxRaftState = 100;
    const members = await Promise.all(
      ["a", "b", "c"].map((id) => startMember(id, sim, { maxRaftState })),
    );
    // Writes one after another, several in a batch's 250 ms: without storing them when they hold
    // compaction back, a log would keep them until the batch is sealed (~60 bytes each).
    for (let seq = 1; seq <= 60; seq++) {
      await write(members, { client: "c1", seq, command: `k${seq % 3}` }, clock);
      for (const m of members) {
        const bytes = m.storage.raftStateSize();
        assert.ok(bytes <= 8 * maxRaftState, `${m.id}: Raft state ${bytes} bytes after ${seq}`);
      }
    }
    await Promise.all(members.map((m) => m.replica.stop()));
  }, { seed: 30, limitMs: 600_000 });
});

Deno.test("stored machine: a burst whose staged entries held compaction back is compacted once they are stored, with no write after it", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const maxRaftState = 100;
    const members = await Promise.all(
      ["a", "b", "c"].map((id) => startMember(id, sim, { maxRaftState })),
    );
    await write(members, { client: "c0", seq: 1, command: "warm" }, clock);
    // Thirty writes at once (one apply run): a compaction then runs through the stored index,
    // which lags them. The threshold must stay where it was, so that the log is compacted again
    // when they are stored, though nothing more is written.
    await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) => write(members, { client: `c${i + 1}`, seq: 1, command: `k${i}` }, clock),
      ),
    );
    await delay(2_000, { clock }); // every batch sealed (250 ms) and stored: nothing else runs
    for (const m of members) {
      const bytes = m.storage.raftStateSize();
      assert.ok(bytes <= 8 * maxRaftState, `${m.id}: Raft state ${bytes} bytes after the burst`);
    }
    await Promise.all(members.map((m) => m.replica.stop()));
  }, { seed: 31, limitMs: 600_000 });
});
