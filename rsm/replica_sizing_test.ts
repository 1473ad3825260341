import assert from "node:assert/strict";
import {
  firstSnapshotAt,
  limitReached,
  nextSnapshotAfterInstall,
  oldestWaitMs,
  SMALL_WRITE_BYTES,
  smallWriteReserve,
  snapshotThreshold,
} from "./replica_sizing.ts";
import type { ReplicaOptions } from "./replica_types.ts";

const MIB = 1 << 20;

function inProgress(writeBytes: number) {
  return {
    writes: 3,
    writeBytes,
    oldestWaitMs: 0,
    maxWrites: 1024,
    maxWriteBytes: 4 * MIB,
    maxQueueDelayMs: 1000,
  };
}

Deno.test("replica sizing: large writes leave an eighth of the byte limit to small ones", () => {
  assert.equal(smallWriteReserve(4 * MIB), 512 * 1024);
  // Large writes stop short of the limit by the reserve...
  const large = SMALL_WRITE_BYTES + 1;
  assert.equal(limitReached(large, inProgress(3.5 * MIB - large)), undefined);
  assert.match(
    limitReached(large, inProgress(3.5 * MIB - large + 1)) ?? "",
    /the limit is 4194304, less 524288 kept for writes of 65536 bytes or less/,
  );
  // ...which small ones may still use, up to the limit itself.
  assert.equal(limitReached(SMALL_WRITE_BYTES, inProgress(4 * MIB - SMALL_WRITE_BYTES)), undefined);
  assert.match(
    limitReached(100, inProgress(4 * MIB - 99)) ?? "",
    /bytes of writes are in progress and this one has 100; the limit is 4194304$/,
  );
  // A write of any size is admitted when none is in progress.
  assert.equal(limitReached(8 * MIB, { ...inProgress(0), writes: 0 }), undefined);
});

Deno.test("replica sizing: the snapshot threshold is maxRaftState, or ratio × the last snapshot when larger", () => {
  const options = (snapshotLogRatio?: number, maxRaftState?: number) =>
    ({ id: "b", peers: ["a", "b", "c"], maxRaftState, snapshotLogRatio }) as ReplicaOptions;
  // No ratio (the course's rule): the threshold alone, whatever the state's size.
  assert.equal(snapshotThreshold(options(undefined, 4 * MIB), 70 * MIB), 4 * MIB);
  // Ratio 1: a small state keeps the threshold, a large one waits for its own size of log.
  assert.equal(snapshotThreshold(options(1, 4 * MIB), 1 * MIB), 4 * MIB);
  assert.equal(snapshotThreshold(options(1, 4 * MIB), 70 * MIB), 70 * MIB);
  assert.equal(snapshotThreshold(options(0.5, 4 * MIB), 70 * MIB), 35 * MIB);
  // No maxRaftState: never, whatever the ratio.
  assert.equal(snapshotThreshold(options(1, undefined), 70 * MIB), -1);
  // Staggered across the voters by the same fractions as before: "b" is the 2nd of 3.
  assert.equal(firstSnapshotAt(options(1, 3 * MIB), 0), 2 * MIB);
  assert.equal(firstSnapshotAt(options(1, 3 * MIB), 30 * MIB), 20 * MIB);
  assert.equal(
    nextSnapshotAfterInstall(options(1, 3 * MIB), { leader: "a", snapshotBytes: 0 }),
    2 * MIB,
  );
  assert.equal(
    nextSnapshotAfterInstall(options(1, 3 * MIB), { leader: "c", snapshotBytes: 30 * MIB }),
    10 * MIB,
  );
});

Deno.test("oldestWaitMs: a small write is judged by the oldest small write in progress, a large one by the oldest of all", () => {
  const admitted = [{ at: 100, bytes: 1 << 20 }, { at: 250, bytes: 10 }, {
    at: 300,
    bytes: 2 << 20,
  }];
  assert.equal(oldestWaitMs(admitted, 10, 1000), 750);
  assert.equal(oldestWaitMs(admitted, 1 << 20, 1000), 900);
  assert.equal(oldestWaitMs(admitted.filter((w) => w.bytes > 10), 10, 1000), 0);
  assert.equal(oldestWaitMs([], 1 << 20, 1000), 0);
});
