import assert from "node:assert/strict";
import { crc32, EMPTY_FLOOR, HighWaterMark, MARK_SYNC_MS } from "./high_water_mark.ts";

async function withMark(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-mark-" });
  try {
    await fn(`${dir}/raft.kv.mark`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function floorOnFile(path: string) {
  const copy = `${path}.copy`;
  await Deno.copyFile(path, copy);
  const mark = await HighWaterMark.open(copy);
  try {
    return mark.floor;
  } finally {
    await mark.close();
  }
}

Deno.test("high-water mark: a record is in the file at once; the newest of many wins on reopen", async () => {
  await withMark(async (path) => {
    const mark = await HighWaterMark.open(path);
    assert.deepEqual(mark.floor, EMPTY_FLOOR);
    for (let i = 1; i <= 5; i++) {
      mark.record({ term: 1, vote: "a", index: i, logTerm: 1 });
      assert.equal((await floorOnFile(path)).index, i, `record ${i} readable before any fsync`);
    }
    await mark.write({ term: 2, vote: "b", index: 5, logTerm: 1 });
    await mark.close();
    const again = await HighWaterMark.open(path);
    assert.deepEqual(again.floor, { term: 2, vote: "b", index: 5, logTerm: 1 });
    await again.close();
  });
});

Deno.test("high-water mark: a closed mark refuses records; close syncs what was recorded", async () => {
  await withMark(async (path) => {
    const mark = await HighWaterMark.open(path);
    mark.record({ term: 1, vote: null, index: 3, logTerm: 1 });
    await mark.close();
    assert.throws(() => mark.record({ term: 1, vote: null, index: 4, logTerm: 1 }), /closed/);
    assert.ok(MARK_SYNC_MS > 0);
    assert.equal((await floorOnFile(path)).index, 3);
  });
});

Deno.test("crc32: the IEEE CRC-32 of the check string and of random bytes, as the bitwise definition gives", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
  // The definition, one bit at a time (slow, for the test only).
  const bitwise = (bytes: Uint8Array) => {
    let c = 0xffffffff;
    for (const b of bytes) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  let seed = 1;
  for (const size of [1, 7, 64, 1000, 65_537]) {
    const bytes = new Uint8Array(size).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    assert.equal(crc32(bytes), bitwise(bytes), `${size} bytes`);
    assert.equal(crc32(bytes.subarray(3, size - 1)), bitwise(bytes.subarray(3, size - 1)));
  }
});
