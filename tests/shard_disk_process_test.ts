/**
 * A shard group server as a real process keeps its state on disk
 * (`distkit shard group serve`, issue 19): killed with SIGKILL in the
 * middle of a load and restarted, it serves every acknowledged write from
 * its folder, whose store holds the applied state; started with
 * `--state memory` that folder is refused (exit 3, what to do on stderr).
 */
import assert from "node:assert/strict";
import { delay } from "../net/mod.ts";
import { connectShard } from "../shard/mod.ts";
import { STATE_KIND_KEY } from "../rsm/mod.ts";
import { StateStore } from "../store/mod.ts";
import { freePorts, HOST, NodeProcess } from "./node_process.ts";

/** Waits until `done()`, polling; fails with `what` after a minute (a slow machine, not a hang). */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, `no progress after ${what} in 60 s`);
    await delay(50);
  }
}

/** What the folder's `raft.kv` records of the state, read while no process has it. */
async function storedState(dataDir: string): Promise<{ kind: string; applied: number }> {
  const kv = await Deno.openKv(`${dataDir}/raft.kv`);
  try {
    const kind = (await kv.get<Uint8Array>(STATE_KIND_KEY)).value;
    const store = await StateStore.open(kv);
    const applied = store.applied.index;
    await store.close();
    return { kind: kind === null ? "none" : new TextDecoder().decode(kind), applied };
  } finally {
    kv.close();
  }
}

Deno.test("shard disk process: a group server killed with SIGKILL restarts from its stored state, no acknowledged write lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "distkit-shard-disk-" });
  const [ctrler, server] = freePorts(2).map((p) => `${HOST}:${p}`);
  const groupDir = `${dir}/g100`;
  const groupArgs = [
    "shard",
    "group",
    "serve",
    "--gid",
    "100",
    "--ctrlers",
    ctrler,
    "--listen",
    server,
    "--peers",
    server,
    "--data",
    groupDir,
    "--max-raft-state",
    "20000",
  ];
  const nodes = [
    new NodeProcess(ctrler, [
      "shard",
      "ctrler",
      "serve",
      "--listen",
      ctrler,
      "--peers",
      ctrler,
      "--data",
      `${dir}/ctrler`,
    ]),
    // A new folder asked for disk (the default is memory).
    new NodeProcess(server, [...groupArgs, "--state", "disk"]),
  ];
  const group = nodes[1];
  const admin = connectShard([ctrler], { attemptTimeoutMs: 1000 });
  const acknowledged = new Map<string, string>();
  let stop = false;
  let writers: Promise<void>[] = [];
  try {
    for (const n of nodes) await n.start();
    assert.match(group.stdout, /group 100 server \(state on disk\) serving on/);
    await admin.admin.join({ 100: [server] });
    // Four writers, each putting its own keys one after another until told to stop.
    writers = Array.from({ length: 4 }, (_, w) =>
      (async () => {
        const { clerk, close } = connectShard([ctrler], { attemptTimeoutMs: 1000 });
        try {
          for (let i = 0; !stop; i++) {
            const key = `w${w}-${i}`;
            const value = `value ${w} ${i} `.repeat(4);
            await clerk.put(key, value);
            acknowledged.set(key, value);
          }
        } finally {
          await close();
        }
      })());
    await until(() => acknowledged.size >= 200, "the start");
    await group.kill();
    const atKill = acknowledged.size;
    // While it is down: its folder records disk, and its store holds applied entries.
    const state = await storedState(groupDir);
    assert.equal(state.kind, "disk");
    assert.ok(state.applied > 0, "the killed server's store holds nothing applied");
    await group.start();
    assert.match(group.stdout, /group 100 server \(state on disk\) serving on/);
    await until(() => acknowledged.size >= atKill + 200, "the restart");
    stop = true;
    await Promise.all(writers);
    for (const [key, value] of acknowledged) {
      assert.equal(await admin.clerk.get(key), value, `acknowledged ${key} lost`);
    }
    // The folder keeps its state on disk: `--state memory` is refused; without --state it is served
    // as the folder records it.
    await group.kill("SIGTERM");
    const memory = new NodeProcess(server, [...groupArgs, "--state", "memory"]);
    await assert.rejects(memory.start(), /keeps its shard group state on disk .*--state disk/);
    assert.equal(await memory.exit(), 3, "a refused --state is not a usage error");
    const disk = new NodeProcess(server, groupArgs);
    nodes.push(disk);
    await disk.start();
    assert.match(disk.stdout, /group 100 server \(state on disk\) serving on/);
    assert.equal(await admin.clerk.get("w0-0"), acknowledged.get("w0-0"));
    console.log(
      `  ${acknowledged.size} acknowledged puts (${atKill} before the SIGKILL, store at index ` +
        `${state.applied}), all read back after the restart`,
    );
  } finally {
    stop = true;
    await Promise.allSettled(writers);
    await admin.close();
    await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
    await Deno.remove(dir, { recursive: true });
  }
});
