import assert from "node:assert/strict";
import { delay, simulate } from "../net/mod.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import { SimStorage } from "./sim_storage.ts";
import { MemoryStorage, type StorageBatch } from "./storage.ts";
import type { Entry } from "./types.ts";

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index++) {
    out.push({ index, term, kind: "command", command: `${term}.${index}` });
  }
  return out;
}

Deno.test("sim storage: a crash at any moment of a split save keeps a prefix of its commits", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    await simulate(async ({ clock, random }) => {
      const storage = new SimStorage({ clock, random: random.fork(), entriesPerCommit: 2 });
      await storage.save({
        hardState: { term: 1, vote: "a", commit: 0 },
        entries: entries(1, 6, 1),
        resetLog: false,
      });
      // Term 2 replaces entries 4.. with ten new ones: five commits.
      const saving = storage.save({
        hardState: { term: 2, vote: "b", commit: 9 },
        entries: entries(4, 13, 2),
        resetLog: false,
      });
      await delay(random.int(16), { clock });
      const after = storage.crash();
      await saving;
      const state = await after.load(); // never refused: nothing resolved was lost
      const log = state.entries;
      log.forEach((e, k) => assert.equal(e.index, k + 1, `seed ${seed}: a gap`));
      if (state.hardState.term === 1) {
        assert.deepEqual(log, entries(1, 6, 1), `seed ${seed}: the old state, whole`);
      } else {
        assert.equal(state.hardState.vote, "b");
        assert.deepEqual(log.slice(0, 3), entries(1, 3, 1));
        assert.deepEqual(
          log.slice(3),
          entries(4, log.length, 2),
          `seed ${seed}: new entries, a prefix`,
        );
        assert.ok(log.length >= 5, "the first commit holds the first entries");
        assert.ok(state.hardState.commit <= log.length, "the commit index is clamped");
      }
      // The restarted store keeps working, and its mark follows.
      await after.save({ entries: entries(log.length + 1, log.length + 1, 3), resetLog: false });
      assert.equal((await after.crash().load()).entries.length, log.length + 1);
    }, { seed });
  }
});

Deno.test("sim storage: a snapshot installed over a conflicting log, crashed part way, is not refused", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    await simulate(async ({ clock, random }) => {
      const storage = new SimStorage({ clock, random: random.fork(), entriesPerCommit: 1 });
      await storage.save({
        hardState: { term: 1, vote: "a", commit: 0 },
        entries: entries(1, 8, 1),
        resetLog: false,
      });
      const snapshot = {
        meta: { index: 5, term: 2, membership: { voters: ["a", "b", "c"], learners: [] } },
        data: new Uint8Array([1, 2, 3]),
      };
      const saving = storage.save({
        hardState: { term: 2, vote: null, commit: 5 },
        snapshot,
        entries: entries(6, 8, 2),
        resetLog: true,
      });
      await delay(random.int(10), { clock });
      const state = await storage.crash().load();
      await saving;
      if (state.snapshot) {
        assert.equal(state.snapshot.meta.index, 5);
        state.entries.forEach((e, k) => assert.deepEqual(e, entries(6 + k, 6 + k, 2)[0]));
      } else {
        assert.deepEqual(state.entries, entries(1, 8, 1));
      }
    }, { seed });
  }
});

Deno.test("sim storage: damage beyond the contract is found at load", async () => {
  await simulate(async ({ clock, random }) => {
    const storage = new SimStorage({ clock, random: random.fork(), name: "n1" });
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 0 },
      entries: entries(1, 3, 1),
      resetLog: false,
    });
    await storage.save({ entries: entries(4, 5, 1), resetLog: false });

    const flipped = storage.crash();
    flipped.flipBit();
    await assert.rejects(flipped.load(), StorageCorruptionError);

    const rolledBack = storage.crash();
    rolledBack.loseSaves(1);
    await assert.rejects(rolledBack.load(), (err: Error) => {
      assert.ok(err instanceof StorageLossError);
      assert.match(err.message, /sim:n1.*ends at 3, below entry 5/);
      return true;
    });

    const wiped = storage.crash();
    wiped.wipe();
    await assert.rejects(wiped.load(), StorageLossError);

    // Losing a save that changed only the commit index loses nothing acknowledged.
    await storage.save({
      hardState: { term: 1, vote: "a", commit: 5 },
      entries: [],
      resetLog: false,
    });
    const older = storage.crash();
    older.loseSaves(1);
    assert.equal((await older.load()).entries.length, 5);
  }, { seed: 3 });
});

Deno.test("sim storage: overlapping saves are refused (the contract says they never happen)", async () => {
  await simulate(async ({ clock, random }) => {
    const storage = new SimStorage({ clock, random });
    const first = storage.save({ entries: entries(1, 1, 1), resetLog: false });
    await assert.rejects(
      storage.save({ entries: entries(2, 2, 1), resetLog: false }),
      /must not overlap/,
    );
    await first;
  }, { seed: 1 });
});

Deno.test("sim storage: random saves load as they do from MemoryStorage, and every crash between them loads", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    await simulate(async ({ clock, random }) => {
      const memory = new MemoryStorage();
      const sim = new SimStorage({ clock, random: random.fork(), entriesPerCommit: 2 });
      let term = 1;
      let last = 0;
      let snap = 0;
      const terms = new Map<number, number>();
      const run = (from: number, to: number): Entry[] => {
        const out = entries(from, to, term);
        for (const e of out) terms.set(e.index, term);
        return out;
      };
      for (let step = 0; step < 60; step++) {
        const roll = random.int(5);
        let batch: StorageBatch;
        if (roll === 0 && last > snap) {
          // Compaction: a snapshot of applied entries.
          const index = random.between(snap + 1, last);
          batch = {
            snapshot: {
              meta: { index, term: terms.get(index)!, membership: { voters: ["a"], learners: [] } },
              data: new Uint8Array([step]),
            },
            entries: [],
            resetLog: false,
          };
          snap = index;
        } else if (roll === 1) {
          // An installed snapshot replaces the whole log, maybe beyond it.
          const index = random.between(snap + 1, last + 3);
          term++;
          terms.set(index, term);
          const after = random.int(3);
          batch = {
            hardState: { term, vote: null, commit: index },
            snapshot: {
              meta: { index, term, membership: { voters: ["a", "b"], learners: [] } },
              data: new Uint8Array([step, 1]),
            },
            entries: after > 0 ? run(index + 1, index + after) : [],
            resetLog: true,
          };
          snap = index;
          last = index + after;
        } else if (roll === 2 && last > snap) {
          // A new leader's entries replace a suffix.
          const from = random.between(snap + 1, last);
          term++;
          const to = from + random.int(5);
          batch = {
            hardState: { term, vote: "b", commit: snap },
            entries: run(from, to),
            resetLog: false,
          };
          last = to;
        } else {
          const to = last + 1 + random.int(6);
          batch = { entries: run(last + 1, to), resetLog: false };
          last = to;
        }
        await memory.save(batch);
        const saving = sim.save(batch);
        if (random.chance(0.3)) {
          await delay(random.int(8), { clock });
          await sim.crash().load(); // never refused: nothing resolved was lost
        }
        await saving;
        // Like DenoKvStorage, SimStorage clamps the commit index to what it holds.
        const expected = await memory.load();
        const held = Math.max(
          expected.snapshot?.meta.index ?? 0,
          expected.entries.at(-1)?.index ?? 0,
        );
        expected.hardState.commit = Math.max(
          expected.snapshot?.meta.index ?? 0,
          Math.min(expected.hardState.commit, held),
        );
        assert.deepEqual(await sim.load(), expected, `seed ${seed}, step ${step}`);
        assert.equal(sim.snapshotSize(), memory.snapshotSize());
      }
    }, { seed });
  }
});
