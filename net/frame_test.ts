import assert from "node:assert/strict";
import { FrameTooLargeError } from "./errors.ts";
import {
  ByteBudget,
  encodeFrames,
  FRAME_HEADER_BYTES,
  FrameBudgetError,
  FramedConnection,
  FrameDecoder,
  FrameTimeoutError,
} from "./frame.ts";
import { delay } from "./async.ts";
import { Random, seedFromEnv } from "./random.ts";

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

const sample = [bytes(1, 2, 3), bytes(), bytes(9), new Uint8Array(300).map((_, i) => i & 0xff)];

Deno.test("encodeFrames writes a big-endian length before each payload", () => {
  assert.deepEqual(encodeFrames([bytes(7), bytes()]), bytes(0, 0, 0, 1, 7, 0, 0, 0, 0));
  const big = encodeFrames([new Uint8Array(0x010203)]);
  assert.deepEqual(big.subarray(0, 4), bytes(0, 1, 2, 3));
  assert.equal(big.length, 0x010203 + FRAME_HEADER_BYTES);
  assert.deepEqual(encodeFrames([]), bytes());
});

Deno.test("FrameDecoder: many frames in one chunk", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(encodeFrames(sample)), sample);
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("FrameDecoder: a stream split at every byte boundary", () => {
  const stream = encodeFrames(sample);
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder();
    const frames = [
      ...decoder.push(stream.subarray(0, cut)),
      ...decoder.push(stream.subarray(cut)),
    ];
    assert.deepEqual(frames, sample, `cut at ${cut}`);
  }
  for (let cut1 = 0; cut1 <= 40; cut1++) {
    for (let cut2 = cut1; cut2 <= 40; cut2++) {
      const decoder = new FrameDecoder();
      const frames = [
        ...decoder.push(stream.subarray(0, cut1)),
        ...decoder.push(stream.subarray(cut1, cut2)),
        ...decoder.push(stream.subarray(cut2)),
      ];
      assert.deepEqual(frames, sample, `cuts at ${cut1} and ${cut2}`);
    }
  }
});

Deno.test("FrameDecoder: one byte at a time", () => {
  const stream = encodeFrames(sample);
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i++) frames.push(...decoder.push(stream.subarray(i, i + 1)));
  assert.deepEqual(frames, sample);
});

Deno.test("FrameDecoder: random chunking of random frames", () => {
  const seed = seedFromEnv();
  const random = new Random(seed);
  try {
    for (let round = 0; round < 50; round++) {
      const payloads = Array.from(
        { length: random.between(1, 30) },
        () => new Uint8Array(random.int(random.chance(0.1) ? 5000 : 40)).map(() => random.int(256)),
      );
      const stream = encodeFrames(payloads);
      const decoder = new FrameDecoder();
      const frames: Uint8Array[] = [];
      for (let at = 0; at < stream.length;) {
        const n = random.between(1, 700);
        frames.push(...decoder.push(stream.subarray(at, at + n)));
        at += n;
      }
      assert.deepEqual(frames, payloads);
    }
  } catch (err) {
    console.error(`FrameDecoder random chunking failed with SEED=${seed}`);
    throw err;
  }
});

Deno.test("FrameDecoder: payloads are copies, so the chunk buffer can be reused", () => {
  const decoder = new FrameDecoder();
  const chunk = encodeFrames([bytes(1, 2), bytes(3)]);
  const frames = decoder.push(chunk);
  chunk.fill(0xee);
  assert.deepEqual(frames, [bytes(1, 2), bytes(3)]);
  // Across chunks too.
  const stream = encodeFrames([bytes(4, 5, 6)]);
  const buffer = new Uint8Array(4);
  buffer.set(stream.subarray(0, 4));
  assert.deepEqual(decoder.push(buffer), []);
  buffer.set(stream.subarray(4, 6));
  assert.deepEqual(decoder.push(buffer.subarray(0, 2)), []);
  buffer.set(stream.subarray(6, 7));
  assert.deepEqual(decoder.push(buffer.subarray(0, 1)), [bytes(4, 5, 6)]);
});

Deno.test("FrameDecoder: zero-length frames", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes(0, 0, 0, 0, 0, 0, 0, 0)), [bytes(), bytes()]);
  assert.deepEqual(decoder.push(bytes(0, 0)), []);
  assert.deepEqual(decoder.push(bytes(0, 0)), [bytes()]);
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("FrameDecoder: an oversized header throws at once, before its payload arrives", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 10 });
  assert.deepEqual(decoder.push(encodeFrames([new Uint8Array(10)])), [new Uint8Array(10)]);
  assert.deepEqual(decoder.push(bytes(0, 0)), []);
  assert.throws(
    () => decoder.push(bytes(0, 11)),
    (err) => err instanceof FrameTooLargeError && err.size === 11 && err.limit === 10,
  );
  // The decoder stays failed.
  assert.throws(() => decoder.push(bytes(0, 0, 0, 0)), FrameTooLargeError);

  const huge = new FrameDecoder({ maxFrameBytes: 1024 });
  assert.throws(() => huge.push(bytes(0xff, 0xff, 0xff, 0xff)), (err) => {
    assert.ok(err instanceof FrameTooLargeError);
    assert.equal(err.size, 0xffff_ffff);
    return true;
  });
});

Deno.test("FrameDecoder.feed delivers the frames before an oversized header", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 4 });
  const chunk = new Uint8Array([...encodeFrames([bytes(1), bytes(2, 3)]), 0, 0, 0, 5]);
  const seen: Uint8Array[] = [];
  assert.throws(() => decoder.feed(chunk, (p) => seen.push(p)), FrameTooLargeError);
  assert.deepEqual(seen, [bytes(1), bytes(2, 3)]);
});

Deno.test("FrameDecoder: one large frame in many small chunks is linear", () => {
  const size = 8 * 1024 * 1024;
  const payload = new Uint8Array(size).map((_, i) => i * 31);
  const stream = encodeFrames([payload]);
  const decoder = new FrameDecoder();
  const start = performance.now();
  let frames: Uint8Array[] = [];
  for (let at = 0; at < stream.length; at += 1024) {
    frames = frames.concat(decoder.push(stream.subarray(at, at + 1024)));
  }
  const elapsed = performance.now() - start;
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], payload);
  // Quadratic copying (8,192 chunks of an 8 MiB frame) would take many seconds.
  assert.ok(elapsed < 2000, `decoding took ${elapsed.toFixed(0)} ms`);
});

Deno.test("FrameDecoder: many tiny frames in many chunks", () => {
  const payloads = Array.from({ length: 50_000 }, (_, i) => bytes(i & 0xff));
  const stream = encodeFrames(payloads);
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  const start = performance.now();
  for (let at = 0; at < stream.length; at += 7) {
    frames.push(...decoder.push(stream.subarray(at, at + 7)));
  }
  const elapsed = performance.now() - start;
  assert.deepEqual(frames, payloads);
  assert.ok(elapsed < 2000, `decoding took ${elapsed.toFixed(0)} ms`);
});

Deno.test("FrameDecoder rejects a bad limit", () => {
  assert.throws(() => new FrameDecoder({ maxFrameBytes: -1 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrameBytes: 1.5 }), RangeError);
});

Deno.test("frame decoder: a frame trickled a byte at a time comes out whole, gathered, not a piece per byte", () => {
  const payload = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);
  const bytes = encodeFrames([payload, new Uint8Array([9])]);
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) frames.push(...decoder.push(bytes.subarray(i, i + 1)));
  assert.equal(frames.length, 2);
  assert.deepEqual(frames[0], payload);
  assert.deepEqual(frames[1], new Uint8Array([9]));
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("frame decoder: a large frame takes its length from the shared budget until it is complete", () => {
  const budget = new ByteBudget(300_000);
  const a = new FrameDecoder({ budget });
  const b = new FrameDecoder({ budget });
  const big = encodeFrames([new Uint8Array(200_000)]);
  assert.deepEqual(a.push(big.subarray(0, 10)), []);
  assert.equal(budget.available, 100_000, "taken when the header arrived");
  assert.throws(() => b.push(big.subarray(0, 4)), FrameBudgetError);
  assert.throws(() => b.push(new Uint8Array(1)), FrameBudgetError, "b stays failed");
  // Small frames do not touch the budget.
  const c = new FrameDecoder({ budget });
  assert.equal(c.push(encodeFrames([new Uint8Array(1000)])).length, 1);
  assert.equal(a.push(big.subarray(10)).length, 1);
  assert.equal(budget.available, 300_000, "given back when the frame completed");
  // A stream that ends mid-frame gives its share back on release.
  assert.deepEqual(a.push(big.subarray(0, 100)), []);
  assert.equal(budget.available, 100_000);
  a.release();
  assert.equal(budget.available, 300_000);
  assert.throws(() => budget.give(1), RangeError);
});

Deno.test("framed connection: a frame not complete within frameTimeoutMs closes the connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialing = Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const limits: (FrameTimeoutError | FrameBudgetError)[] = [];
  const frames: Uint8Array[] = [];
  const server = new FramedConnection(await listener.accept(), {
    frameTimeoutMs: 100,
    onFrame: (payload) => frames.push(payload),
    onReadLimit: (err) => limits.push(err),
  });
  const client = await dialing;
  try {
    // Whole frames, however slow between them, are fine.
    await client.write(encodeFrames([new Uint8Array([1])]));
    await delay(150);
    const bytes = encodeFrames([new Uint8Array(1000)]);
    await client.write(bytes.subarray(0, 500));
    await server.closed;
    assert.equal(frames.length, 1);
    assert.equal(limits.length, 1);
    assert.ok(limits[0] instanceof FrameTimeoutError);
    assert.equal(limits[0].receivedBytes, 500);
    assert.ok(server.reason instanceof FrameTimeoutError);
  } finally {
    client.close();
    listener.close();
  }
});

Deno.test("FrameDecoder: a large frame arriving in parts is handed on in a fixed-length buffer", () => {
  // Deno's ops (Deno KV, files) refuse views of a resizable buffer; a large frame was received
  // into one, and a Raft node that wrote an entry from it stopped.
  const payload = new Uint8Array(300_000).map((_, i) => i % 251);
  const bytes = encodeFrames([payload]);
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 4096) {
    frames.push(...decoder.push(bytes.subarray(at, at + 4096)));
  }
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], payload);
  assert.equal((frames[0].buffer as ArrayBuffer).resizable, false);
});
