import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { ArgumentsError } from "../net/errors.ts";
import { simulate } from "../net/sim/simulate.ts";
import type { SimNetwork } from "../net/sim/network.ts";
import { RpcServer } from "../net/rpc_server.ts";
import type { Random } from "../net/random.ts";
import { RaftNode } from "./node.ts";
import type { RaftTransport } from "./node_options.ts";
import { MemoryStorage } from "./storage.ts";
import { StorageLossError } from "../store/storage_errors.ts";
import type { Message } from "./types.ts";
import { StreamedList } from "./test_util.ts";
import type { Logger } from "../net/logger.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";

/** Counts the snapshot chunks sent over a transport, and the most in flight at once to one peer. */
function countingTransport(
  inner: RaftTransport,
  counts: { chunks: number; maxInflight: number; maxBytes: number },
) {
  let inflight = 0;
  let bytes = 0;
  return {
    connect(peer: string) {
      const end = inner.connect(peer);
      return {
        async call<T>(method: string, args?: unknown, options?: { timeoutMs?: number }) {
          const m = args as Message;
          const size = m.type === "snapshot" ? m.chunk.length : 0;
          if (m.type === "snapshot") {
            counts.chunks++;
            counts.maxInflight = Math.max(counts.maxInflight, ++inflight);
            counts.maxBytes = Math.max(counts.maxBytes, bytes += size);
          }
          try {
            return await end.call<T>(method, args, options);
          } finally {
            if (m.type === "snapshot") {
              inflight--;
              bytes -= size;
            }
          }
        },
      };
    },
  };
}

/** Fails the `nth` snapshot chunk sent over a transport (as a lost connection would). */
function failingTransport(inner: RaftTransport, nth: number): RaftTransport {
  let chunks = 0;
  return {
    connect(peer: string) {
      const end = inner.connect(peer);
      return {
        call<T>(method: string, args?: unknown, options?: { timeoutMs?: number }) {
          if ((args as Message).type === "snapshot" && ++chunks === nth) {
            return Promise.reject(new Error("connection lost"));
          }
          return end.call<T>(method, args, options);
        },
      };
    },
  };
}

interface Member {
  node: RaftNode;
  service: StreamedList;
  storage: MemoryStorage;
  done: Promise<void>;
}

async function startMember(
  id: string,
  sim: { net: SimNetwork; clock: Clock; random: Random },
  options: {
    storage?: MemoryStorage;
    service?: StreamedList;
    transport?: RaftTransport;
    snapshotChunkBytes?: number;
    snapshotWindowBytes?: number;
    logger?: Logger;
  } = {},
): Promise<Member> {
  const server = new RpcServer();
  sim.net.addServer(id, server);
  const storage = options.storage ?? new MemoryStorage();
  const service = options.service ?? new StreamedList();
  const node = await RaftNode.start({
    id,
    peers: ["a", "b", "c"],
    server,
    transport: options.transport ?? sim.net.transportFor(id),
    storage,
    clock: sim.clock,
    random: sim.random.fork(),
    applied: service.applied,
    snapshotSource: service.source(),
    snapshotChunkBytes: options.snapshotChunkBytes,
    snapshotWindowBytes: options.snapshotWindowBytes,
    logger: options.logger,
  });
  return { node, service, storage, done: service.consume(node) };
}

async function leaderOf(members: Member[], clock: Clock): Promise<Member> {
  while (true) {
    const leader = members.find((m) => m.node.status().role === "leader");
    if (leader) return leader;
    await delay(20, { clock });
  }
}

async function commit(leader: RaftNode, command: string): Promise<number> {
  const { index, term } = await leader.propose(command);
  await leader.waitApplied(index, term);
  return index;
}

/**
 * Compacts a two-node group's log without bytes, starts c empty and checks
 * it is streamed the state with chunks of 4 bytes, never more than
 * `windowBytes` of them in flight; returns the most that were.
 */
async function streamToNewMember(windowBytes: number | undefined, seed: number) {
  let most = { inflight: 0, bytes: 0 };
  await simulate(async (sim) => {
    const { net, clock } = sim;
    const counts = { chunks: 0, maxInflight: 0, maxBytes: 0 };
    const options = { snapshotChunkBytes: 4, snapshotWindowBytes: windowBytes };
    const a = await startMember("a", sim, {
      transport: countingTransport(net.transportFor("a"), counts),
      ...options,
    });
    const b = await startMember("b", sim, {
      transport: countingTransport(net.transportFor("b"), counts),
      ...options,
    });
    const leader = await leaderOf([a, b], clock);
    let last = 0;
    for (let i = 1; i <= 20; i++) last = await commit(leader.node, `v${i}`);
    while (a.service.applied < last || b.service.applied < last) await delay(10, { clock });
    // Both states count as durable through `last`: the logs are dropped, no bytes handed over.
    await Promise.all([a.node.compact(last), b.node.compact(last)]);
    assert.equal(leader.node.status().snapshotIndex, last);
    assert.equal(leader.storage.snapshotSize(), 0);

    // c starts empty: the leader has no entries for it, so it streams its stored state.
    const c = await startMember("c", sim);
    const after = await commit(leader.node, "after");
    while (c.service.applied < after) await delay(10, { clock });
    assert.deepEqual(c.service.items, [...leader.service.items]);
    const snapshots = c.service.seen.filter((s) => s.type === "snapshot");
    assert.equal(snapshots.length, 1, "c got the state once, as one snapshot");
    assert.ok(snapshots[0].index >= last);
    const size = JSON.stringify(a.service.items.slice(0, 20)).length;
    assert.ok(counts.chunks >= Math.ceil(size / 4), `${counts.chunks} chunks for ${size} bytes`);
    // The window: bytes in flight never over it (at least one chunk goes out).
    assert.ok(counts.maxBytes <= Math.max(windowBytes ?? 16, 4), `${counts.maxBytes} in flight`);
    most = { inflight: counts.maxInflight, bytes: counts.maxBytes };
    assert.equal(
      leader.service.opened,
      leader.service.closed,
      "every read of the state was closed",
    );
    await Promise.all([a, b, c].map((m) => m.node.stop()));
    await Promise.all([a, b, c].map((m) => m.done));
  }, { seed, limitMs: 600_000 });
  return most;
}

Deno.test("stored snapshots: a node compacts without bytes and streams its state to a follower, within its window", async () => {
  // The default window is four chunks: several travel at once, never more bytes than that.
  // (Chunks are at most 4 bytes: a page's tail is shorter.)
  const wide = await streamToNewMember(undefined, 19);
  assert.ok(wide.inflight >= 4 && wide.bytes <= 16, `${JSON.stringify(wide)} in flight at most`);
  const narrow = await streamToNewMember(4, 19);
  assert.equal(narrow.inflight, 1, "a window of one chunk: one in flight at a time");
  const odd = await streamToNewMember(10, 21);
  assert.ok(odd.inflight >= 2 && odd.bytes <= 10, `${JSON.stringify(odd)} in flight at most`);
});

Deno.test("stored snapshots: a restarted node resumes after the service's durable applied index", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const members = await Promise.all(["a", "b", "c"].map((id) => startMember(id, sim)));
    let leader = await leaderOf(members, clock);
    let last = 0;
    for (let i = 1; i <= 10; i++) last = await commit(leader.node, `v${i}`);
    const follower = members.find((m) => m !== leader)!;
    while (follower.service.applied < last) await delay(10, { clock });
    // The follower's state is durable through `last`; it crashes and restarts from it.
    sim.net.deleteServer(follower.node.id);
    await follower.node.stop();
    await follower.done;
    const service = new StreamedList();
    service.items = [...follower.service.items];
    service.applied = follower.service.applied;
    const restarted = await startMember(follower.node.id, sim, {
      storage: follower.storage.copy(),
      service,
    });
    members[members.indexOf(follower)] = restarted;
    leader = await leaderOf(members, clock);
    const next = await commit(leader.node, "next");
    while (restarted.service.applied < next) await delay(10, { clock });
    assert.ok(
      restarted.service.seen.every((s) => s.index > last),
      `handed out again: ${
        restarted.service.seen.filter((s) => s.index <= last).map((s) => s.index)
      }`,
    );
    assert.deepEqual(restarted.service.items, [...leader.service.items]);
    assert.equal(restarted.node.status().appliedIndex, restarted.service.applied);
    await Promise.all(members.map((m) => m.node.stop()));
    await Promise.all(members.map((m) => m.done));
  }, { seed: 7, limitMs: 600_000 });
});

Deno.test("stored snapshots: a data-less snapshot beyond the service's state is a loss, not a start", async () => {
  const storage = new MemoryStorage();
  const meta = { index: 9, term: 2, membership: { voters: ["a"], learners: [] } };
  await storage.save({ snapshot: { meta, data: new Uint8Array() }, entries: [], resetLog: true });
  const options = {
    id: "a",
    peers: ["a"],
    transport: { connect: () => ({ call: () => Promise.reject(new Error("alone")) }) },
    server: { addService: () => {}, removeService: () => {} },
    storage,
    clock: { now: () => 0, setTimer: () => ({ cancel() {} }) },
  };
  await assert.rejects(
    RaftNode.start({ ...options, applied: 4 }),
    (err: Error) => err instanceof StorageLossError && /up to 4.*through 9/s.test(err.message),
  );
});

Deno.test("stored snapshots: a service's state beyond the stored log is a loss, not a start", async () => {
  const storage = new MemoryStorage();
  const meta = { index: 0, term: 0, membership: { voters: ["a"], learners: [] } };
  await storage.save({
    hardState: { term: 1, vote: "a", commit: 2 },
    snapshot: { meta, data: new Uint8Array() },
    entries: [1, 2].map((index) => ({ index, term: 1, kind: "command" as const, command: index })),
    resetLog: false,
  });
  await assert.rejects(
    RaftNode.start({
      id: "a",
      peers: ["a"],
      transport: { connect: () => ({ call: () => Promise.reject(new Error("alone")) }) },
      server: { addService: () => {}, removeService: () => {} },
      storage,
      clock: { now: () => 0, setTimer: () => ({ cancel() {} }) },
      applied: 5,
    }),
    (err: Error) => err instanceof StorageLossError && /up to 5.*ends at 2/s.test(err.message),
  );
});

Deno.test("stored snapshots: compact() without a snapshot source is refused", async () => {
  await simulate(async ({ clock, random }) => {
    const node = await RaftNode.start({
      id: "a",
      peers: ["a"],
      transport: { connect: () => ({ call: () => Promise.reject(new Error("alone")) }) },
      server: new RpcServer(),
      storage: new MemoryStorage(),
      clock,
      random: random.fork(),
    });
    await assert.rejects(node.compact(0), ArgumentsError);
    await node.stop();
  }, { seed: 1 });
});

Deno.test("stored snapshots: a stream cut midway goes on from where the follower is, from the one read, closed", async () => {
  await simulate(async (sim) => {
    const { net, clock } = sim;
    // Each of a and b may lead: each loses its third chunk once.
    const a = await startMember("a", sim, {
      transport: failingTransport(net.transportFor("a"), 3),
      snapshotChunkBytes: 8,
    });
    const b = await startMember("b", sim, {
      transport: failingTransport(net.transportFor("b"), 3),
      snapshotChunkBytes: 8,
    });
    const leader = await leaderOf([a, b], clock);
    let last = 0;
    for (let i = 1; i <= 10; i++) last = await commit(leader.node, `v${i}`);
    while (a.service.applied < last || b.service.applied < last) await delay(10, { clock });
    await Promise.all([a.node.compact(last), b.node.compact(last)]);
    const c = await startMember("c", sim);
    const after = await commit(leader.node, "after");
    while (c.service.applied < after) await delay(10, { clock });
    assert.deepEqual(c.service.items, leader.service.items);
    // The lost chunk was sent again from the bytes the leader held: the state was read once.
    assert.equal(leader.service.opened, 1, `${leader.service.opened} reads`);
    assert.equal(
      leader.service.opened,
      leader.service.closed,
      "every read of the state was closed",
    );
    await Promise.all([a, b, c].map((m) => m.node.stop()));
    await Promise.all([a, b, c].map((m) => m.done));
  }, { seed: 23, limitMs: 600_000 });
});

/** Has reads of `service`'s state fail with what `failure` gives for the nth (undefined: none). */
function failingReads(service: StreamedList, failure: (nth: number) => Error | undefined): void {
  const source = service.source();
  let reads = 0;
  service.source = () => ({
    open: async () => {
      const stream = await source.open();
      const err = failure(++reads);
      if (err === undefined) return stream;
      return {
        ...stream,
        async *pages() {
          yield* [];
          throw err;
        },
      };
    },
  });
}

Deno.test("stored snapshots: a stream that fails reading the leader's own state (not damage) says so in its log, each time, and starts again", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    // Every service's first two reads of its state fail (a busy disk, say).
    const lines: { level: string; message: string }[] = [];
    const logger: Logger = { log: (level, message) => lines.push({ level, message }) };
    const members: Member[] = [];
    for (const id of ["a", "b"]) {
      const service = new StreamedList(8);
      failingReads(service, (nth) => nth <= 2 ? new Error("the disk is busy") : undefined);
      members.push(await startMember(id, sim, { service, logger, snapshotChunkBytes: 8 }));
    }
    const leader = await leaderOf(members, clock);
    let last = 0;
    for (let i = 1; i <= 10; i++) last = await commit(leader.node, `v${i}`);
    while (members.some((m) => m.service.applied < last)) await delay(10, { clock });
    await Promise.all(members.map((m) => m.node.compact(last)));
    const c = await startMember("c", sim);
    const after = await commit(leader.node, "after");
    while (c.service.applied < after) await delay(10, { clock });
    assert.deepEqual(c.service.items, leader.service.items);
    const said = lines.filter((l) =>
      l.level === "error" && /snapshot stream to c failed: the disk is busy/.test(l.message)
    );
    assert.equal(said.length, 2, JSON.stringify(lines));
    assert.ok(!leader.node.status().stopped);
    await Promise.all([...members, c].map((m) => m.node.stop()));
    await Promise.all([...members, c].map((m) => m.done));
  }, { seed: 31, limitMs: 600_000 });
});

Deno.test("stored snapshots: a leader whose own state is damaged stops when its stream finds it, and another member leads and streams", async () => {
  await simulate(async (sim) => {
    const { clock } = sim;
    const lines: { level: string; message: string }[] = [];
    const logger: Logger = { log: (level, message) => lines.push({ level, message }) };
    const damaged = new Set<string>();
    const members: Member[] = [];
    for (const id of ["a", "b"]) {
      const service = new StreamedList(8);
      failingReads(
        service,
        () =>
          damaged.has(id)
            ? new StorageCorruptionError("test", 'row "k" fails its checksum')
            : undefined,
      );
      members.push(await startMember(id, sim, { service, logger, snapshotChunkBytes: 8 }));
    }
    const leader = await leaderOf(members, clock);
    let last = 0;
    for (let i = 1; i <= 10; i++) last = await commit(leader.node, `v${i}`);
    while (members.some((m) => m.service.applied < last)) await delay(10, { clock });
    await Promise.all(members.map((m) => m.node.compact(last)));
    // The leader's store is damaged under rows only a whole read meets.
    damaged.add(leader.node.id);
    const c = await startMember("c", sim);
    while (!leader.node.status().stopped) await delay(10, { clock });
    assert.throws(
      () => leader.node.propose("x"),
      (err: Error) => err.cause instanceof StorageCorruptionError,
    );
    // The other two elect a leader, which streams its intact state to c.
    const rest = members.filter((m) => m !== leader);
    const next = await leaderOf([...rest, c], clock);
    assert.notEqual(next, c, "c had no log to lead with");
    const after = await commit(next.node, "after");
    while (c.service.applied < after) await delay(10, { clock });
    assert.deepEqual(c.service.items, next.service.items);
    const said = lines.filter((l) =>
      l.level === "error" && l.message.includes(`Raft node ${leader.node.id}`)
    ).map((l) => l.message);
    assert.equal(said.length, 2, JSON.stringify(said));
    assert.match(said[0], /the snapshot stream to c could not read this node's state/);
    assert.match(said[1], /stopped: .*fails its checksum/);
    await Promise.all([...rest, c].map((m) => m.node.stop()));
    await Promise.all([...members, c].map((m) => m.done));
  }, { seed: 31, limitMs: 600_000 });
});
