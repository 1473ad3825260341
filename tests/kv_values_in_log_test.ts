/**
 * Large values written once per node (issue 16 §1, `valuesInLog`): a KV
 * cluster whose servers keep their state in a store and their Raft log in
 * segments (on `SimFs`), with every put's value kept in its log entry (a
 * threshold of 0, so the small simulated values go through pointers); the
 * values read back across crashes of every server, compaction and the
 * copy-forward of a small budget, which bounds the segments kept.
 */
import assert from "node:assert/strict";
import { simulate } from "../net/mod.ts";
import type { SegmentLogStorage } from "../raft/mod.ts";
import { startKvNode } from "../kv/mod.ts";
import { KvCluster, text } from "./kv_cluster.ts";

const SEGMENT_BYTES = 4096;

Deno.test("kv: values in the log: kept in the entries, read back across crashes, compaction and copy-forward", async () => {
  await simulate(async (sim) => {
    const cfg = await KvCluster.start(sim, 3, {
      storedState: true,
      segments: { segmentBytes: SEGMENT_BYTES },
      maxRaftState: 2000,
      server: { valuesInLog: { threshold: 0, budgetBytes: 2 * SEGMENT_BYTES } },
    });
    const { clerk } = cfg.makeClient();
    const model = new Map<string, string>();
    // Cold keys, written once: without copy-forward their segment would be kept for good,
    // and every segment after it.
    for (let c = 0; c < 5; c++) {
      const value = `cold ${c} `.padEnd(300, "c");
      await clerk.put(`c${c}`, value);
      model.set(`c${c}`, value);
    }
    let pointed = 0;
    let segmentsWritten = 0;
    for (let round = 0; round < 4; round++) {
      for (let j = 0; j < 80; j++) {
        const key = `k${j % 10}`;
        const value = `${round}/${j}/`.padEnd(150 + 3 * j, String.fromCharCode(97 + j % 26));
        await clerk.put(key, value);
        model.set(key, value);
      }
      for (const [key, value] of model) assert.equal(text(await clerk.get(key)), value, key);
      for (let i = 0; i < 3; i++) {
        const rows = [...cfg.stores.get(i)!.loggedRows.values()].reduce((a, b) => a + b, 0);
        pointed = Math.max(pointed, rows);
        const kept = (cfg.group.storage(i) as SegmentLogStorage).segments();
        segmentsWritten = Math.max(segmentsWritten, kept.sequences.at(-1)!);
        // The budget (2 segments kept only for values) holds, give or take the one being
        // copied forward and the live ones the snapshot does not cover.
        assert.ok(kept.sequences.length <= 6, `server ${i} keeps ${JSON.stringify(kept)}`);
      }
      // Every server crashes (a power loss) and restarts: the rows still read through the log.
      for (let i = 0; i < 3; i++) await cfg.shutdownServer(i);
      for (let i = 0; i < 3; i++) await cfg.startServer(i);
      cfg.connectAll();
      for (const [key, value] of model) assert.equal(text(await clerk.get(key)), value, key);
    }
    assert.ok(pointed > 0, "no row pointed into the log");
    assert.ok(segmentsWritten > 20, `only ${segmentsWritten} segments were written`);
    for (let i = 0; i < 3; i++) await cfg.shutdownServer(i);
  }, { seed: 16 });
});

Deno.test("kv: values in the log need the segment log", async () => {
  // Asked with the Deno KV log: refused before anything is opened.
  await assert.rejects(
    startKvNode({
      id: 0,
      peers: ["127.0.0.1:1"],
      dataDir: "/nonexistent",
      raftLog: "kv",
      valuesInLog: true,
    }),
    /needs raftLog: "segments"/,
  );
  // With the state in memory named: refused before anything is made.
  await assert.rejects(
    startKvNode({
      id: 0,
      peers: ["127.0.0.1:1"],
      dataDir: "/nonexistent",
      state: "memory",
      valuesInLog: true,
    }),
    /keeps its state in memory: start it with --state disk/,
  );
  // The kinds left to the folder: a new one gets the segment log and the state on disk (what
  // the values need); a folder of the Deno KV log is refused before anything is written in it.
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-vlog-kind-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers = [`127.0.0.1:${listener.addr.port}`];
  listener.close();
  const files = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  try {
    const fresh = `${dataDir}/fresh`;
    await (await startKvNode({ id: 0, peers, dataDir: fresh, httpOffset: null, valuesInLog: true }))
      .close();
    assert.ok(
      files(fresh).includes("raft.log") && files(fresh).includes("state.kv"),
      files(fresh).join(),
    );
    // Restarted with the option and nothing else, it is the same node.
    await (await startKvNode({ id: 0, peers, dataDir: fresh, httpOffset: null, valuesInLog: true }))
      .close();
    const kv = `${dataDir}/kv`;
    await (await startKvNode({ id: 0, peers, dataDir: kv, httpOffset: null, state: "disk" }))
      .close();
    const before = files(kv);
    await assert.rejects(
      startKvNode({ id: 0, peers, dataDir: kv, httpOffset: null, valuesInLog: true }),
      /needs raftLog: "segments"/,
    );
    assert.deepEqual(files(kv), before, "the refused folder is as it was");
    await (await startKvNode({ id: 0, peers, dataDir: kv, httpOffset: null })).close();
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
