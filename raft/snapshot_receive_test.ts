import assert from "node:assert/strict";
import { SnapshotReceiver, UNKNOWN_SIZE } from "./snapshot_receive.ts";
import type { SnapshotMessage } from "./types.ts";

const meta = { index: 5, term: 1, membership: { voters: ["a", "b"], learners: [] } };
const chunk = (offset: number, bytes: number[], size = UNKNOWN_SIZE): SnapshotMessage => ({
  type: "snapshot",
  from: "a",
  to: "b",
  term: 1,
  meta,
  offset,
  size,
  chunk: Uint8Array.from(bytes),
});

Deno.test("snapshot receive: a stream begun again drops the chunks of the one it supersedes not taken yet", () => {
  const receiver = new SnapshotReceiver({ streamed: true });
  // The service's disk stalls: nothing is taken while the sender tries again and again.
  for (let attempt = 0; attempt < 5; attempt++) {
    assert.equal(receiver.receive(chunk(0, [1, 2])).answer.offset, 2);
    assert.equal(receiver.receive(chunk(2, [3, 4])).answer.offset, 4);
  }
  const ops = receiver.take();
  assert.deepEqual(ops.map((op) => "offset" in op && op.offset), [0, 2], "one stream's chunks");
  // A stream that completed stays: Raft has recorded it; a new stream queues after it.
  assert.equal(receiver.receive(chunk(0, [1])).answer.offset, 1);
  const done = receiver.receive(chunk(1, [2], 2));
  assert.equal(done.answer.done, true);
  receiver.receive(chunk(0, [9]));
  const kept = receiver.take();
  assert.deepEqual(kept.map((op) => "offset" in op && [op.offset, op.last]), [
    [0, false],
    [1, true],
    [0, false],
  ]);
});
