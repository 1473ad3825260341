import assert from "node:assert/strict";
import { Random } from "../net/random.ts";
import { SimKv } from "./sim_kv.ts";
import { StateStore } from "./state_store.ts";

Deno.test("state batch: reads see each row's last staged write, across hundreds of entries, against a model", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const random = new Random(seed);
    const kv = new SimKv();
    const store = await StateStore.open(kv);
    // What the store holds (committed), and what a reader of the batch must see.
    const stored = new Map<string, string>();
    const sessions = new Map<string, number>();
    let index = 0;
    for (let round = 0; round < 3; round++) {
      const batch = store.batch();
      const model = new Map(stored);
      const modelSessions = new Map(sessions);
      // As many entries as a batch of the replica may take (512), over few rows: each row is
      // written by many entries, and read back after entries that did not write it.
      for (let e = 0; e < 600; e++) {
        const key = `k${random.int(20)}`;
        const client = `c${random.int(8)}`;
        if (random.chance(0.2)) {
          batch.delete(key);
          model.delete(key);
        } else {
          const value = `${e}-${random.int(1000)}`;
          batch.put(key, value);
          model.set(key, value);
        }
        batch.setSession(client, e);
        modelSessions.set(client, e);
        // A read inside the open entry, and of other rows written by earlier entries.
        assert.equal(await batch.get(key), model.get(key) ?? null, `seed ${seed}, entry ${e}`);
        batch.endEntry({ index: ++index, term: 1 });
        const other = `k${random.int(20)}`;
        assert.equal(await batch.get(other), model.get(other) ?? null, `seed ${seed}, ${other}`);
        const who = `c${random.int(8)}`;
        assert.equal(await batch.session(who), modelSessions.get(who), `seed ${seed}, ${who}`);
      }
      await batch.commit();
      for (const [k, v] of model) stored.set(k, v);
      for (const k of [...stored.keys()]) if (!model.has(k)) stored.delete(k);
      for (const [c, s] of modelSessions) sessions.set(c, s);
      for (let k = 0; k < 20; k++) {
        assert.equal(await store.get(`k${k}`), stored.get(`k${k}`) ?? null, `seed ${seed}`);
      }
      assert.equal(store.applied.index, index);
    }
    await store.close();
    kv.close();
  }
});
