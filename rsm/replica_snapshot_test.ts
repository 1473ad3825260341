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
