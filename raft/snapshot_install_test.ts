import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import { simulate } from "../net/sim/simulate.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { RaftNode } from "./node.ts";
import type { Applied, RaftTransport } from "./node_options.ts";
import { SnapshotReceiver, UNKNOWN_SIZE } from "./snapshot_receive.ts";
import { recordInstalled, type SnapshotSink } from "./snapshot_install.ts";
import type { SnapshotSource } from "./snapshot_stream.ts";
import { MemoryStorage } from "./storage.ts";
import type { Message, SnapshotMessage, SnapshotMeta } from "./types.ts";

const meta5: SnapshotMeta = { index: 5, term: 2, membership: { voters: ["a", "b"], learners: [] } };

function chunk(meta: SnapshotMeta, offset: number, bytes: number[], last = false): SnapshotMessage {
  const data = Uint8Array.from(bytes);
  return {
    type: "snapshot",
    from: "a",
    to: "b",
    term: 2,
    meta,
    offset,
    size: last ? offset + data.length : UNKNOWN_SIZE,
    chunk: data,
  };
}

Deno.test("snapshot install: a streamed receiver hands out each chunk in order, once, and keeps no bytes", () => {
  const r = new SnapshotReceiver({ streamed: true });
  const ops = () =>
    r.take().map((op) => "abandon" in op ? "abandon" : `${op.offset}${op.last ? "!" : ""}`);
  assert.equal(r.receive(chunk(meta5, 0, [1, 2])).answer.offset, 2);
  // A duplicate and a chunk from the future are answered with the offset wanted, and not handed out.
  assert.equal(r.receive(chunk(meta5, 0 + 1, [9])).answer.offset, 2);
  assert.equal(r.receive(chunk(meta5, 4, [9])).answer.offset, 2);
  assert.equal(r.receive(chunk(meta5, 2, [3])).answer.offset, 3);
  assert.deepEqual(ops(), ["0", "2"]);
  // The sender starts again: a new stream (the sink begins it afresh).
  r.receive(chunk(meta5, 0, [1, 2]));
  // A chunk of another snapshot midway is answered with 0: its sender must start over.
  const meta9 = { ...meta5, index: 9, term: 3 };
  assert.equal(r.receive(chunk(meta9, 2, [3])).answer.offset, 0);
  const done = r.receive(chunk(meta5, 2, [3, 4], true));
  assert.deepEqual(done.answer, { index: 5, offset: 4, done: true });
  assert.equal(
    done.snapshot?.data.length,
    0,
    "the snapshot is data-less: its state is in the sink",
  );
  assert.deepEqual(ops(), ["0", "2!"]);
  // Another leader's snapshot, then one the follower's log covers: abandoned.
  r.receive(chunk(meta9, 0, [7]));
  r.reset();
  r.reset();
  assert.deepEqual(ops(), ["0", "abandon"], "abandoned once");
  const gathered = new SnapshotReceiver();
  gathered.receive(chunk(meta5, 0, [1]));
  assert.equal(gathered.hasChunks, false, "a gathering receiver hands nothing out");
  assert.deepEqual([...gathered.receive(chunk(meta5, 1, [2], true)).snapshot!.data], [1, 2]);
});

Deno.test("snapshot install: at start, a state switched to a snapshot Raft did not record is recorded", async () => {
  const storage = new MemoryStorage();
  const initial = { meta: { ...meta5, index: 0, term: 0 }, data: new Uint8Array() };
  const entries = [1, 2, 3].map((index) => ({
    index,
    term: 1,
    kind: "command" as const,
    command: `c${index}`,
  }));
  await storage.save({ snapshot: initial, entries, resetLog: false });
  const loaded = await storage.load();
  assert.equal(await recordInstalled(storage, { stored: loaded, meta: undefined }), loaded);
  const held = { ...meta5, index: 2, term: 1 };
  assert.equal(
    await recordInstalled(storage, { stored: loaded, meta: held }),
    loaded,
    "the log holds the snapshot's last entry: nothing to record",
  );
  const after = await recordInstalled(storage, { stored: loaded, meta: meta5 });
  assert.deepEqual(after.snapshot?.meta, meta5);
  assert.deepEqual(after.entries, []);
  const reloaded = await storage.load();
  assert.deepEqual(reloaded.snapshot?.meta, meta5, "recorded durably");
  assert.equal(reloaded.snapshot?.data.length, 0);
  assert.deepEqual(reloaded.entries, [], "the log was reset");
});

/** A service whose state (a list) counts as durable, streamed as JSON; it receives into a sink. */
class SinkList {
  items: string[] = [];
  applied = 0;
  seen: Applied[] = [];
  received: number[] = [];
  /** While set, a write waits for it. */
  gate: Promise<void> | undefined;
  finishedAfter: number[] = [];
  #incoming: number[] | undefined;
  #meta: SnapshotMeta | undefined;

  consume(node: RaftNode): Promise<void> {
    return (async () => {
      for await (const item of node.applied()) {
        this.seen.push(item);
        if (item.type === "snapshot") {
          assert.equal(item.data.length, 0, "a streamed snapshot is handed out data-less");
          assert.ok(this.applied >= item.index, "its state was switched to before");
        } else {
          if (item.type === "command") this.items.push(item.command as string);
          this.applied = item.index;
        }
      }
    })();
  }

  source(): SnapshotSource {
    return {
      open: () => {
        const bytes = new TextEncoder().encode(JSON.stringify(this.items));
        return Promise.resolve({
          index: this.applied,
          async *pages() {
            for (let at = 0; at < bytes.length; at += 7) yield bytes.slice(at, at + 7);
          },
          close: () => {},
        });
      },
    };
  }

  sink(): SnapshotSink {
    return {
      begin: (meta) => {
        this.#incoming = [];
        this.#meta = meta;
        return Promise.resolve();
      },
      write: async (chunk) => {
        await this.gate;
        this.received.push(chunk.length);
        this.#incoming!.push(...chunk);
      },
      finish: ({ after }) => {
        this.finishedAfter.push(after);
        this.items = JSON.parse(new TextDecoder().decode(Uint8Array.from(this.#incoming!)));
        this.applied = this.#meta!.index;
        this.#incoming = undefined;
        return Promise.resolve();
      },
      abandon: () => Promise.resolve(void (this.#incoming = undefined)),
      installed: () => undefined,
    };
  }
}

/** Counts the snapshot chunks sent over a transport. */
function counting(inner: RaftTransport, counts: { chunks: number }): RaftTransport {
  return {
    connect(peer: string) {
      const end = inner.connect(peer);
      return {
        call<T>(method: string, args?: unknown, options?: { timeoutMs?: number }) {
          if ((args as Message).type === "snapshot") counts.chunks++;
          return end.call<T>(method, args, options);
        },
      };
    },
  };
}

Deno.test("snapshot install: a follower writes each chunk before answering it, so the leader waits for its disk", async () => {
  await simulate(async (sim) => {
    const { net, clock } = sim;
    const counts = { chunks: 0 };
    const members = await Promise.all(["a", "b", "c"].map(async (id) => {
      const server = new RpcServer();
      net.addServer(id, server);
      const service = new SinkList();
      const storage = new MemoryStorage();
      const node = await RaftNode.start({
        id,
        peers: ["a", "b", "c"],
        server,
        transport: counting(net.transportFor(id), counts),
        storage,
        clock,
        random: sim.random.fork(),
        applied: 0,
        snapshotSource: service.source(),
        snapshotSink: service.sink(),
        snapshotChunkBytes: 5,
        // One chunk in flight: what is sent past a stall is one chunk per attempt (the window's
        // bound with several is checked in snapshot_stream_test.ts).
        snapshotWindowBytes: 5,
      });
      return { id, node, service, storage, server, done: service.consume(node) };
    }));
    const leaderOf = async (clock: Clock) => {
      while (true) {
        const leader = members.find((m) => m.node.status().role === "leader");
        if (leader) return leader;
        await delay(20, { clock });
      }
    };
    const leader = await leaderOf(clock);
    const lagging = members.find((m) => m !== leader)!;
    net.partition([lagging.id], members.filter((m) => m !== lagging).map((m) => m.id));
    let last = 0;
    for (let i = 1; i <= 12; i++) {
      const { index, term } = await leader.node.propose(`v${i}`);
      await leader.node.waitApplied(index, term);
      last = index;
    }
    for (const m of members) {
      if (m !== lagging) {
        while (m.service.applied < last) await delay(10, { clock });
        await m.node.compact(last);
      }
    }
    // The lagging follower's disk stalls: the leader sends no chunk beyond the one unanswered.
    let release!: () => void;
    lagging.service.gate = new Promise((resolve) => (release = resolve));
    net.heal();
    while (counts.chunks === 0) await delay(10, { clock });
    const sent = counts.chunks;
    await delay(2_000, { clock });
    assert.equal(lagging.service.received.length, 0);
    assert.ok(counts.chunks <= sent + 2, `${counts.chunks - sent} chunks sent past a stalled disk`);
    release();
    lagging.service.gate = undefined;
    while (lagging.service.applied < last) await delay(10, { clock });
    assert.deepEqual(lagging.service.items, leader.service.items);
    assert.ok(lagging.service.received.every((n) => n <= 5), "each write is one chunk");
    assert.ok(lagging.service.received.length >= 10, "the state came in many chunks");
    assert.equal(lagging.service.finishedAfter.length, 1, "one switch");
    const status = lagging.node.status();
    assert.ok(status.snapshotIndex >= last);
    const stored = await lagging.storage.load();
    assert.equal(stored.snapshot?.data.length, 0, "Raft recorded the snapshot data-less");
    const snapshots = lagging.service.seen.filter((s) => s.type === "snapshot");
    assert.equal(snapshots.length, 1);
    await Promise.all(members.map((m) => m.node.stop()));
    await Promise.all(members.map((m) => m.done));
  }, { seed: 7, limitMs: 600_000 });
});
