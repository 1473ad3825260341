import assert from "node:assert/strict";
import { realSegmentFs } from "./segment_fs.ts";
import { withTempDir } from "./test_util.ts";

Deno.test("segment fs: overlapping reads and writes of one real file each use their own offset", async () => {
  await withTempDir(async (dir) => {
    const file = await realSegmentFs.open(`${dir}/f`, { read: true, write: true, create: true });
    try {
      const bytes = Uint8Array.from({ length: 4096 }, (_, k) => k % 251);
      await file.write(bytes, 0);
      // Started together: without turns, one's seek would move the other's position.
      const reads = Array.from({ length: 16 }, (_, k) => {
        const into = new Uint8Array(100);
        return file.read(into, k * 200).then((n) => ({ k, n, into }));
      });
      const writes = [
        file.write(new Uint8Array([1, 2]), 4096),
        file.write(new Uint8Array([3]), 5000),
      ];
      for (const { k, n, into } of await Promise.all(reads)) {
        assert.equal(n, 100);
        assert.deepEqual(into, bytes.subarray(k * 200, k * 200 + 100), `read ${k}`);
      }
      await Promise.all(writes);
      const tail = new Uint8Array(2);
      assert.equal(await file.read(tail, 4096), 2);
      assert.deepEqual([...tail], [1, 2]);
      // A writeSync cannot wait its turn: refused while a read is under way, fine after.
      const reading = file.read(new Uint8Array(10), 0);
      assert.throws(() => file.writeSync(new Uint8Array([9]), 0), /writeSync while 1 read/);
      await reading;
      file.writeSync(new Uint8Array([9]), 0);
      const first = new Uint8Array(1);
      await file.read(first, 0);
      assert.equal(first[0], 9);
    } finally {
      file.close();
    }
  });
});
