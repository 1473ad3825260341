/**
 * The Raft part of `distkit demo`: a 5-member cluster in virtual time that
 * loses its leader to a partition and keeps committing, recording a history
 * of a replicated register that the demo then checks for linearizability.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { simulate } from "../net/sim/simulate.ts";
import type { Operation } from "../checker/types.ts";
import { startSimCluster } from "./raft_sim_cluster.ts";

/** What the Raft tour reports. */
export interface RaftTourReport {
  /** Commands committed on every member. */
  committed: number;
  /** Virtual seconds simulated. */
  virtualSeconds: number;
  /** Wall-clock milliseconds taken. */
  wallMs: number;
  /** The leader before and after the partition. */
  leaders: [string, string];
  /** Whether all members applied the same commands in the same order. */
  logsAgree: boolean;
  /** A register history (writes and linearizable reads) for the checker. */
  history: Operation<{ op: "read" } | { op: "write"; value: unknown }, unknown>[];
}

/** Runs the tour on a seeded simulation. */
export async function raftTour(seed: number): Promise<RaftTourReport> {
  const wall = performance.now();
  return await simulate(async ({ net, clock, random }) => {
    const ids = ["a", "b", "c", "d", "e"];
    const applied = new Map<string, unknown[]>(ids.map((id) => [id, []]));
    const register = new Map<string, unknown>(ids.map((id) => [id, 0]));
    const nodes = await startSimCluster(net, ids, { clock, random });
    // What each member's register reflects, and who waits for it to get further:
    // `waitApplied` only says an entry was handed out, not that the loop below took it.
    const progress = new Map<string, number>(ids.map((id) => [id, 0]));
    const waiting = new Map<string, { index: number; resolve: () => void }[]>(
      ids.map((id) => [id, []]),
    );
    const reached = (id: string, index: number) =>
      index <= progress.get(id)!
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiting.get(id)!.push({ index, resolve }));
    const appliers = [...nodes].map(async ([id, node]) => {
      for await (const item of node.applied()) {
        if (item.type === "command") {
          applied.get(id)!.push(item.command);
          register.set(id, item.command);
        }
        progress.set(id, item.index);
        const still = waiting.get(id)!.filter((w) => w.index > item.index);
        for (const w of waiting.get(id)!) if (w.index <= item.index) w.resolve();
        waiting.set(id, still);
      }
    });
    const leaderId = async (): Promise<string> => {
      while (true) {
        for (const [id, node] of nodes) if (node.status().role === "leader") return id;
        await delay(50, { clock });
      }
    };
    const history: RaftTourReport["history"] = [];
    let stop = false;
    // Three clients: each writes its own values and reads, through whoever leads.
    const clients = [0, 1, 2].map(async (c) => {
      for (let k = 0; !stop; k++) {
        const leader = nodes.get(await leaderId())!;
        const call = clock.now();
        try {
          if (k % 2 === 0) {
            const value = `c${c}-${k}`;
            const { index, term } = await leader.propose(value);
            await leader.waitApplied(index, term);
            history.push({
              client: c,
              input: { op: "write", value },
              call,
              output: undefined,
              return: clock.now(),
            });
          } else {
            const index = await leader.readIndex();
            await reached(leader.id, index);
            const id = leader.id;
            history.push({
              client: c,
              input: { op: "read" },
              call,
              output: register.get(id),
              return: clock.now(),
            });
          }
        } catch {
          // Not the leader any more, or the write may or may not have happened: record it as open.
          if (k % 2 === 0) {
            history.push({
              client: c,
              input: { op: "write", value: `c${c}-${k}` },
              call,
              output: undefined,
              return: Infinity,
              unknown: true,
            });
          }
        }
        await delay(5 + random.int(20), { clock });
      }
    });
    await delay(3_000, { clock });
    const first = await leaderId();
    // Cut the leader off: the other four elect a new one and go on committing.
    net.partition([first], ids.filter((id) => id !== first));
    await delay(5_000, { clock });
    const second = await leaderId();
    net.heal();
    await delay(3_000, { clock });
    stop = true;
    await Promise.all(clients);
    await delay(2_000, { clock });
    const logs = ids.map((id) => JSON.stringify(applied.get(id)));
    const report: RaftTourReport = {
      committed: applied.get(second)!.length,
      virtualSeconds: clock.now() / 1000,
      wallMs: Math.round(performance.now() - wall),
      leaders: [first, second],
      logsAgree: logs.every((l) => l === logs[0]),
      history: history.map((op) => ({ ...op, client: op.client })),
    };
    for (const node of nodes.values()) await node.stop();
    await Promise.all(appliers);
    return report;
  }, { seed });
}
