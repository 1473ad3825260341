import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { simulate } from "../net/sim/simulate.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { RaftNode } from "./node.ts";
import { MemoryStorage, type StorageBatch } from "./storage.ts";

/** Storage whose preparations wait until released, recording what happens. */
class PreparingStorage extends MemoryStorage {
  events: string[] = [];
  #prepared: Uint8Array | undefined;
  #release: (() => void) | undefined;

  /** Resolved once a preparation has started (and can be released). */
  readonly #started = Promise.withResolvers<void>();

  /** Resolves once a preparation has started: what a test waits for, however slow the machine. */
  get started(): Promise<void> {
    return this.#started.promise;
  }

  async prepareSnapshot(data: Uint8Array): Promise<void> {
    this.events.push("prepare");
    const released = new Promise<void>((resolve) => (this.#release = resolve));
    this.#started.resolve();
    await released;
    this.#prepared = data;
    this.events.push("prepared");
  }

  release(): void {
    this.#release?.();
  }

  override save(batch: StorageBatch): Promise<void> {
    if (batch.snapshot) {
      this.events.push(batch.snapshot.data === this.#prepared ? "save prepared" : "save other");
    }
    return super.save(batch);
  }
}

async function startAlone(storage: PreparingStorage): Promise<RaftNode> {
  const node = await RaftNode.start({
    id: "a",
    peers: ["a"],
    transport: {
      connect: () => {
        throw new Error("a node alone calls no one");
      },
    },
    server: new RpcServer(),
    storage,
    tickMs: 5,
  });
  while (node.status().role !== "leader") await delay(5);
  storage.events = []; // the new node's first snapshot (its membership) is not ours
  return node;
}

async function commit(node: RaftNode, command: string): Promise<number> {
  const { index, term } = await node.propose(command);
  await node.waitApplied(index, term);
  return index;
}

Deno.test("raft node: a snapshot's data is prepared in storage first, while the log keeps committing", async () => {
  const storage = new PreparingStorage();
  const node = await startAlone(storage);
  try {
    const index = await commit(node, "x");
    const data = new Uint8Array([1, 2, 3]);
    const snapshotted = node.snapshot(index, data);
    await storage.started;
    assert.deepEqual(storage.events, ["prepare"]);
    assert.ok(await commit(node, "y") > index, "commits go on during the preparation");
    assert.equal(node.status().snapshotIndex, 0, "nothing compacted before the data is written");
    storage.release();
    await snapshotted;
    assert.deepEqual(storage.events, ["prepare", "prepared", "save prepared"]);
    assert.equal(node.status().snapshotIndex, index);
  } finally {
    await node.stop();
  }
});

Deno.test("raft node: a snapshot whose preparation outlives the node is not taken", async () => {
  const storage = new PreparingStorage();
  const node = await startAlone(storage);
  const index = await commit(node, "x");
  const snapshotted = node.snapshot(index, new Uint8Array([1]));
  await storage.started;
  await node.stop();
  storage.release();
  await assert.rejects(snapshotted, /stopped/);
  assert.deepEqual(storage.events, ["prepare", "prepared"]);
});

/** Storage whose writes of entries take `ms` on `clock` (a slow disk under heavy writes). */
class SlowStorage extends MemoryStorage {
  readonly #clock: Clock;
  readonly #ms: number;
  constructor(clock: Clock, ms: number) {
    super();
    this.#clock = clock;
    this.#ms = ms;
  }

  override async save(batch: StorageBatch): Promise<void> {
    if (batch.entries.length > 0) await delay(this.#ms, { clock: this.#clock });
    return await super.save(batch);
  }
}

Deno.test("raft node: a follower answers a heartbeat at once, not after the write in progress", async () => {
  await simulate(async ({ net, clock, random }) => {
    const ids = ["a", "b", "c"];
    const nodes = await Promise.all(ids.map(async (id) => {
      const server = new RpcServer();
      net.addServer(id, server);
      return await RaftNode.start({
        id,
        peers: ids,
        server,
        transport: net.transportFor(id),
        // A write of entries takes 2 s: a slow disk under heavy writes.
        storage: new SlowStorage(clock, 2000),
        clock,
        random: random.fork(),
      });
    }));
    let leader: RaftNode | undefined;
    while (leader === undefined) {
      await delay(50, { clock });
      leader = nodes.find((n) => n.status().role === "leader");
    }
    const follower = nodes.find((n) => n !== leader)!;
    await leader.propose("busy"); // the follower is writing it for 2 s
    await delay(100, { clock });
    const { term } = leader.status();
    const started = clock.now();
    const replies = await net.transportFor("probe").connect(follower.id).call<unknown[]>(
      "Raft.Step",
      { type: "heartbeat", from: leader.id, to: follower.id, term, commit: 0, context: 0 },
    );
    const waited = clock.now() - started;
    assert.deepEqual(
      replies.map((m) => (m as { type: string }).type),
      ["heartbeatResp"],
    );
    assert.ok(waited < 500, `the heartbeat was answered after ${waited} ms`);
    await Promise.all(nodes.map((n) => n.stop()));
  }, { seed: 16, limitMs: 120_000 });
});
