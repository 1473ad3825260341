/**
 * The acceptance test of the `rsm` toolkit: a service written only against
 * its public API (the ticket dispenser of `samples/ticket_service.ts`, on
 * `rsm/`, `net/` and `raft/`; nothing of the KV service), exactly-once by
 * default, with a poison pill.
 *
 * - A call retried after its reply was lost gets the ticket it was given.
 * - A command whose `apply` throws is answered with an `ApplyError` on every
 *   replica alike; no replica stops and the cluster keeps serving. A
 *   malformed one is refused before it is proposed.
 * - The dedup table travels in snapshots: a retry after every server has
 *   restarted from its snapshot still gets the recorded ticket.
 * - Forgetting `clock`, `random` or `id` on a client inside `simulate`
 *   throws `MissingEnvironmentError`.
 * - Randomized: RSM_SEEDS seeds (default 50; `SEED=<n>` replays one) of
 *   partitions, crashes and restarts, an unreliable network and lossy
 *   links, with clients taking tickets (some sold out) and peeking; the
 *   history must be linearizable (so no ticket twice, none lost for an
 *   acknowledged call), and every running replica must still serve.
 */
import assert from "node:assert/strict";
import { checkOperations, type Model, type Operation, renderHtml } from "../checker/mod.ts";
import {
  type ClientEnd,
  delay,
  type Logger,
  MissingEnvironmentError,
  simulate,
  type Simulation,
  TimeoutError,
  type Transport,
} from "../net/mod.ts";
import { ApplyError, type Replica, ReplicaClient, RequestError } from "../rsm/mod.ts";
import { startTicketReplica, TicketClerk } from "../samples/ticket_service.ts";
import { ReplicaCluster } from "./replica_cluster.ts";
import { runSeeds } from "./seeds.ts";

/** A group of ticket replicas on the simulated network. */
function tickets(
  sim: Simulation,
  n: number,
  options: { maxRaftState?: number; logger?: Logger } = {},
): ReplicaCluster<Replica<number>> {
  return new ReplicaCluster(sim, n, {
    start: (context) => startTicketReplica({ ...context, ...options }),
  });
}

let clients = 0;

/**
 * A clerk of `group` that retries through any outage (or until `deadlineMs`
 * of virtual time); `wrap` may stand between it and the network.
 */
function clerk(
  group: ReplicaCluster<Replica<number>>,
  options: { wrap?: (t: Transport) => Transport; deadlineMs?: number } = {},
): TicketClerk {
  const wrap = options.wrap ?? ((t: Transport) => t);
  const name = `client${clients++}`;
  const transport = wrap(group.wiring.clientTransport(name, group.wiring.all));
  return new TicketClerk(transport, group.ids, {
    clock: group.sim.clock,
    random: group.random.fork(),
    id: name,
    deadlineMs: options.deadlineMs ?? Infinity,
  });
}

/** A transport whose first `Tickets.Take` is delivered and run, and its reply lost. */
function losingFirstReply(transport: Transport): Transport & { lost: number } {
  const wrapper = {
    lost: 0,
    connect(peer: string): ClientEnd {
      const end = transport.connect(peer);
      return {
        peer: end.peer,
        async call<T>(method: string, args?: unknown, options?: object): Promise<T> {
          const reply = await end.call<T>(method, args, options);
          const ok = (reply as { status?: string }).status === "ok";
          if (method === "Tickets.Take" && ok && wrapper.lost === 0) {
            wrapper.lost++;
            throw new TimeoutError(method, 100); // as if the reply never came
          }
          return reply;
        },
      };
    },
  };
  return wrapper;
}

Deno.test("rsm service: a call retried after its reply was lost gets the same ticket", async () => {
  await simulate(async (sim) => {
    const group = tickets(sim, 3);
    await group.startAll();
    let lossy: ReturnType<typeof losingFirstReply> | undefined;
    const ck = clerk(group, { wrap: (t) => lossy = losingFirstReply(t) });
    assert.equal(await ck.take(), 1);
    assert.equal(lossy?.lost, 1, "the first reply was lost and the call retried");
    assert.equal(await ck.peek(), 2, "the retry did not take a second ticket");
    assert.equal(await ck.take(), 2);
    await group.shutdownAll();
  }, { seed: 1 });
});

Deno.test("rsm service: a poison pill is answered with ApplyError and halts nobody", async () => {
  await simulate(async (sim) => {
    const warnings: string[] = [];
    const logger: Logger = { log: (level, message) => warnings.push(`${level} ${message}`) };
    const group = tickets(sim, 3, { logger });
    await group.startAll();
    // A halted cluster would leave the calls retrying: give them a deadline.
    const ck = clerk(group, { deadlineMs: 20_000 });
    assert.equal(await ck.take(), 1);
    await assert.rejects(ck.take(0), (err: Error) => {
      assert.ok(err instanceof ApplyError, `${err}`);
      assert.match(err.reason, /sold out: ticket 2 is past 0/);
      return true;
    });
    // Refused before it is proposed: the log does not grow.
    const leader = group.server(group.leader()!);
    const committed = leader.raft.status().commitIndex;
    const raw = new ReplicaClient(
      group.wiring.clientTransport("raw", group.wiring.all),
      group.ids,
      {
        clock: sim.clock,
        random: group.random.fork(),
        id: "raw",
        deadlineMs: 20_000,
      },
    );
    await assert.rejects(raw.submit("Tickets.Take", "garbage"), RequestError);
    assert.equal(leader.raft.status().commitIndex, committed);
    // A raw proposal of the poison (no session) is answered alike.
    await assert.rejects(leader.submit({ op: "take", max: 0 }), ApplyError);
    assert.equal(await ck.take(), 2, "the cluster keeps serving");
    // Every replica applied the poison, answered it, and is still up and in step.
    await delay(1000, { clock: sim.clock });
    const applied = new Set<number>();
    for (let i = 0; i < group.n; i++) {
      const replica = group.server(i);
      assert.ok(!replica.stopped, `replica ${i} stopped`);
      applied.add(replica.appliedIndex);
    }
    assert.equal(applied.size, 1, `replicas out of step: applied ${[...applied]}`);
    const threw = warnings.filter((w) => w.startsWith("warn apply threw"));
    assert.equal(threw.length, 2 * group.n, `each replica logged both poisons: ${warnings}`);
    await group.shutdownAll();
  }, { seed: 2 });
});

Deno.test("rsm service: the dedup table survives a restart from snapshots", async () => {
  await simulate(async (sim) => {
    const group = tickets(sim, 3, { maxRaftState: 200 });
    await group.startAll();
    const transport = group.wiring.clientTransport("c", group.wiring.all);
    const client = new ReplicaClient(transport, group.ids, {
      clock: sim.clock,
      random: group.random.fork(),
      deadlineMs: Infinity,
    });
    // What ReplicaClient.submit sends, by hand: to retry one write under its old stamp.
    const take = async (session: string, seq: number): Promise<number> => {
      const reply = await client.call<{ result: number }>(
        "Tickets.Take",
        { client: session, seq, command: { op: "take" } },
        { operation: "take", write: true },
      );
      assert.equal(reply?.status, "ok");
      return (reply as { result: number }).result;
    };
    const first = await take("x", 1);
    for (let k = 0; k < 20; k++) await take(`filler${k}`, 1); // past maxRaftState: snapshots
    await delay(1000, { clock: sim.clock });
    assert.ok(group.snapshotSize() > 0, "a snapshot was taken");
    await group.shutdownAll();
    await group.startAll();
    // Before any election: what the replica knows, it restored from its snapshot,
    // which covers the first write (x's) and the table beside the machine.
    const status = group.server(0).status();
    assert.ok(status.snapshotIndex > 2 && status.sessions > 0, JSON.stringify(status));
    assert.equal(status.leader, null, "no election yet: nothing replayed from a leader");
    assert.equal(await take("x", 1), first, "the retry got the recorded ticket");
    assert.equal(await take("y", 1), 22, "and took no ticket of its own");
    await group.shutdownAll();
  }, { seed: 3 });
});

Deno.test("rsm service: a client inside simulate without clock, random or id fails loudly", async () => {
  await simulate(async (sim) => {
    const group = tickets(sim, 1);
    const transport = group.wiring.clientTransport("c", group.wiring.all);
    assert.throws(() => new ReplicaClient(transport, group.ids), MissingEnvironmentError);
    assert.throws(
      () => new ReplicaClient(transport, group.ids, { clock: sim.clock }),
      MissingEnvironmentError,
    );
    const noId = new ReplicaClient(transport, group.ids, {
      clock: sim.clock,
      random: sim.random.fork(),
    });
    await assert.rejects(noId.submit("Tickets.Take", { op: "take" }), MissingEnvironmentError);
  }, { seed: 4 });
});

/** A call of the randomized test: take (some sold out at `max`) or peek. */
type Input = { op: "take"; max?: number } | { op: "peek" };
/** The ticket, "sold out", or the next ticket peeked. */
type Output = number | "sold out";

/** The dispenser: the state is the next ticket. */
const model: Model<number, Input, Output> = {
  init: () => 1,
  step: (next, input, output) => {
    if (input.op === "peek") return output === next ? next : undefined;
    if (input.max !== undefined && next > input.max) {
      return output === "sold out" ? next : undefined;
    }
    return output === next ? next + 1 : undefined;
  },
  describeOperation: (input, output) => `${JSON.stringify(input)} → ${JSON.stringify(output)}`,
};

const FAULT_MS = 3_000;

async function runSeed(seed: number): Promise<{ ops: number; faults: number }> {
  const schedule: string[] = [];
  try {
    return await simulate(async (sim) => {
      const { random } = sim;
      const n = random.chance(0.5) ? 3 : 5;
      const maxRaftState = random.chance(0.5) ? undefined : 300 + random.int(1700);
      const group = tickets(sim, n, { maxRaftState });
      sim.net.setReliable(!random.chance(0.3));
      sim.net.setLongDelays(true);
      await group.startAll();
      schedule.push(`${n} servers, maxRaftState ${maxRaftState}`);
      const history: Operation<Input, Output>[] = [];
      let events = 0;
      const record = async (client: number, input: Input, run: () => Promise<Output>) => {
        const call = ++events;
        const output = await run();
        history.push({ client, input, call, output, return: ++events });
      };
      let done = false;
      const loops = Array.from({ length: 2 + random.int(3) }, async (_, id) => {
        // Far longer than any outage of the run lasts: a halted cluster fails, not hangs.
        const ck = clerk(group, { deadlineMs: 120_000 });
        let ops = 0;
        while (!done) {
          await delay(random.int(20), { clock: sim.clock });
          const roll = random.int(10);
          if (roll < 2) {
            await record(id, { op: "peek" }, () => ck.peek());
          } else {
            // Some takes set a limit the numbers soon pass: sold out, an ApplyError.
            const max = roll < 4 ? 1 + random.int(30) : undefined;
            await record(id, { op: "take", max }, async () => {
              try {
                return await ck.take(max);
              } catch (err) {
                if (err instanceof ApplyError && /sold out/.test(err.reason)) return "sold out";
                throw err;
              }
            });
          }
          ops++;
        }
        return ops;
      });
      for (const loop of loops) loop.catch(() => {}); // awaited below
      const down = new Set<number>();
      let faults = 0;
      const end = sim.clock.now() + FAULT_MS;
      while (sim.clock.now() < end) {
        await delay(100 + random.int(400), { clock: sim.clock });
        faults++;
        const at = `${sim.clock.now().toFixed(0)} ms`;
        const roll = random.int(100);
        if (roll < 30) {
          const side = group.wiring.all.map(() => random.int(2));
          const a = group.wiring.all.filter((i) => side[i] === 0);
          const b = group.wiring.all.filter((i) => side[i] === 1);
          group.wiring.partition(a, b);
          schedule.push(`${at}: partition [${a}] [${b}]`);
        } else if (roll < 45) {
          group.connectAll();
          schedule.push(`${at}: heal`);
        } else if (roll < 70) {
          const i = random.int(n);
          if (down.delete(i)) {
            await group.startServer(i);
            group.connectAll();
            schedule.push(`${at}: restart ${i} (and heal)`);
          } else {
            await group.shutdownServer(i);
            down.add(i);
            schedule.push(`${at}: crash ${i}`);
          }
        } else if (roll < 85) {
          const reliable = random.chance(0.5);
          sim.net.setReliable(reliable);
          schedule.push(`${at}: reliable ${reliable}`);
        } else {
          const from = group.wiring.name(random.int(n));
          const to = group.wiring.name(random.int(n));
          const rule = { dropRequests: random.next() / 2, delayMs: [0, random.int(50)] as const };
          sim.net.setLinkRule(from, to, rule);
          schedule.push(`${at}: link ${from}->${to} ${JSON.stringify(rule)}`);
        }
      }
      schedule.push(`${sim.clock.now().toFixed(0)} ms: heal all`);
      sim.net.setReliable(true);
      for (const from of group.ids) {
        for (const to of group.ids) sim.net.setLinkRule(from, to, undefined);
      }
      for (const i of down) await group.startServer(i);
      group.connectAll();
      done = true;
      const counts = await Promise.all(loops);
      counts.forEach((ops, id) => assert.ok(ops > 0, `client ${id} completed no call`));
      await record(-1, { op: "peek" }, () => clerk(group).peek());

      const taken = history.flatMap((op) =>
        op.input.op === "take" && typeof op.output === "number" ? [op.output] : []
      );
      assert.equal(new Set(taken).size, taken.length, `a ticket handed out twice: ${taken}`);
      const result = checkOperations(model, history, { timeoutMs: 30_000 });
      if (result.verdict !== "linearizable") {
        const file = await Deno.makeTempFile({ prefix: "distkit-rsm-", suffix: ".html" });
        await Deno.writeTextFile(file, renderHtml(result, { model, title: `seed ${seed}` }));
        throw new Error(`history is ${result.verdict}; report: ${file}`);
      }
      for (let i = 0; i < n; i++) assert.ok(!group.server(i).stopped, `replica ${i} stopped`);
      await group.shutdownAll();
      return { ops: history.length, faults };
    }, { seed, limitMs: 10 * 60_000 });
  } catch (err) {
    console.error(`fault schedule of seed ${seed}:\n  ${schedule.join("\n  ")}`);
    throw err;
  }
}

Deno.test("rsm service: randomized faults, tickets linearizable, no replica halts", async () => {
  await runSeeds("RSM_SEEDS", 50, runSeed);
});
