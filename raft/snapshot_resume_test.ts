/**
 * A stored state's stream that resends from where the follower is (go-back-N): what review32g found
 * and checked (a newer stream's first chunk overtaken after a stream failed midway; chunks of
 * another leader's stream with the same id; late duplicates of old streams with cut-offs).
 */
import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import { simulate } from "../net/sim/simulate.ts";
import { SnapshotReceiver } from "./snapshot_receive.ts";
import { SnapshotStreamer } from "./snapshot_stream.ts";
import { FIRST_CHUNK, STREAM_META, StreamFollower } from "./test_util.ts";

Deno.test("snapshot resume: a stream whose first chunk is overtaken, after a stream that failed midway, is not failed by the old stream's offset", async () => {
  await simulate(async ({ clock }) => {
    const state = Uint8Array.from({ length: 160 }, (_, i) => i);
    const follower = new StreamFollower();
    let reads = 0;
    let failures = 0;
    const streamer = new SnapshotStreamer({
      id: "a",
      source: {
        open: () => {
          reads++;
          return Promise.resolve({
            index: 7,
            async *pages() {
              yield state;
            },
            close() {},
          });
        },
      },
      chunkBytes: 16,
      meta: () => STREAM_META,
      call: async (m) => {
        // Stream 1: the follower takes 32 bytes, then is cut off (every later call lost) until
        // the stream fails. Stream 2: its first chunk arrives after the next (reordered).
        if (m.stream === 1 && m.offset >= 32) {
          await delay(1, { clock });
          return [];
        }
        await delay(m.stream === 2 && m.offset === 0 ? 5 : 1, { clock });
        return [follower.receive(m)];
      },
      step: () => {},
      failed: () => void failures++,
    });
    for (const until = clock.now() + 10_000; follower.installed === undefined;) {
      assert.ok(clock.now() < until, `not installed: ${reads} reads, ${failures} failed`);
      if (streamer.streaming === 0) streamer.offer(FIRST_CHUNK);
      await delay(10, { clock });
    }
    await streamer.stop();
    assert.deepEqual(follower.installed, [...state]);
    // Stream 1 failed (its follower was cut off); stream 2 had nothing wrong but a reordering.
    assert.equal(failures, 1, `${failures} streams failed, ${reads} reads`);
  }, { seed: 32 });
});

Deno.test("snapshot resume: a chunk of another leader's stream with the same id is not taken (term check)", () => {
  const receiver = new SnapshotReceiver({ streamed: true });
  const chunk = (term: number, stream: number, offset: number) => ({
    type: "snapshot" as const,
    from: term === 2 ? "a" : "c",
    to: "b",
    term,
    meta: STREAM_META,
    offset,
    size: Number.MAX_SAFE_INTEGER,
    chunk: new Uint8Array([term, offset]),
    stream,
  });
  receiver.receive(chunk(2, 1, 0));
  receiver.receive(chunk(2, 1, 2));
  receiver.take();
  // Leader c of term 3 numbers its streams from 1 too: its chunk at 4 is no continuation of a's.
  receiver.receive(chunk(3, 1, 4));
  assert.deepEqual(receiver.take(), [], "not written");
});

Deno.test("snapshot resume: a new leader's first stream begins even when the old leader's id was higher", () => {
  const receiver = new SnapshotReceiver({ streamed: true });
  const chunk = (term: number, stream: number, offset: number) => ({
    type: "snapshot" as const,
    from: term === 2 ? "a" : "c",
    to: "b",
    term,
    meta: STREAM_META,
    offset,
    size: Number.MAX_SAFE_INTEGER,
    chunk: new Uint8Array(2),
    stream,
  });
  receiver.receive(chunk(2, 5, 0));
  receiver.take();
  assert.equal(receiver.receive(chunk(3, 1, 0)).answer.offset, 2, "taken: begun");
  assert.deepEqual(receiver.take().map((op) => "offset" in op && op.offset), [0]);
});

Deno.test("snapshot resume: late duplicates (of old streams too) and cut-offs never write a byte twice or out of order", async () => {
  const replay = Deno.env.get("SEED");
  const seeds = replay ? [Number(replay)] : Array.from({ length: 100 }, (_, i) => 9000 + i);
  let totalReads = 0;
  let worst = "";
  let worstReads = 0;
  for (const seed of seeds) {
    await simulate(async ({ clock, random }: { clock: Clock; random: Random }) => {
      const state = Uint8Array.from({ length: 1_000 }, (_, i) => i % 251);
      const follower = new StreamFollower();
      let reads = 0;
      let failures = 0;
      let cutUntil = 0;
      const streamer = new SnapshotStreamer({
        id: "a",
        source: {
          open: () => {
            reads++;
            return Promise.resolve({
              index: 7,
              async *pages() {
                for (let at = 0; at < state.length; at += 40) yield state.subarray(at, at + 40);
              },
              close() {},
            });
          },
        },
        chunkBytes: 16,
        meta: () => STREAM_META,
        call: async (m, options) => {
          // Now and then the follower is cut off for a while (streams fail midway).
          if (random.chance(0.01)) cutUntil = clock.now() + 300;
          await delay(random.between(1, 3), { clock });
          // A call lost ends with its timeout, longer for the calls queued ahead (as RaftNode's).
          const timeout = () => delay(20 * (1 + (options?.queued ?? 0)), { clock }).then(() => []);
          if (clock.now() < cutUntil || random.chance(0.05)) return timeout();
          if (random.chance(0.05)) {
            // Delivered again, late: maybe after this stream failed and another began.
            const late = random.between(5, 400);
            delay(late, { clock }).then(() => follower.receive(m));
          }
          const answer = follower.receive(m);
          return random.chance(0.05) ? timeout() : [answer];
        },
        step: () => {},
        failed: () => void failures++,
      });
      for (const until = clock.now() + 600_000; follower.installed === undefined;) {
        assert.ok(clock.now() < until, `not installed: ${reads} reads, ${failures} failed`);
        if (streamer.streaming === 0) streamer.offer(FIRST_CHUNK);
        await delay(10, { clock });
      }
      await streamer.stop();
      assert.deepEqual(follower.installed, [...state]);
      totalReads += reads;
      if (reads > worstReads) [worstReads, worst] = [reads, `seed ${seed}: ${reads} reads`];
    }, { seed, limitMs: 6_000_000 });
  }
  console.log(`${seeds.length} seeds, ${totalReads} reads; worst ${worst}`);
});
