import assert from "node:assert/strict";
import { SnapshotStreamer } from "./snapshot_stream.ts";
import { UNKNOWN_SIZE } from "./snapshot_receive.ts";
import type { Message } from "./types.ts";
import { FIRST_CHUNK, STREAM_META } from "./test_util.ts";

/**
 * Streams pages of the given sizes (bytes numbered from 0) with chunks of 4
 * and a window of 10 bytes to a follower that answers each chunk only when
 * the test releases it; returns what the follower got and what each call was told.
 */
async function stream(pageSizes: number[]) {
  const got: number[] = [];
  const calls: { offset: number; size: number; queued: number; inflight: number }[] = [];
  const waiting: (() => void)[] = [];
  let inflight = 0;
  let closed = 0;
  let done = false;
  const streamer = new SnapshotStreamer({
    id: "a",
    source: {
      open: () =>
        Promise.resolve({
          index: 7,
          async *pages() {
            let n = 0;
            for (const size of pageSizes) yield Uint8Array.from({ length: size }, () => n++);
          },
          close: () => void closed++,
        }),
    },
    chunkBytes: 4,
    windowBytes: 10,
    meta: () => STREAM_META,
    call: (m, options) => {
      inflight += m.chunk.length;
      calls.push({ offset: m.offset, size: m.size, queued: options?.queued ?? -1, inflight });
      got.push(...m.chunk);
      const last = m.size !== UNKNOWN_SIZE;
      return new Promise<Message[]>((resolve) =>
        waiting.push(() => {
          inflight -= m.chunk.length;
          const offset = m.offset + m.chunk.length;
          resolve([{
            type: "snapshotResp",
            from: "b",
            to: "a",
            term: 2,
            index: 7,
            offset,
            done: last,
          }]);
        })
      );
    },
    step: (m) => void (done ||= m.type === "snapshotResp" && m.done),
    failed: () => assert.fail("the stream failed"),
  });
  streamer.offer(FIRST_CHUNK);
  // The follower answers the oldest chunk once the sender has filled its window.
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    waiting.shift()?.();
  }
  await streamer.stop();
  assert.equal(closed, 1, "the read was closed");
  return { got, calls };
}

Deno.test("snapshot window: several chunks in flight, never over the window, each told how many are ahead", async () => {
  const { got, calls } = await stream([9, 3, 0, 14]);
  assert.deepEqual(got, Array.from({ length: 26 }, (_, i) => i), "every byte once, in order");
  for (const c of calls) {
    assert.ok(c.inflight <= 10, `${c.inflight} bytes in flight at ${c.offset}`);
    assert.ok(c.queued >= 0 && c.queued <= 2, `${c.queued} queued ahead at ${c.offset}`);
  }
  assert.ok(calls.some((c) => c.queued === 2), "the window was used");
  // Only the last chunk carries the size.
  assert.deepEqual(calls.filter((c) => c.size !== UNKNOWN_SIZE), [calls[calls.length - 1]]);
  assert.equal(calls[calls.length - 1].size, 26);
});

Deno.test("snapshot window: an empty state is one empty last chunk", async () => {
  const { got, calls } = await stream([]);
  assert.deepEqual(got, []);
  assert.deepEqual(calls.map((c) => [c.offset, c.size, c.queued]), [[0, 0, 0]]);
});

Deno.test("snapshot window: a read ahead that fails while an answer is awaited fails the stream, and is no unhandled rejection", async () => {
  const answers: (() => void)[] = [];
  let failed: unknown;
  const streamer = new SnapshotStreamer({
    id: "a",
    source: {
      open: () =>
        Promise.resolve({
          index: 7,
          async *pages() {
            yield new Uint8Array(8);
            throw new Error("the database crashed");
          },
          close: () => {},
        }),
    },
    chunkBytes: 4,
    windowBytes: 4,
    meta: () => STREAM_META,
    // The first chunk is answered only once the read ahead (after the second) has failed.
    call: (m) =>
      new Promise<Message[]>((resolve) =>
        answers.push(() =>
          resolve([{
            type: "snapshotResp",
            from: "b",
            to: "a",
            term: 2,
            index: 7,
            offset: m.offset + m.chunk.length,
            done: false,
          }])
        )
      ),
    step: () => {},
    failed: (_peer, err) => void (failed = err ?? "no cause"),
  });
  streamer.offer(FIRST_CHUNK);
  while (answers.length === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  // Turns of the event loop with the read ahead failed and the answer still awaited.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  answers.shift()!();
  while (failed === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    answers.shift()?.();
  }
  assert.match(String((failed as Error).message), /the database crashed/);
  await streamer.stop();
});
