import assert from "node:assert/strict";
import { folderLogKind, openRaftStorage, StorageKindError } from "./segment_choice.ts";
import { StorageLossError } from "../store/storage_errors.ts";

Deno.test("openRaftStorage: without a kind it opens what the folder holds, Deno KV for a new one", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-log-kind-" });
  try {
    assert.equal(await folderLogKind(dataDir), undefined);
    for (const kind of ["kv", "segments"] as const) {
      const folder = `${dataDir}/${kind}`;
      await Deno.mkdir(folder);
      const made = await openRaftStorage(folder, { kind });
      await made.load();
      await made.save({
        hardState: { term: 1, vote: null, commit: 0 },
        entries: [{ index: 1, term: 1, kind: "command", command: "x" }],
        resetLog: false,
      });
      await made.close();
      assert.equal(await folderLogKind(folder), kind);
      const reopened = await openRaftStorage(folder, { expectState: true });
      const state = await reopened.load();
      assert.deepEqual(state.entries.at(-1), { index: 1, term: 1, kind: "command", command: "x" });
      await reopened.close();
      const other = kind === "kv" ? "segments" : "kv";
      await assert.rejects(openRaftStorage(folder, { kind: other }), StorageKindError);
    }
    const fresh = `${dataDir}/new`;
    await Deno.mkdir(fresh);
    const made = await openRaftStorage(fresh);
    await made.load();
    await made.close();
    assert.equal(await folderLogKind(fresh), "kv");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("folderLogKind: a folder holding both kinds is refused, not guessed", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-log-both-" });
  try {
    await Deno.writeTextFile(`${dataDir}/raft.kv`, "");
    await Deno.mkdir(`${dataDir}/raft.log`);
    await assert.rejects(folderLogKind(dataDir), /holds both/);
    await assert.rejects(openRaftStorage(dataDir), /holds both/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("openRaftStorage: a node that has met its peers and finds no log of either kind makes none", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-log-gone-" });
  try {
    // Its segment log's disk not mounted, say: refused, and no raft.kv made beside the loss
    // (which would make the folder hold both once the log is back).
    for (const kind of [undefined, "kv", "segments"] as const) {
      await assert.rejects(
        openRaftStorage(dataDir, { kind, expectState: true }),
        (err: Error) =>
          err instanceof StorageLossError && /neither its Deno KV log/.test(err.message),
      );
      assert.deepEqual([...Deno.readDirSync(dataDir)], [], `kind ${kind}`);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
