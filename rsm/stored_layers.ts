/**
 * The applied entries a stored machine has not stored yet (issue 19, "the
 * state commit is not on the answer's path", as etcd's backend batches).
 *
 * An entry committed in Raft is in a majority's log: once it is applied
 * into a batch, its answer may go, before the batch's Deno KV commit, as
 * long as (1) every read sees the staged writes, (2) the log is never
 * compacted past the durable applied index (the replica compacts at
 * `StateStore.applied`), and (3) a restart replays from the durable
 * applied index (`RaftNodeOptions.applied`). A crash loses only staged
 * work, which the log replays.
 *
 * The staged entries are layers: one open batch taking entries, and the
 * batches sealed and committing, oldest first (the store commits them in
 * order). Reads look through the layers, newest first, to the store. A
 * batch is sealed when it holds {@linkcode StagedLimits.entries} entries or
 * {@linkcode StagedLimits.bytes} bytes of writes, or
 * {@linkcode StagedLimits.delayMs} after its first entry; the one taking
 * entries waits while {@linkcode StagedLimits.sealed} batches commit, so the
 * staged state is bounded.
 *
 * @module
 */
import type { Clock, Timer } from "../net/clock.ts";
import { invariant } from "../raft/invariant.ts";
import type { EndEntryOptions, StateBatch } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import type { StateValue } from "../store/state_value.ts";

/**
 * Bounds of the staged state.
 *
 * @example
 * ```ts
 * import type { StagedLimits } from "./stored_layers.ts";
 *
 * const limits: StagedLimits = { entries: 512, bytes: 2 << 20, delayMs: 250, sealed: 2 };
 * ```
 */
export interface StagedLimits {
  /** Entries a batch takes before it is sealed. */
  entries: number;
  /** Bytes of keys and values a batch takes before it is sealed. */
  bytes: number;
  /** Milliseconds from a batch's first entry to its sealing. */
  delayMs: number;
  /** Sealed batches committing at once; the next waits for the oldest. */
  sealed: number;
}

/**
 * The default bounds: a commit per 512 entries or 250 ms, a few MiB staged
 * at most. A batch writes each row once however many of its entries wrote
 * it, and each client's session row is one of them: with 64 clients, 20 ms
 * batches (~50 entries) wrote nearly a session row per put, doubling Deno
 * KV's work. 250 ms measured 0.76–0.89 of the leader's CPU per put of 20 ms
 * and 1.1–1.7× its puts/s (3 nodes on 2 cores, `bench/http_cpu.ts`,
 * 16–64 connections, diskapply30); staged entries are answered already,
 * so a longer delay adds no latency, only log kept until the commit.
 */
export const STAGED_LIMITS: StagedLimits = {
  entries: 512,
  bytes: 2 * 1024 * 1024,
  delayMs: 250,
  sealed: 2,
};

/**
 * Reads of a stored state, as of the last entry applied (staged or stored).
 *
 * @example
 * ```ts
 * import type { StateReader } from "./stored_layers.ts";
 *
 * const read = (r: StateReader) => r.get("x");
 * ```
 */
export interface StateReader {
  /** The value of `key`, or null when absent. */
  get(key: string): Promise<StateValue | null>;
  /** The session row of `client`, or undefined when none. */
  session(client: string): Promise<unknown>;
}

/** One batch not yet stored: what its entries wrote (table + key), how much, and its commit. */
interface Layer {
  batch: StateBatch;
  rows: Set<string>;
  bytes: number;
  entries: number;
  last: number;
  committed?: Promise<void>;
}

/**
 * The staged layers of a stored state (see the module doc). One writer:
 * `stage` and `endEntry` for each entry, in order.
 *
 * @example
 * ```ts ignore
 * const layers = new StagedLayers(store, { clock, onFailure: (err) => stop(err) });
 * const batch = await layers.stage();
 * batch.put("x", "1");
 * layers.endEntry({ index: 1, term: 1 }); // the answer may go now
 * await layers.flush(); // stored
 * ```
 */
export class StagedLayers implements StateReader {
  readonly #store: StateStore;
  readonly #clock: Clock;
  readonly #limits: StagedLimits;
  readonly #onFailure: (err: unknown) => void;
  readonly #onStored: () => void;
  /** Oldest first; the last is open when `#open` is set. */
  #layers: Layer[] = [];
  #open: Layer | undefined;
  #timer: Timer | undefined;
  /** An entry is being applied into the open batch: a timer must not seal it now. */
  #staging = false;
  #sealWanted = false;
  #failed: unknown;

  /**
   * Creates the layers over `store`.
   *
   * @param store The stored state.
   * @param options The clock timers run on, the bounds, what to call when a commit fails (the
   * store is failed; the service must stop), and after each batch is stored.
   */
  constructor(
    store: StateStore,
    options: {
      clock: Clock;
      limits?: Partial<StagedLimits>;
      onFailure: (err: unknown) => void;
      onStored?: () => void;
    },
  ) {
    this.#store = store;
    this.#clock = options.clock;
    this.#limits = { ...STAGED_LIMITS, ...options.limits };
    this.#onFailure = options.onFailure;
    this.#onStored = options.onStored ?? (() => {});
  }

  /** The last entry applied, staged or stored. */
  get lastIndex(): number {
    return this.#layers.at(-1)?.last ?? this.#store.applied.index;
  }

  /** Entries staged and not yet stored. */
  get stagedEntries(): number {
    return this.#layers.reduce((n, l) => n + l.entries, 0);
  }

  /** The value of `key` with the staged writes. */
  get(key: string): Promise<StateValue | null> {
    const layer = this.#find("d" + key);
    return layer ? layer.batch.get(key) : this.#store.get(key);
  }

  /** The session row of `client` with the staged writes. */
  session(client: string): Promise<unknown> {
    const layer = this.#find("s" + client);
    return layer ? layer.batch.session(client) : this.#store.session(client);
  }

  /**
   * The batch to apply the next entry into (it reads through the layers);
   * waits first while the sealed batches are at their bound.
   *
   * @throws {Error} the failure of an earlier commit.
   */
  async stage(): Promise<StateBatch> {
    this.#check();
    if (this.#open === undefined) {
      while (this.#layers.length >= this.#limits.sealed) {
        await this.#layers[0].committed;
        this.#check();
      }
      this.#open = {
        batch: this.#store.batch(),
        rows: new Set(),
        bytes: 0,
        entries: 0,
        last: this.lastIndex,
      };
      this.#layers.push(this.#open);
    }
    this.#staging = true;
    return this.#tracked(this.#open);
  }

  /**
   * Closes the entry staged since {@linkcode StagedLayers.stage}: its reads
   * see it from now on, and it is stored with the batch.
   */
  endEntry(point: { index: number; term: number }, options: EndEntryOptions = {}): void {
    const layer = this.#open;
    invariant(layer !== undefined && this.#staging, "endEntry without an entry being staged");
    layer.batch.endEntry(point, options);
    layer.entries++;
    layer.last = point.index;
    this.#staging = false;
    if (
      this.#sealWanted || layer.entries >= this.#limits.entries ||
      layer.bytes >= this.#limits.bytes
    ) {
      this.#seal();
    } else {
      this.#timer ??= this.#clock.setTimer(this.#limits.delayMs, () => {
        this.#timer = undefined;
        if (this.#staging) this.#sealWanted = true;
        else this.#seal();
      });
    }
  }

  /**
   * Seals the open batch now, or once the entry being staged ends: its
   * commit begins after those before it, without waiting for its bounds.
   */
  sealSoon(): void {
    if (this.#staging) this.#sealWanted = true;
    else this.#seal();
  }

  /**
   * Stores every staged entry; resolves once they are durable.
   *
   * @throws {Error} when a commit failed.
   */
  async flush(): Promise<void> {
    invariant(!this.#staging, "flush while an entry is being staged");
    this.#seal();
    for (const layer of [...this.#layers]) await layer.committed;
    this.#check();
  }

  /** Stops the timer and stores what is staged, if it can (what it cannot, the log replays). */
  async close(): Promise<void> {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#failed !== undefined) return;
    this.#staging = false;
    await this.flush().catch(() => {});
  }

  #check(): void {
    if (this.#failed !== undefined) throw this.#failed;
  }

  #find(row: string): Layer | undefined {
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      if (this.#layers[i].rows.has(row)) return this.#layers[i];
    }
    return undefined;
  }

  /** Seals the open batch: it commits after the ones before it (the store serializes commits). */
  #seal(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#sealWanted = false;
    const layer = this.#open;
    if (layer === undefined || layer.entries === 0) return;
    this.#open = undefined;
    layer.committed = layer.batch.commit().then(() => {
      invariant(this.#layers[0] === layer, "staged batches were stored out of order");
      invariant(
        this.#store.applied.index === layer.last,
        `a batch through ${layer.last} committed, but the store is at ${this.#store.applied.index}`,
      );
      this.#layers.shift();
      this.#onStored();
    }, (err) => {
      if (this.#failed !== undefined) return;
      this.#failed = err;
      this.#onFailure(err);
    });
  }

  /** The open batch, recording which rows it wrote and how many bytes, reading through the layers. */
  #tracked(layer: Layer): StateBatch {
    const wrote = (row: string, bytes: number) => {
      layer.rows.add(row);
      layer.bytes += row.length + bytes;
    };
    return {
      put: (key, value) => {
        layer.batch.put(key, value);
        wrote("d" + key, typeof value === "string" ? value.length : value.byteLength);
      },
      delete: (key) => {
        layer.batch.delete(key);
        wrote("d" + key, 0);
      },
      setSession: (client, row) => {
        layer.batch.setSession(client, row);
        wrote("s" + client, 64);
      },
      endEntry: () => {
        throw new Error("entries are closed with StagedLayers.endEntry");
      },
      get: (key) => this.get(key),
      session: (client) => this.session(client),
      commit: () => Promise.reject(new Error("batches are committed by StagedLayers")),
    };
  }
}
