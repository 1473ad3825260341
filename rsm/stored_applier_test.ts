import assert from "node:assert/strict";
import { VirtualClock } from "../net/clock.ts";
import { silentLogger } from "../net/logger.ts";
import type { Applied } from "../raft/mod.ts";
import { SimKv } from "../store/sim_kv.ts";
import { StateStore } from "../store/state_store.ts";
import type { StateBatch } from "../store/state_batch.ts";
import { StoredApplier, type StoredMachine } from "./stored_machine.ts";

/** Counts writes per key, in a store. */
class Counters implements StoredMachine<number> {
  constructor(readonly store: StateStore) {}
  async apply(command: unknown, state: StateBatch): Promise<number> {
    const n = Number(await state.get(command as string) ?? "0") + 1;
    state.put(command as string, String(n));
    return n;
  }
}

Deno.test("stored applier: asked per entry whether to answer once staged, it reports every entry once, in order, and an entry answered after the store only once stored", async () => {
  const clock = new VirtualClock();
  const store = await StateStore.open(new SimKv());
  let early = false;
  const applier = new StoredApplier(new Counters(store), {
    once: undefined,
    logger: silentLogger,
    node: "n1",
    clock,
    onFailure: (err) => {
      throw err;
    },
    early: () => early,
  });
  // Modes by entry: answered after the store, then staged (a follower), then after again;
  // entry 8 waits for the store when entry 9 is early: it must still be reported first.
  const modes = [false, false, false, true, true, true, true, false, true, true, false];
  const reported: { index: number; result: unknown; early: boolean; stored: number }[] = [];
  for (let i = 0; i < modes.length; i++) {
    early = modes[i];
    const item: Applied = { type: "command", index: i + 1, term: 1, command: `k${i % 3}` };
    // A run of entries ends (`last`) at every third, and at the end.
    await applier.take(item, {
      last: i % 3 === 2 || i === modes.length - 1,
      done: (it, outcome) =>
        reported.push({
          index: it.index,
          result: outcome && "result" in outcome ? outcome.result : outcome,
          early: modes[it.index - 1],
          stored: store.applied.index,
        }),
    });
  }
  await applier.close();
  assert.deepEqual(reported.map((r) => r.index), modes.map((_, i) => i + 1));
  // Results as applied in order: k0, k1, k2 counted up.
  assert.deepEqual(reported.map((r) => r.result), [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4]);
  for (const r of reported) {
    if (!r.early) assert.ok(r.stored >= r.index, `entry ${r.index} answered before it was stored`);
  }
  // Some early entries were answered while only staged (the test would pass vacuously else).
  assert.ok(reported.some((r) => r.early && r.stored < r.index));
  assert.equal(store.applied.index, modes.length);
  assert.equal(await store.get("k0"), "4");
  await store.close();
});

Deno.test("stored applier: an apply that cannot read its store (StorageCorruptionError) is not answered but thrown to the replica, which stops; another throw is the write's answer", async () => {
  const { StorageCorruptionError } = await import("../store/storage_errors.ts");
  for (const corrupt of [true, false]) {
    const store = await StateStore.open(new SimKv());
    const machine: StoredMachine<number> = {
      store,
      apply: () => {
        // A replica whose log lost a value the state points at reads it as damage: answering
        // with the error would make this replica's result differ from the others'.
        throw corrupt ? new StorageCorruptionError("log", "segment 3 is gone") : new Error("bad");
      },
    };
    const applier = new StoredApplier(machine, {
      once: undefined,
      logger: silentLogger,
      node: "n1",
      clock: new VirtualClock(),
      onFailure: () => {},
    });
    const answers: unknown[] = [];
    const taking = applier.take({ type: "command", index: 1, term: 1, command: "x" }, {
      last: true,
      done: (_, outcome) => answers.push(outcome),
    });
    if (corrupt) {
      await assert.rejects(taking, StorageCorruptionError);
      assert.deepEqual(answers, []);
    } else {
      await taking;
      assert.deepEqual(answers, [{ error: "apply", message: "bad" }]);
    }
    await applier.close().catch(() => {});
    await store.close();
  }
});

Deno.test("stored applier: a read of the store that fails during apply stops the replica, whatever the machine makes of it", async () => {
  // A disk read that fails here (EIO, too many open files) succeeds on the other replicas: the
  // entry must not be answered with an error on this one only, even if the machine turns the
  // failure into an error of its own.
  let failing = false;
  const kv = new Proxy(new SimKv(), {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        if (failing && (prop === "get" || prop === "getMany")) {
          return Promise.reject(new Error("Input/output error (os error 5)"));
        }
        return v.apply(target, args);
      };
    },
  });
  const store = await StateStore.open(kv, { cacheBytes: 0 });
  const machine: StoredMachine<number> = {
    store,
    apply: async (_command, state) => {
      try {
        return Number(await state.get("k") ?? "0") + 1;
      } catch {
        throw new Error("the value could not be read");
      }
    },
  };
  const applier = new StoredApplier(machine, {
    once: undefined,
    logger: silentLogger,
    node: "n1",
    clock: new VirtualClock(),
    onFailure: () => {},
  });
  const answers: unknown[] = [];
  failing = true;
  await assert.rejects(
    applier.take({ type: "command", index: 1, term: 1, command: "x" }, {
      last: true,
      done: (_, outcome) => answers.push(outcome),
    }),
    /Input\/output error/,
  );
  assert.deepEqual(answers, [], "the failed read was answered");
  failing = false;
  await applier.close().catch(() => {});
  await store.close();
});
