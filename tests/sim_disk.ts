/**
 * A simulated server's data disk for the harnesses (raft_cluster.ts,
 * replica_cluster.ts): the real `SegmentLogStorage` in `/data/raft.log` on a
 * `SimFs`. A crash is a power loss (see `SimFs.crash`), except before damage
 * beyond the contract, which follows a process crash: a power loss may also
 * take back the mark's newest floors (fsynced within MARK_SYNC_MS), and
 * damage inside that window goes unseen by design (high_water_mark.ts), so
 * a test would fail on a documented limit instead of a bug.
 */
import { type Clock, Random } from "../net/mod.ts";
import {
  SegmentLogStorage,
  SimFs,
  type SimFsStats,
  type StorageDamage,
  type StoredState,
} from "../raft/mod.ts";

/** The folder of a server's segment log. */
export const SEGMENT_DIR = "/data/raft.log";
/** The files beyond-contract damage may hit: segments and snapshot data (records with CRCs). */
const DAMAGEABLE = /^(\d{16}\.seg|snap-\d+\.bin)$/;

/** Options of a {@linkcode SimDisk}. */
export interface SimDiskOptions {
  clock: Clock;
  /** Where the disk's faults come from. */
  random: Random;
  /** Bytes of one segment. */
  segmentBytes: number;
  /** Where the counts of every disk of a run are gathered (this one's is pushed). */
  stats: SimFsStats[];
}

/** One server's disk, across its crashes and restarts. */
export class SimDisk {
  /** The disk as it is now (a new copy at each crash). */
  fs: SimFs;
  /** The segment log open on it while the server runs (closed, but kept for its sizes, after). */
  log: SegmentLogStorage | undefined;
  /** What damage did to its files, for the schedule. */
  damageDone: string | undefined;
  /** Its folder was opened once: a lost folder is a loss (`expectState`). */
  #opened = false;
  /** The disk as it was before the last damage (to tell what the damage caused). */
  #undamaged: SimFs | undefined;
  /** Where a new folder's id comes from (seeded: a seed replays exactly). */
  #ids!: Random;
  readonly #clock: Clock;
  readonly #segmentBytes: number;
  readonly #stats: SimFsStats[];

  constructor(options: SimDiskOptions) {
    this.#clock = options.clock;
    this.#segmentBytes = options.segmentBytes;
    this.#stats = options.stats;
    this.fs = this.#newFs(options.random);
  }

  /** Opens the segment log for a start (the folder's parent exists and is durable, as an operator made it). */
  async open(): Promise<SegmentLogStorage> {
    await this.fs.mkdir("/data");
    await this.fs.syncFolder("/");
    this.log = await this.#open(this.fs);
    this.#opened = true;
    return this.log;
  }

  /** Closes the log after a start that failed (its lock goes). */
  async closeFailed(): Promise<void> {
    await this.log?.close();
    this.log = undefined;
  }

  /**
   * The crash of a running server, before its node stops: the disk becomes
   * what survives (the zombie goes on writing to the old one). A power loss,
   * or a process crash when `damage` follows.
   */
  crash(damage: StorageDamage | undefined): void {
    this.fs = this.fs.crash({ powerLoss: damage === undefined });
  }

  /** After the crashed server's node stopped: its storage closes once its last save is done. */
  async stopped(): Promise<void> {
    await this.log?.close();
  }

  /** Damage beyond the contract, on a crashed disk (kept as it was before, for {@linkcode openUndamaged}). */
  damage(kind: StorageDamage): void {
    this.#undamaged = this.fs.copy();
    this.damageDone =
      this.fs.damage(kind, SEGMENT_DIR, { target: (name) => DAMAGEABLE.test(name) }) ??
        "nothing to damage";
  }

  /**
   * The segment log on a copy of the disk as it was before the last damage
   * (the disk itself is left as it is; close the log when done): what a
   * start would have found, had the damage not been done.
   */
  openUndamaged(): Promise<SegmentLogStorage> {
    if (this.#undamaged === undefined) throw new Error("SimDisk: no damage was done");
    return SegmentLogStorage.open(SEGMENT_DIR, {
      fs: this.#undamaged.copy(),
      clock: this.#clock,
      segmentBytes: this.#segmentBytes,
      expectState: this.#opened,
      random: new Random(0x5eed),
    });
  }

  /** A new, empty disk (an operator replacing a dead one). */
  wipe(random: Random): void {
    this.fs = this.#newFs(random);
    this.log = undefined;
    this.#opened = false;
    this.#undamaged = undefined;
  }

  /** What a restart would load, read from a copy of the disk (this one is left as it is). */
  async stored(): Promise<StoredState> {
    const log = await this.#open(this.fs.copy());
    try {
      return await log.load();
    } finally {
      await log.close();
    }
  }

  #open(fs: SimFs): Promise<SegmentLogStorage> {
    return SegmentLogStorage.open(SEGMENT_DIR, {
      fs,
      clock: this.#clock,
      segmentBytes: this.#segmentBytes,
      expectState: this.#opened,
      random: this.#ids,
    });
  }

  #newFs(random: Random): SimFs {
    this.#ids = random.fork();
    // Syncs slower than SimStorage's commits, so that more crashes land inside a save.
    const fs = new SimFs({ clock: this.#clock, random, syncMs: [1, 10] });
    this.#stats.push(fs.stats);
    return fs;
  }
}

/**
 * Whether a seed runs on the segment log (bit `bit` of the seed set), and
 * its segments' size (4, 8 or 16 KiB): from the seed alone, so a replay runs
 * on the same storage.
 */
export function segmentLogOf(seed: number, bit: number): { segmentBytes: number } | undefined {
  if (((seed >>> bit) & 1) === 0) return undefined;
  return { segmentBytes: new Random((seed ^ 0x5e6f5e6f) >>> 0).pick([4096, 8192, 16384]) };
}

/** The counts of `stats` added up. */
export function totalStats(stats: SimFsStats[]): SimFsStats {
  const total = SimFs.noStats();
  for (const one of stats) {
    for (const key of Object.keys(total) as (keyof SimFsStats)[]) total[key] += one[key];
  }
  return total;
}
