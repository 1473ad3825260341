import assert from "node:assert/strict";
import { limitReached, SMALL_WRITE_BYTES, smallWriteReserve } from "./replica_sizing.ts";

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
