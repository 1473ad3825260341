/**
 * A simulated Raft storage with the faults of real disks and SQLite, for
 * simulations: writes take virtual time, a save is split into several
 * commits, a crash keeps exactly what the {@linkcode RaftStorage} contract
 * promises (every resolved save; of the save in progress, a prefix of its
 * commits, the commit being written surviving or not), and, on request,
 * damage no storage contract can hide: a flipped bit, resolved saves rolled
 * back (SQLite dropping WAL frames that fail their checksum), the whole store
 * gone. Those are found at `load`, which throws
 * {@linkcode StorageCorruptionError} or {@linkcode StorageLossError} as
 * `DenoKvStorage` does: every record carries a CRC-32, and a durable
 * high-water mark that survives independently of the store says what the
 * store had acknowledged.
 *
 * Every random choice comes from the {@linkcode Random} it is given, every
 * delay from its {@linkcode Clock}: the same seed, the same faults.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import { type Codec, defaultCodec } from "../net/codec.ts";
import type { Random } from "../net/random.ts";
import { crc32 } from "../net/bytes.ts";
import { EMPTY_FLOOR, type Floor } from "./high_water_mark.ts";
import { StorageCorruptionError, StorageLossError } from "../store/storage_errors.ts";
import { checkBatchFollows } from "./batch_check.ts";
import type { LoadOptions, RaftStorage, StorageBatch, StoredState } from "./storage.ts";
import type { Entry, HardState, Snapshot } from "./types.ts";

/** One stored value: its bytes and the CRC-32 written with them. */
interface Rec {
  bytes: Uint8Array;
  crc: number;
}

/** The store's contents at one moment (never mutated: each commit makes a new one). */
interface Image {
  hardState: HardState;
  hardStateRec: Rec | undefined;
  snapshot: Rec | undefined;
  snapshotIndex: number;
  snapshotDataBytes: number;
  /** Index of `entries[0]`. */
  first: number;
  entries: Rec[];
  /** The term of each entry in `entries`, for the mark's floors. */
  terms: number[];
  entryBytes: number;
}

const EMPTY_IMAGE: Image = {
  hardState: { term: 0, vote: null, commit: 0 },
  hardStateRec: undefined,
  snapshot: undefined,
  snapshotIndex: 0,
  snapshotDataBytes: 0,
  first: 1,
  entries: [],
  terms: [],
  entryBytes: 0,
};

/**
 * Damage beyond the storage contract, for {@linkcode SimStorage.damage}: a
 * flipped bit, the last resolved saves lost, the store's file gone.
 *
 * @example
 * ```ts
 * import type { StorageDamage } from "@distkit/distkit/raft";
 *
 * const kinds: StorageDamage[] = ["flip", "lose", "wipe"];
 * ```
 */
export type StorageDamage = "flip" | "lose" | "wipe";

/** Resolved saves a store remembers, for {@linkcode SimStorage.loseSaves}. */
const HISTORY = 8;

/**
 * Options for {@linkcode SimStorage}.
 *
 * @example
 * ```ts
 * import { Random, VirtualClock } from "@distkit/distkit/net";
 * import type { SimStorageOptions } from "@distkit/distkit/raft";
 *
 * const options: SimStorageOptions = { clock: new VirtualClock(), random: new Random(1), name: "n1" };
 * ```
 */
export interface SimStorageOptions {
  /** The simulation's clock: commits take time on it. */
  clock: Clock;
  /** Where the store's choices come from (fork one for each store). */
  random: Random;
  /** Names the store in errors. Default `"sim"`. */
  name?: string;
  /** Codec for records. Default: the shared one. */
  codec?: Codec;
  /** Virtual milliseconds one commit takes, drawn evenly from `[min, max]`. Default `[1, 3]`. */
  commitMs?: readonly [number, number];
  /** Most entries one commit holds (a save of more is split). Default 4. */
  entriesPerCommit?: number;
  /**
   * Whether `load` refuses a store below its high-water mark. Default true;
   * false only shows, in tests, what the check prevents: a node that starts
   * from a store that lost acknowledged state.
   */
  detectLoss?: boolean;
}

/** The save being written: the image after each of its commits, and when each is synced. */
interface InFlight {
  images: Image[];
  ends: number[];
  starts: number[];
}

/**
 * A {@linkcode RaftStorage} for simulations, modelling the storage contract
 * exactly and nothing stronger. A save becomes commits (the first switches in
 * the hard state, the snapshot and the log's truncation with the first new
 * entries; each next one appends up to `entriesPerCommit` entries), written
 * one after the other, each taking virtual time; the save resolves when the
 * last is synced, after the high-water mark is raised to cover it (a save
 * that drops entries the mark names first lowers it), as `DenoKvStorage`
 * does (its mark's fsync follows within `MARK_SYNC_MS`, so a power loss,
 * which this simulation's crashes are not, can take the newest floors back).
 *
 * {@linkcode SimStorage.crash} returns what a restarted node finds: every
 * resolved save, the synced commits of the save in progress, and the commit
 * being written with probability ½. The crashed instance keeps working for
 * the node that still holds it (a zombie): nothing it writes reaches the copy.
 *
 * @example A crash in the middle of a save keeps a prefix of it
 * ```ts
 * import { delay, simulate } from "@distkit/distkit/net";
 * import { SimStorage } from "@distkit/distkit/raft";
 * import assert from "node:assert/strict";
 *
 * await simulate(async ({ clock, random }) => {
 *   // Four commits of one entry, 2 ms each: synced at 2, 4, 6 and 8 ms.
 *   const storage = new SimStorage({ clock, random: random.fork(), entriesPerCommit: 1, commitMs: [2, 2] });
 *   const entries = [1, 2, 3, 4].map((index) => ({ index, term: 1, kind: "command" as const, command: index }));
 *   const saving = storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries, resetLog: false });
 *   await delay(5, { clock }); // two commits synced, the third being written
 *   const after = storage.crash();
 *   await saving;
 *   const { hardState, entries: kept } = await after.load();
 *   assert.equal(hardState.term, 1); // the first commit carries the hard state
 *   assert.ok(kept.length === 2 || kept.length === 3);
 *   kept.forEach((e, k) => assert.equal(e.index, k + 1)); // a prefix, no gap
 * }, { seed: 7 });
 * ```
 */
export class SimStorage implements RaftStorage {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #name: string;
  readonly #codec: Codec;
  readonly #commitMs: readonly [number, number];
  readonly #perCommit: number;
  readonly #detectLoss: boolean;
  /** Everything synced. */
  #image: Image;
  /** The images after each of the last resolved saves, oldest first. */
  #history: Image[];
  #inFlight: InFlight | undefined;
  /** The durable high-water mark, kept apart from the store's image. */
  #mark: Floor;
  /** The state every issued write leads to (what sizes report). */
  #latest: Image;
  #closed = false;

  /**
   * Creates an empty store.
   *
   * @param options Its clock, random source and shape of writes.
   */
  constructor(options: SimStorageOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#name = options.name ?? "sim";
    this.#codec = options.codec ?? defaultCodec;
    this.#commitMs = options.commitMs ?? [1, 3];
    this.#perCommit = Math.max(1, options.entriesPerCommit ?? 4);
    this.#detectLoss = options.detectLoss ?? true;
    this.#image = EMPTY_IMAGE;
    this.#latest = EMPTY_IMAGE;
    this.#history = [];
    this.#mark = EMPTY_FLOOR;
  }

  /** The store's name (as given). */
  get name(): string {
    return this.#name;
  }

  /**
   * What a node restarted after a crash at this moment finds: a new store
   * (same options, a random stream forked from this one's). See the class
   * doc for what survives.
   */
  crash(): SimStorage {
    let image = this.#image;
    const inFlight = this.#inFlight;
    if (inFlight) {
      const now = this.#clock.now();
      let k = 0;
      while (k < inFlight.images.length && inFlight.ends[k] <= now) image = inFlight.images[k++];
      // The commit being written (started, not synced) may have reached the disk.
      if (k < inFlight.images.length && inFlight.starts[k] <= now && this.#random.chance(0.5)) {
        image = inFlight.images[k];
      }
    }
    const next = new SimStorage({
      clock: this.#clock,
      random: this.#random.fork(),
      name: this.#name,
      codec: this.#codec,
      commitMs: this.#commitMs,
      entriesPerCommit: this.#perCommit,
      detectLoss: this.#detectLoss,
    });
    next.#image = image;
    next.#latest = image;
    next.#history = this.#history.slice();
    next.#mark = this.#mark;
    return next;
  }

  /**
   * Applies `kind` of damage (for `"lose"`: one to three saves, at random).
   * Call it on a crashed copy before its `load`.
   */
  damage(kind: StorageDamage): void {
    if (kind === "flip") this.flipBit();
    else if (kind === "lose") this.loseSaves(this.#random.between(1, 3));
    else this.wipe();
  }

  /**
   * Damage beyond the contract: one bit of one stored record (hard state,
   * snapshot or an entry) flips. `load` finds it by its checksum. Does
   * nothing to an empty store.
   */
  flipBit(): void {
    const image = this.#image;
    const targets: ("hs" | "snap" | number)[] = [];
    if (image.hardStateRec) targets.push("hs");
    if (image.snapshot) targets.push("snap");
    image.entries.forEach((_, k) => targets.push(k));
    if (targets.length === 0) return;
    const target = this.#random.pick(targets);
    const rec = target === "hs"
      ? image.hardStateRec!
      : target === "snap"
      ? image.snapshot!
      : image.entries[target];
    const bytes = rec.bytes.slice();
    const bit = this.#random.int(bytes.length * 8);
    bytes[bit >> 3] ^= 1 << (bit & 7);
    const flipped = { bytes, crc: rec.crc };
    const next = { ...image };
    if (target === "hs") next.hardStateRec = flipped;
    else if (target === "snap") next.snapshot = flipped;
    else (next.entries = image.entries.slice())[target] = flipped;
    this.#setImage(next);
  }

  /**
   * Damage beyond the contract: the last `count` resolved saves are gone (as
   * when SQLite drops a WAL frame whose checksum fails, and every frame after
   * it). `load` refuses the store when that loses state its mark covers.
   */
  loseSaves(count: number): void {
    const history = this.#history;
    const keep = history.length - count - 1;
    this.#setImage(keep >= 0 ? history[keep] : EMPTY_IMAGE);
    this.#history = keep >= 0 ? history.slice(0, keep + 1) : [];
  }

  /** Damage beyond the contract: the store's file is gone (its mark is not). */
  wipe(): void {
    this.#setImage(EMPTY_IMAGE);
    this.#history = [];
  }

  #setImage(image: Image): void {
    this.#image = image;
    this.#latest = image;
    this.#inFlight = undefined;
  }

  // deno-lint-ignore require-await
  async load(options: LoadOptions = {}): Promise<StoredState> {
    this.#check();
    const image = this.#image;
    const hardState = image.hardStateRec
      ? this.#read(image.hardStateRec, "the hard state") as HardState
      : { term: 0, vote: null, commit: 0 };
    const state: StoredState = { hardState, entries: [] };
    if (image.snapshot) state.snapshot = this.#read(image.snapshot, "the snapshot") as Snapshot;
    image.entries.forEach((rec, k) => {
      const entry = this.#read(rec, `entry ${image.first + k}`) as Entry;
      if (entry.index !== image.first + k) {
        throw new StorageCorruptionError(
          this.#where,
          `entry ${image.first + k} holds index ${entry.index}`,
        );
      }
      state.entries.push(entry);
    });
    if (this.#detectLoss) this.#checkMark(state, image);
    // The commit index may have been saved ahead of entries a crash kept from being written.
    const last = image.first + image.entries.length - 1;
    hardState.commit = Math.max(image.snapshotIndex, Math.min(hardState.commit, last));
    options.accept?.(state);
    return state;
  }

  get #where(): string {
    return `sim:${this.#name}`;
  }

  #read(rec: Rec, what: string): unknown {
    if (crc32(rec.bytes) !== rec.crc) {
      throw new StorageCorruptionError(this.#where, `${what} fails its checksum`);
    }
    return this.#codec.decode(rec.bytes);
  }

  /** Refuses a store that ends below its mark (as `DenoKvStorage` does). */
  #checkMark(state: StoredState, image: Image): void {
    const floor = this.#mark;
    const { term, vote } = state.hardState;
    const lost = (problem: string) => new StorageLossError(this.#where, problem);
    if (term < floor.term) throw lost(`its term is ${term}, below the term ${floor.term} it had`);
    if (term === floor.term && floor.vote !== null && vote !== floor.vote) {
      throw lost(`its vote in term ${term} is ${vote}, not ${floor.vote} as it had voted`);
    }
    if (floor.index <= image.snapshotIndex) return;
    const entry = state.entries[floor.index - image.first];
    if (entry === undefined) {
      throw lost(
        `its log ends at ${image.first + image.entries.length - 1}, below entry ${floor.index}`,
      );
    }
    if (floor.logTerm >= 0 && entry.term !== floor.logTerm) {
      throw lost(`its entry ${floor.index} has term ${entry.term}, not ${floor.logTerm}`);
    }
  }

  async save(batch: StorageBatch): Promise<void> {
    this.#check();
    if (this.#inFlight) {
      throw new Error(`SimStorage ${this.#name}: saves must not overlap (RaftStorage contract)`);
    }
    const base = this.#image;
    checkBatchFollows(
      { first: base.first, count: base.entries.length },
      batch,
      `SimStorage ${this.#name}`,
    );
    // A save that removes stored entries the mark names lowers the mark
    // first: a crash part way would otherwise leave a store below it that
    // lost nothing acknowledged.
    const keepBelow = batch.resetLog
      ? base.snapshotIndex + 1
      : batch.entries.length > 0
      ? batch.entries[0].index
      : Infinity;
    if (this.#mark.index >= keepBelow) this.#mark = floorOf(base, keepBelow);
    const chunks: Entry[][] = [];
    for (let k = 0; k < batch.entries.length; k += this.#perCommit) {
      chunks.push(batch.entries.slice(k, k + this.#perCommit));
    }
    const images = [this.#firstCommit(base, batch, chunks[0] ?? [])];
    for (const chunk of chunks.slice(1)) images.push(this.#append(images.at(-1)!, chunk));
    const starts: number[] = [];
    const ends: number[] = [];
    let at = this.#clock.now();
    for (let k = 0; k < images.length; k++) {
      starts.push(at);
      at += this.#random.between(this.#commitMs[0], this.#commitMs[1]);
      ends.push(at);
    }
    const inFlight = { images, ends, starts };
    this.#inFlight = inFlight;
    this.#latest = images.at(-1)!;
    await new Promise<void>((resolve) => {
      this.#clock.setTimer(at - this.#clock.now(), () => {
        if (this.#inFlight !== inFlight) return resolve(); // damaged meanwhile (a crashed copy's zombie)
        this.#inFlight = undefined;
        this.#image = images.at(-1)!;
        this.#history.push(this.#image);
        if (this.#history.length > HISTORY) this.#history.shift();
        // Raised before the save resolves, so before anything it enables is acknowledged.
        this.#mark = floorOf(this.#image, Infinity);
        resolve();
      });
    });
  }

  #encode(value: unknown): Rec {
    const bytes = this.#codec.encode(value);
    return { bytes, crc: crc32(bytes) };
  }

  /** The hard state, snapshot and truncation, with the first entries. */
  #firstCommit(base: Image, batch: StorageBatch, chunk: Entry[]): Image {
    let image: Image = { ...base };
    if (batch.resetLog) {
      const first = batch.snapshot ? batch.snapshot.meta.index + 1 : 1;
      image = { ...image, first, entries: [], terms: [], entryBytes: 0 };
    }
    if (batch.snapshot) {
      const index = batch.snapshot.meta.index;
      const drop = Math.min(image.entries.length, Math.max(0, index - image.first + 1));
      let dropped = 0;
      for (let k = 0; k < drop; k++) dropped += image.entries[k].bytes.length;
      image = {
        ...image,
        snapshot: this.#encode(batch.snapshot),
        snapshotIndex: index,
        snapshotDataBytes: batch.snapshot.data.length,
        entries: image.entries.slice(drop),
        terms: image.terms.slice(drop),
        entryBytes: image.entryBytes - dropped,
        first: Math.max(image.first + drop, index + 1),
      };
      if (image.entries.length === 0) image.first = index + 1;
    }
    if (batch.hardState) {
      image.hardState = { ...batch.hardState };
      image.hardStateRec = this.#encode(batch.hardState);
    }
    return this.#append(image, chunk);
  }

  /** Writes `chunk`, replacing stored entries from its first index on. */
  #append(base: Image, chunk: Entry[]): Image {
    if (chunk.length === 0) return base;
    const from = chunk[0].index;
    const first = base.entries.length === 0 ? from : base.first;
    const keep = Math.max(0, from - first);
    const entries = base.entries.slice(0, keep);
    const terms = base.terms.slice(0, keep);
    let entryBytes = 0;
    for (const rec of entries) entryBytes += rec.bytes.length;
    for (const e of chunk) {
      const rec = this.#encode(e);
      entries.push(rec);
      terms.push(e.term);
      entryBytes += rec.bytes.length;
    }
    return { ...base, first, entries, terms, entryBytes };
  }

  raftStateSize(): number {
    return (this.#latest.hardStateRec?.bytes.length ?? 0) + this.#latest.entryBytes;
  }

  snapshotSize(): number {
    return this.#latest.snapshotDataBytes;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #check(): void {
    if (this.#closed) {
      throw new Error(`SimStorage ${this.#name} is closed; crash() it to get what survives`);
    }
  }
}

/** The floor of `image`: the last position it holds, limited to entries below `keepBelow`. */
function floorOf(image: Image, keepBelow: number): Floor {
  const last = image.first + image.entries.length - 1;
  let index = Math.max(0, Math.min(Math.max(last, image.snapshotIndex), keepBelow - 1));
  if (index > image.snapshotIndex && index < image.first) index = image.snapshotIndex;
  const floor: Floor = {
    term: image.hardState.term,
    vote: image.hardState.vote,
    index: 0,
    logTerm: -1,
  };
  if (index <= 0) return floor;
  floor.index = index;
  if (index > image.snapshotIndex) floor.logTerm = image.terms[index - image.first];
  return floor;
}
