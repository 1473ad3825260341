import assert from "node:assert/strict";
import { EMPTY_FLOOR, HighWaterMark, MARK_SYNC_MS } from "./high_water_mark.ts";

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
