/**
 * The disk faults of the random Raft test's segment-log seeds
 * (tests/raft_random_test.ts), beside its schedule's: more crashes inside
 * saves (a server's power is cut while it syncs a write, and it comes
 * straight back: it must start), and disks that fill up for a while (a save
 * that needs space fails and the node stops, fail-stop, until its operator
 * restarts it once there is space: it must start).
 */
import { delay, type Random } from "../net/mod.ts";
import type { Cluster } from "./raft_cluster.ts";

/** What the disk faults did in a run. */
export interface DiskFaultCounts {
  /** Servers crashed while syncing and restarted at once. */
  powerCycles: number;
  /** Disks filled up for a while. */
  fullDisks: number;
  /** Nodes whose storage failed on a full disk, restarted by their operator once it had space. */
  storageFailures: number;
}

/** The disk faults of one run of a segment-log cluster. */
export class DiskFaults {
  readonly counts: DiskFaultCounts = { powerCycles: 0, fullDisks: 0, storageFailures: 0 };
  readonly #cfg: Cluster;
  readonly #random: Random;
  readonly #schedule: string[];
  /** Servers whose disk is full, and until when. */
  readonly #full = new Map<number, number>();
  /** Servers whose disk was full, whose node may stop for it (now or at its next segment). */
  readonly #filled = new Set<number>();

  constructor(cfg: Cluster, random: Random, schedule: string[]) {
    this.#cfg = cfg;
    this.#random = random;
    this.#schedule = schedule;
  }

  /**
   * After a fault of the schedule, now and then: a power cycle of a server
   * inside a sync (`crashed` is told, before its restart), or a full disk.
   * Returns whether a server was power cycled.
   */
  async maybe(crashed: (i: number) => void): Promise<boolean> {
    const cfg = this.#cfg;
    const now = () => cfg.sim.clock.now();
    if (!this.#random.chance(0.3)) return false;
    const j = this.#random.int(cfg.n);
    if (cfg.isRunning(j) && this.#random.chance(0.3)) {
      const ms = 50 + this.#random.int(500);
      cfg.disk(j).full = true;
      this.#full.set(j, now() + ms);
      this.#filled.add(j);
      this.#schedule.push(`${now()} disk of ${j} full for ${ms} ms`);
      this.counts.fullDisks++;
      return false;
    }
    if (!cfg.isRunning(j)) return false;
    await this.untilSyncing(j);
    await cfg.crash(j);
    crashed(j);
    await cfg.startServer(j);
    cfg.connect(j);
    this.#schedule.push(`${now()} power cycle ${j}`);
    this.counts.powerCycles++;
    return true;
  }

  /**
   * Frees the full disks due by `until`, and restarts the nodes that
   * stopped for one. At the end (`until` Infinity) the operator restarts
   * every node whose disk was full, stopped or not yet (seed 685186859: a
   * learner stopped after the final heal, at its next segment, whose making
   * had failed, and never took the last entry).
   */
  async free(until: number): Promise<void> {
    const cfg = this.#cfg;
    const now = cfg.sim.clock.now();
    for (const [i, at] of this.#full) {
      if (at > until) continue;
      this.#full.delete(i);
      cfg.disk(i).full = false;
      this.#schedule.push(`${now} disk of ${i} has space again`);
    }
    for (const i of this.#filled) {
      if (this.#full.has(i) || !cfg.isRunning(i)) continue;
      const stopped = cfg.node(i).status().stopped;
      if (!stopped && until !== Infinity) continue;
      this.#filled.delete(i);
      if (stopped) this.counts.storageFailures++;
      await cfg.crash(i);
      await cfg.startServer(i);
      cfg.connect(i);
      this.#schedule.push(
        `${now} restart ${i} (${stopped ? "its storage failed" : "it met"} a full disk)`,
      );
    }
  }

  /** Waits (at most 200 ms) until server i's disk syncs a write a crash could tear, or it stops. */
  async untilSyncing(i: number): Promise<void> {
    const cfg = this.#cfg;
    for (let waited = 0; waited < 200 && cfg.isRunning(i); waited++) {
      if (cfg.disk(i).tearable) return;
      await delay(1, { clock: cfg.sim.clock });
    }
  }
}
