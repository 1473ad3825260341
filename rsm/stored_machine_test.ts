import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { RpcServer } from "../net/rpc_server.ts";
import type { SimNetwork } from "../net/sim/network.ts";
import type { Random } from "../net/random.ts";
import { simulate } from "../net/sim/simulate.ts";
import { MemoryStorage } from "../raft/storage.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { StateBatch } from "../store/state_batch.ts";
import { Replica } from "./replica.ts";
import { readPages, type StoredMachine, storeSource } from "./stored_machine.ts";
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
  const server = new RpcServer();
  sim.net.addServer(id, server);
  const replica = await Replica.start(machine, {
    id,
    peers: ["a", "b", "c"],
    server,
    transport: sim.net.transportFor(`${id}-${sim.random.next()}`),
    storage,
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
  const stream = await storeSource(from).open();
  const chunks: Uint8Array[] = [];
  for await (const page of stream.pages()) chunks.push(page);
  stream.close();
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
  const to = await StateStore.open(new SimKv());
  await to.install(readPages(bytes));
  assert.equal(to.applied.index, 3);
  assert.equal(await to.get("key49"), "v".repeat(490));
  assert.deepEqual(await to.session("once/c"), { seq: 1 });
  assert.throws(() => [...readPages(bytes.subarray(0, bytes.length - 1))], /ends inside a page/);
  await from.close();
  await to.close();
});

/**
 * Server c, empty, catches up from a compacted leader (so by installing
 * its streamed store) and its database crashes after `crashAfter` commits;
 * it restarts from what survived and must catch up to the same state.
 * Resolves whether the crash happened before c had caught up.
 */
async function installWithCrash(crashAfter: number): Promise<boolean> {
  return await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(
      ["a", "b"].map((id) => startMember(id, sim, { maxRaftState: 1000 })),
    );
    for (let seq = 1; seq <= 30; seq++) {
      await write(members, { client: "c1", seq, command: `big${seq % 12}` }, clock);
    }
    const leader = members.find((m) => m.replica.raft.status().role === "leader")!;
    while (leader.replica.raft.status().snapshotIndex === 0) await delay(10, { clock });
    let c = await startMember("c", sim, { maxRaftState: 1000, crashAfter });
    members.push(c);
    await write(members, { client: "c1", seq: 31, command: "big0" }, clock);
    const target = leader.replica.appliedIndex;
    while (c.machine.store.applied.index < target && !c.replica.stopped) {
      await delay(10, { clock });
    }
    const crashed = c.replica.stopped;
    if (crashed) {
      sim.net.deleteServer("c");
      const storage = c.storage.copy();
      c = await startMember("c", sim, { kv: c.kv.reopen(), storage, maxRaftState: 1000 });
      members[2] = c;
      await caughtUp(c, target, clock);
    }
    for (let k = 0; k < 12; k++) {
      assert.equal(await c.machine.store.get(`big${k}`), await leader.machine.store.get(`big${k}`));
    }
    assert.ok(c.machine.installs >= 1, "c caught up by installing the leader's store");
    await Promise.all(members.map((m) => m.replica.stop()));
    return crashed;
  }, { seed: 11, limitMs: 600_000 });
}

Deno.test("stored machine: a crash at any commit of a snapshot install leaves a replica that restarts and catches up", async () => {
  let points = 0;
  while (await installWithCrash(points)) {
    points++;
    assert.ok(points < 500, "the install never finished without a crash");
  }
  assert.ok(points >= 3, `only ${points} commit points: the install was not in several commits`);
});
