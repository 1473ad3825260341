import assert from "node:assert/strict";
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import type { Random } from "../net/random.ts";
import { simulate } from "../net/sim/simulate.ts";
import { type HeldChunk, MAX_STALLS, Resender } from "./snapshot_resend.ts";
import { SnapshotReceiver } from "./snapshot_receive.ts";
import { SnapshotStreamer } from "./snapshot_stream.ts";
import { FIRST_CHUNK, STREAM_META, StreamFollower } from "./test_util.ts";

/** Sends what the resender says, reading chunks of 4 bytes from a state of `chunks` of them. */
function sendNext(resender: Resender, chunks: number, read = { n: 0 }): HeldChunk {
  let next = resender.next();
  if (next === "read") {
    const n = read.n++;
    resender.read(Uint8Array.from({ length: 4 }, (_, i) => 4 * n + i), n === chunks - 1);
    next = resender.next();
  }
  assert.ok(next !== undefined && next !== "read", "a chunk to send");
  return next;
}

Deno.test("snapshot resend: a chunk overtaken by the next is sent again from the bytes held, once per round", () => {
  const resender = new Resender(12);
  const read = { n: 0 };
  const sent = [0, 1, 2].map(() => resender.sent(sendNext(resender, 10, read)));
  assert.equal(resender.next(), "read");
  // Chunk 1 overtook chunk 0, so the follower did not take it, nor chunk 2 after it.
  assert.equal(resender.answered(sent[0], 4), "more");
  assert.equal(resender.answered(sent[1], 0), "more"); // it wanted 0 then: it has 4 now
  const again = resender.next();
  assert.ok(again !== undefined && again !== "read");
  assert.deepEqual([again.offset, [...again.chunk]], [4, [4, 5, 6, 7]], "back to 4");
  const resent = resender.sent(again);
  // Chunk 2's answer is of the round gone back already: it sends the stream back no more.
  assert.equal(resender.answered(sent[2], 4), "more");
  assert.deepEqual(resender.next(), {
    offset: 8,
    chunk: Uint8Array.from([8, 9, 10, 11]),
    last: false,
  });
  assert.equal(read.n, 3, "not read again");
  assert.equal(resender.answered(resent, 8), "more");
  assert.equal(resender.heldBytes, 4, "chunk 2 held: chunks 0 and 1 are the follower's");
});

Deno.test("snapshot resend: a follower that lost what it had, or wants what was never read, is not served", () => {
  const lost = new Resender(16);
  const first = lost.sent(sendNext(lost, 10));
  assert.equal(lost.answered(first, 4), "more");
  const second = lost.sent(sendNext(lost, 10));
  // It had 4 before chunk 1 reached it, and wants 0 now: it restarted.
  assert.equal(lost.answered(second, 0), "failed");

  const ahead = new Resender(16);
  const chunk = ahead.sent(sendNext(ahead, 10));
  assert.equal(ahead.answered(chunk, 8), "failed", "8 was never sent");
  const odd = new Resender(16);
  assert.equal(odd.answered(odd.sent(sendNext(odd, 10)), 2), "failed", "no chunk starts at 2");
});

Deno.test("snapshot resend: a follower that takes nothing however often the stream goes back fails it", () => {
  const resender = new Resender(16);
  const read = { n: 0 };
  let outcome: "more" | "failed" = "more";
  let rounds = 0;
  while (outcome === "more") {
    outcome = resender.answered(resender.sent(sendNext(resender, 10, read)), undefined);
    rounds++;
  }
  assert.equal(rounds, MAX_STALLS + 1);
  assert.equal(read.n, 1, "the one chunk was sent again and again, read once");
});

Deno.test("snapshot receive: a chunk sent again or arriving twice, late or early is never written twice nor out of order", () => {
  const meta = { index: 5, term: 1, membership: { voters: ["a", "b"], learners: [] } };
  const chunk = (stream: number, offset: number, size = Number.MAX_SAFE_INTEGER) => ({
    type: "snapshot" as const,
    from: "a",
    to: "b",
    term: 2,
    meta,
    offset,
    size,
    chunk: new Uint8Array(2),
    stream,
  });
  const receiver = new SnapshotReceiver({ streamed: true });
  const offsets = () => receiver.take().map((op) => "offset" in op ? op.offset : "abandon");
  assert.equal(receiver.receive(chunk(3, 2)).answer.offset, 0, "ahead: not taken");
  assert.equal(receiver.receive(chunk(3, 0)).answer.offset, 2);
  assert.equal(receiver.receive(chunk(3, 0)).answer.offset, 2, "chunk 0 again: not begun again");
  assert.equal(receiver.receive(chunk(3, 2)).answer.offset, 4);
  assert.equal(receiver.receive(chunk(3, 2)).answer.offset, 4, "a duplicate: not taken");
  assert.equal(receiver.receive(chunk(2, 4)).answer.offset, 4, "of an older stream: not taken");
  assert.equal(receiver.receive(chunk(2, 0)).answer.offset, 4, "nor its first chunk, late");
  assert.deepEqual(offsets(), [0, 2]);
  // A newer stream of the leader begins again; the last chunk ends it.
  assert.equal(receiver.receive(chunk(4, 0)).answer.offset, 2);
  const done = receiver.receive(chunk(4, 2, 4));
  assert.deepEqual(done.answer, { index: 5, offset: 4, done: true });
  assert.deepEqual(offsets(), [0, 2]);
});

/**
 * Streams a state of `bytes` in chunks of 16, 4 in flight, over calls that
 * take 1–3 ms, each lost (the request or its answer) or delivered twice
 * with the given odds. Resolves with the reads opened and the follower.
 */
function chaos(
  sim: { clock: Clock; random: Random },
  options: {
    bytes: number;
    lose: number;
    twice: number;
    follower?: (nth: number) => StreamFollower | undefined;
  },
) {
  const { clock, random } = sim;
  const state = Uint8Array.from({ length: options.bytes }, (_, i) => i % 251);
  let follower = new StreamFollower();
  let calls = 0;
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
            for (let at = 0; at < state.length; at += 40) yield state.subarray(at, at + 40);
          },
          close() {},
        });
      },
    },
    chunkBytes: 16,
    meta: () => STREAM_META,
    call: async (m) => {
      follower = options.follower?.(++calls) ?? follower;
      await delay(random.between(1, 3), { clock });
      if (random.chance(options.lose)) return []; // the request was lost
      if (random.chance(options.twice)) follower.receive(m);
      const answer = follower.receive(m);
      return random.chance(options.lose) ? [] : [answer];
    },
    step: () => {},
    failed: () => void failures++,
  });
  const run = async () => {
    // Bounded: a stream that never ends fails the test, not the run.
    for (const until = clock.now() + 60_000; follower.installed === undefined;) {
      assert.ok(clock.now() < until, `not installed in 60 s: ${reads} reads, ${failures} failed`);
      if (streamer.streaming === 0) streamer.offer(FIRST_CHUNK);
      await delay(10, { clock });
    }
    await streamer.stop();
    assert.deepEqual(follower.installed, [...state], "the state, whole");
    return { reads, failures };
  };
  return run();
}

Deno.test("snapshot resend: chunks reordered, lost and delivered twice still make one stream of the state, read once", async () => {
  const replay = Deno.env.get("SEED");
  const seeds = replay ? [Number(replay)] : Array.from({ length: 30 }, (_, i) => 3200 + i);
  for (const seed of seeds) {
    await simulate(async (sim) => {
      const { reads, failures } = await chaos(sim, { bytes: 2_000, lose: 0.1, twice: 0.1 });
      assert.equal(reads, 1, `${reads} reads, ${failures} streams failed`);
    }, { seed, limitMs: 600_000 });
  }
});

Deno.test("snapshot resend: a follower that lost what it was receiving is streamed the state again from a new read", async () => {
  await simulate(async (sim) => {
    // The follower restarts (a new receiver, nothing written) as the 40th chunk is sent.
    const { reads, failures } = await chaos(sim, {
      bytes: 2_000,
      lose: 0,
      twice: 0,
      follower: (nth) => nth === 40 ? new StreamFollower() : undefined,
    });
    assert.equal(reads, 2);
    assert.equal(failures, 1);
  }, { seed: 3301 });
});
