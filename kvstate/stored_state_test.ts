import assert from "node:assert/strict";
import { ArgumentsError } from "../net/errors.ts";
import { Random } from "../net/random.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { KvCommand, KvWrite } from "./kv_types.ts";
import { KvStateMachine } from "./state.ts";
import { StoredKvState } from "./stored_state.ts";

/** A random write on a few keys, with values that repeat (so cas sometimes holds). */
function randomWrite(random: Random): KvWrite {
  const key = `k${random.int(4)}`;
  const value = random.chance(0.2) ? new Uint8Array([random.int(3)]) : `v${random.int(3)}`;
  switch (random.int(4)) {
    case 0:
      return { type: "put", key, value };
    case 1:
      return { type: "append", key, value };
    case 2:
      return { type: "delete", key };
    default:
      return { type: "cas", key, expected: random.chance(0.3) ? null : `v${random.int(3)}`, value };
  }
}

Deno.test("stored KV state: gives the in-memory state's results, values and key count, across commits and reopens", async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = new Random(seed);
    const memory = new KvStateMachine({ maxValueBytes: 6 });
    let kv = new SimKv();
    let stored = await StoredKvState.open(await StateStore.open(kv), {
      limits: { maxValueBytes: 6 },
    });
    let batch = stored.store.batch();
    const sent: KvCommand[] = [];
    const seqs = [0, 0, 0];
    for (let index = 1; index <= 300; index++) {
      // A retry of an earlier write (the last of its session, or a stale one), or a new one.
      let command: KvCommand;
      if (sent.length > 0 && random.chance(0.2)) command = sent[random.int(sent.length)];
      else {
        const c = random.int(3);
        command = { client: `c${c}`, seq: ++seqs[c], write: randomWrite(random) };
        sent.push(command);
      }
      const want = memory.apply(command);
      assert.deepEqual(await stored.apply(command, batch), want, `seed ${seed}, entry ${index}`);
      batch.endEntry({ index, term: 1 });
      if (random.chance(0.2)) {
        await batch.commit();
        batch = stored.store.batch();
        if (random.chance(0.3)) {
          // Reopened: the state is what was committed.
          await stored.store.close();
          kv.close();
          kv = kv.reopen();
          stored = await StoredKvState.open(await StateStore.open(kv), {
            limits: { maxValueBytes: 6 },
          });
          batch = stored.store.batch();
        }
      }
    }
    await batch.commit();
    for (let k = 0; k < 4; k++) {
      assert.deepEqual(await stored.get(`k${k}`), memory.get(`k${k}`), `seed ${seed}, k${k}`);
    }
    assert.equal(stored.size, memory.size);
    const last = sent.at(-1)!;
    assert.deepEqual(await stored.applied(last), memory.applied(last));
    await stored.store.close();
  }
});

Deno.test("stored KV state: a malformed entry is refused, and keys too long for Deno KV are refused up front", async () => {
  const store = await StateStore.open(new SimKv());
  const stored = await StoredKvState.open(store);
  const batch = store.batch();
  const result = await stored.apply({ client: "c", write: "nonsense" }, batch);
  assert.equal(result.ok, false);
  assert.match(result.refused ?? "", /malformed log entry/);
  await assert.rejects(
    StoredKvState.open(store, { limits: { maxKeyBytes: 4096 } }),
    (err: Error) => err instanceof ArgumentsError && /at most 1900 bytes/.test(err.message),
  );
  await store.close();
});
