import assert from "node:assert/strict";
import { delay, type Logger, RpcServer, simulate } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";
import { Replica, type ReplicaMachine } from "./mod.ts";

/** A counter whose snapshots fail, as a state over the codec's limit does; it counts the tries. */
class Unsnapshottable implements ReplicaMachine<number> {
  n = 0;
  tries = 0;
  apply(entry: unknown): number {
    return this.n += entry as number;
  }
  snapshot(): Uint8Array {
    // A bound on the tries, so that a loop retrying at once ends (and the test fails, not hangs).
    if (++this.tries > 50) return Uint8Array.of(this.n);
    throw new RangeError("the state is over the codec's limit");
  }
  restore(bytes: Uint8Array): void {
    this.n = bytes[0];
  }
}

Deno.test("replica: a snapshot that fails is tried again a threshold of log later, not at once, and logged", async () => {
  await simulate(async ({ clock, net, random }) => {
    const server = new RpcServer();
    net.addServer("a", server);
    const machine = new Unsnapshottable();
    const logged: string[] = [];
    const logger: Logger = { log: (level, message) => logged.push(`${level}: ${message}`) };
    const replica = await Replica.start(machine, {
      id: "a",
      peers: ["a"],
      transport: net.transportFor("a"),
      server,
      storage: new MemoryStorage(),
      clock,
      random,
      maxRaftState: 200,
      logger,
    });
    let applied = 0;
    while (applied < 20) {
      try {
        if ((await replica.submit(1)) !== null) applied++;
      } catch {
        await delay(10, { clock }); // not the leader yet
      }
    }
    assert.equal(machine.n, 20);
    // Each entry is a few dozen bytes: 20 of them pass a 200-byte threshold a few times, not 50.
    assert.ok(machine.tries >= 1 && machine.tries <= 10, `${machine.tries} snapshot tries`);
    assert.equal(logged.filter((l) => l === "error: snapshot failed").length, machine.tries);
    await replica.stop();
  }, { seed: 1 });
});

/** Values appended one by one; a snapshot is all of them, and it counts the bytes it encoded. */
class Blobs implements ReplicaMachine<number> {
  values: string[] = [];
  snapshotBytes = 0;
  apply(entry: unknown): number {
    return this.values.push(entry as string);
  }
  snapshot(): Uint8Array {
    const bytes = new TextEncoder().encode(JSON.stringify(this.values));
    this.snapshotBytes += bytes.byteLength;
    return bytes;
  }
  restore(bytes: Uint8Array): void {
    this.values = JSON.parse(new TextDecoder().decode(bytes));
  }
}

/** Applies `writes` values of 1 KiB to one replica; the bytes snapshotted and the log at the end. */
async function snapshotLoad(writes: number, snapshotLogRatio: number | undefined) {
  let out = { applied: 0, snapshotted: 0, snapshots: 0, raftState: 0, snapshot: 0 };
  await simulate(async ({ clock, net, random }) => {
    const server = new RpcServer();
    net.addServer("a", server);
    const machine = new Blobs();
    const storage = new MemoryStorage();
    const replica = await Replica.start(machine, {
      id: "a",
      peers: ["a"],
      transport: net.transportFor("a"),
      server,
      storage,
      clock,
      random,
      maxRaftState: 8 * 1024,
      snapshotLogRatio,
    });
    let applied = 0;
    while (applied < writes) {
      try {
        if ((await replica.submit(`${applied}`.padEnd(1024, "x"))) !== null) applied++;
      } catch {
        await delay(10, { clock }); // not the leader yet
      }
    }
    await delay(100, { clock }); // a snapshot in progress ends
    out = {
      applied: applied * 1024,
      snapshotted: machine.snapshotBytes,
      snapshots: replica.stats().snapshots,
      raftState: storage.raftStateSize(),
      snapshot: storage.snapshotSize(),
    };
    await replica.stop();
  }, { seed: 2 });
  return out;
}

Deno.test("replica: with snapshotLogRatio 1 the bytes snapshotted stay a small multiple of the bytes applied", async () => {
  // 400 KiB of state at an 8 KiB threshold: encoding the whole state every 8 KiB of log wrote
  // about 25× the bytes applied (the old policy, still what ratio 0 does: checked below).
  const r = await snapshotLoad(400, 1);
  assert.ok(r.snapshots >= 3, `${r.snapshots} snapshots`);
  assert.ok(
    r.snapshotted <= 3 * r.applied,
    `snapshotted ${r.snapshotted} for ${r.applied} applied`,
  );
  // The log is bounded by the last snapshot's size (plus the entry that crossed it), not by 8 KiB.
  assert.ok(r.raftState <= r.snapshot + 4096, `Raft state ${r.raftState}, snapshot ${r.snapshot}`);
  const old = await snapshotLoad(400, undefined);
  assert.ok(old.snapshotted > 10 * old.applied, `ratio 0: ${old.snapshotted} for ${old.applied}`);
  assert.ok(old.raftState <= 8 * 8 * 1024, `ratio 0: Raft state ${old.raftState}`);
});

Deno.test("replica: a read that finds the state damaged stops the replica, so that an intact one serves", async () => {
  await simulate(async ({ clock, net, random }) => {
    const server = new RpcServer();
    net.addServer("a", server);
    const logged: string[] = [];
    const logger: Logger = { log: (level, message) => logged.push(`${level}: ${message}`) };
    const replica = await Replica.start(new Unsnapshottable(), {
      id: "a",
      peers: ["a"],
      transport: net.transportFor("a"),
      server,
      storage: new MemoryStorage(),
      clock,
      random,
      logger,
    });
    while (replica.raft.status().role !== "leader") await delay(10, { clock });
    const { StorageCorruptionError } = await import("../store/storage_errors.ts");
    const reply = await replica.serve("reads", () => {
      throw new StorageCorruptionError("the Raft log", "the record of entry 7 fails its checksum");
    });
    assert.equal(reply.status, "retry", "the client is sent elsewhere");
    while (!replica.raft.status().stopped) await delay(10, { clock });
    assert.ok(
      logged.some((l) => l.startsWith("error: replica stopped: it could not read its state")),
    );
    while (!replica.stopped) await delay(10, { clock }); // it no longer serves
  }, { seed: 5, limitMs: 60_000 });
});
