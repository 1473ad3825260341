/**
 * A replicated service whose state lives in a {@linkcode StateStore}
 * (issue 19, "the state lives on disk"): the service applies each entry
 * against a state batch, and the replica commits a run of entries with the
 * applied index they reach, in one go. A restart resumes after the stored
 * applied index; compacting the log encodes nothing (the state is already
 * durable); a follower that needs a snapshot is streamed a point-in-time
 * view of the store, and installs it into a fresh generation switched to by
 * one commit.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import type { Logger } from "../net/logger.ts";
import type { Applied, RaftNodeOptions, SnapshotSource } from "../raft/mod.ts";
import { invariant, RaftInvariantError } from "../raft/invariant.ts";
import { StateInvariantError } from "../store/errors.ts";
import type { StateBatch } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import type { StatePage } from "../store/state_view.ts";
import type { StateValue } from "../store/state_value.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { LogValues } from "./stored_logged.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import { DedupTable, digestBytes } from "./dedup.ts";
import { FRAME_PREFIX, StoreSink } from "./stored_sink.ts";
import type { ExactlyOnce, WriteOutcome } from "./exactly_once.ts";
import type { ReplicaMachine } from "./replica_types.ts";
import type { Clock } from "../net/clock.ts";
import { StagedLayers, type StagedLimits, type StateReader } from "./stored_layers.ts";

/**
 * A state machine whose state is stored: what a service implements to keep
 * its state in a {@linkcode StateStore} instead of in memory.
 *
 * @typeParam R What `apply` returns: a write's result.
 *
 * @example A counter per key, stored
 * ```ts
 * import type { StoredMachine } from "@distkit/distkit/rsm";
 * import type { StateBatch, StateStore } from "@distkit/distkit/store";
 *
 * class Counters implements StoredMachine<number> {
 *   constructor(readonly store: StateStore) {}
 *   async apply(command: unknown, state: StateBatch): Promise<number> {
 *     const key = command as string;
 *     const n = Number(await state.get(key) ?? "0") + 1;
 *     state.put(key, String(n));
 *     return n;
 *   }
 * }
 * ```
 */
export interface StoredMachine<R> {
  /** Where the state lives (opened by the service; the replica commits to it). */
  readonly store: StateStore;
  /**
   * Applies a committed entry: reads and stages writes through `state` (it
   * sees the writes staged for the entries before), and returns the result
   * for whoever proposed it. What it staged is stored with the entry's
   * index, in one commit, or not at all. As with `ReplicaMachine.apply`, a
   * throw is the write's answer on every replica (what it staged is dropped).
   * `index` is the entry's log index (the store's applied index reaches it
   * once its batch is stored).
   */
  apply(command: unknown, state: StateBatch, index: number): Promise<R> | R;
  /** Optional: refuses a command before it is proposed (see `ReplicaMachine.validate`). */
  validate?(command: unknown): void;
  /** Optional: the store was replaced by the leader's state: reload what is cached (awaited before the next entry). */
  installed?(): void | Promise<void>;
  /**
   * Optional: the pages to install from a snapshot's bytes, for a service
   * whose replicas may send another form (a leader that keeps the state in
   * memory). Default: the bytes are a stream of {@linkcode storeSource}'s pages.
   */
  snapshotPages?(data: Uint8Array, point: AppliedPoint): Iterable<StatePage>;
  /**
   * Optional: whether a snapshot, by its first bytes, is in another form
   * than a stream of pages (see `snapshotPages`): a follower gathers such a
   * snapshot whole and converts it, where it would write pages as they come.
   */
  foreignSnapshot?(head: Uint8Array): boolean;
  /**
   * Optional: where to read the state as applied. Entries are applied into
   * batches stored after them (see `stored_layers.ts`; with
   * `ReplicaOptions.answerBeforeStore` an entry is answered before its batch
   * is stored): a service that reads its state to answer (a get, a retry's
   * answer) reads through `reader`, which sees the staged writes.
   */
  readThrough?(reader: StateReader): void;
  /**
   * Optional: the value `command` carries that its `apply` may `put` as it
   * is (the same object), so that the state may keep it in the log entry
   * instead of a copy (`ReplicaOptions.valuesInLog`); read back, the
   * entry's command is decoded and asked again. Undefined: none.
   */
  loggedValue?(command: unknown): StateValue | undefined;
}

/**
 * Whether `machine` keeps its state in a store.
 *
 * @example
 * ```ts
 * import { isStoredMachine } from "./stored_machine.ts";
 *
 * isStoredMachine({ apply: () => 1, snapshot: () => new Uint8Array(), restore: () => {} }); // false
 * ```
 */
export function isStoredMachine<R>(
  machine: ReplicaMachine<R> | StoredMachine<R>,
): machine is StoredMachine<R> {
  return "store" in machine && typeof machine.store === "object" && machine.store !== null &&
    !("snapshot" in machine);
}

/**
 * The {@linkcode ReplicaMachine} a replica holds for a stored machine: it
 * validates, and fails loudly if the in-memory paths ever reach it.
 *
 * @example
 * ```ts ignore
 * const facade = storedFacade(machine); // facade.validate is machine.validate
 * ```
 */
export function storedFacade<R>(machine: StoredMachine<R>): ReplicaMachine<R> {
  const never = (what: string) => (): never => {
    invariant(false, `a stored machine has no in-memory ${what}: it goes through its store`);
    throw new Error("unreachable");
  };
  return {
    apply: never("apply"),
    snapshot: never("snapshot"),
    restore: never("restore"),
    ...(machine.validate ? { validate: (command: unknown) => machine.validate!(command) } : {}),
  };
}

const PREFIX = FRAME_PREFIX;

/**
 * Where a leader reads a stored state to send a follower: a view of the
 * store, each page encoded with `codec` behind a 4-byte length.
 *
 * @example
 * ```ts
 * import { storeSource } from "./stored_machine.ts";
 * import { SimKv, StateStore } from "../store/mod.ts";
 *
 * const store = await StateStore.open(new SimKv());
 * const stream = await storeSource(store).open();
 * stream.index; // 0
 * stream.close();
 * ```
 */
export function storeSource(store: StateStore, codec: Codec = defaultCodec): SnapshotSource {
  return {
    open: async () => {
      const view = await store.view();
      return {
        index: view.point.index,
        async *pages() {
          // As many rows a read as Deno KV lists in one batch.
          const pages = view.pages({ rowsPerRead: 1000 });
          for await (const page of pages) yield frame(codec.encode(page));
        },
        close: () => view.close(),
      };
    },
  };
}

/**
 * The pages of a stream {@linkcode storeSource} sent, from the bytes the
 * follower received (their concatenation).
 *
 * @throws {ArgumentsError} when the bytes are not such a stream.
 *
 * @example
 * ```ts
 * import { readPages } from "./stored_machine.ts";
 *
 * [...readPages(new Uint8Array())].length; // 0
 * ```
 */
export function* readPages(bytes: Uint8Array, codec: Codec = defaultCodec): Generator<StatePage> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + PREFIX > bytes.length) break;
    const length = view.getUint32(at);
    at += PREFIX;
    if (at + length > bytes.length) break;
    yield codec.decode(bytes.subarray(at, at + length)) as StatePage;
    at += length;
  }
  if (at !== bytes.length) {
    throw new ArgumentsError(
      `a stored state's snapshot ends inside a page (byte ${at} of ${bytes.length}): it is not ` +
        `a stream of a stored machine's store; every replica of a service must store its state alike`,
    );
  }
}

function frame(page: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX + page.length);
  new DataView(out.buffer).setUint32(0, page.length);
  out.set(page, PREFIX);
  return out;
}

/** A session's last write in the store: what `DedupTable` keeps per client. */
interface SessionRow<R> {
  seq: number;
  digest: number;
  outcome: WriteOutcome<R>;
}

/** Entries staged before the applier stores them (when answers wait for the store). */
const MAX_STAGED = 64;

/**
 * Applies a replica's committed items to a stored machine, through staged
 * batches (`stored_layers.ts`: reads see the staged writes). With `early`
 * (`ReplicaOptions.answerBeforeStore`, true by default; or a function asked
 * per entry) an entry is reported done (answered) once applied into a batch
 * (it is in a majority's log), and the batches are stored in the
 * background, bounded and in order. Without it (the applier's own
 * default), once its batch is stored: the batch is committed when the node
 * has no more ready, or every {@linkcode MAX_STAGED}. A
 * snapshot from the leader is installed once everything staged is stored.
 * Exactly-once writes are checked against session rows in the store itself
 * (`once/` + client).
 *
 * @example
 * ```ts ignore
 * const applier = new StoredApplier(machine, { once, logger, node, clock, onFailure });
 * await applier.take(item, { last: true, done: (item, outcome) => settle(item, outcome) });
 * ```
 */
export class StoredApplier<R> {
  readonly #machine: StoredMachine<R>;
  readonly #once: ExactlyOnce<R> | undefined;
  readonly #report: { logger: Logger; node: string };
  readonly #layers: StagedLayers;
  /**
   * Whether the next entry is answered once staged (`ReplicaOptions.answerBeforeStore`),
   * not once stored: asked per entry (a follower, whose answers no client waits for, may be).
   */
  readonly #early: () => boolean;
  /** Entries applied and not yet reported done (answered after the store). */
  #staged: [Applied, WriteOutcome<R> | undefined][] = [];
  /** The values kept in the node's segment log, when it is one. */
  readonly #log: LogValues | undefined;

  /**
   * Creates the applier.
   *
   * @param machine The stored machine.
   * @param options The replica's exactly-once log format (undefined with `exactlyOnce: false`),
   * where an `apply` that threw is reported (the logger, the node's id), the clock the batches'
   * timers run on, their bounds, what to call when a batch cannot be stored (the replica
   * must stop: its store has failed), and whether entries are answered once staged: always,
   * never (the default), or as a function says for each entry (e.g. while not leading).
   */
  constructor(
    machine: StoredMachine<R>,
    options: {
      once: ExactlyOnce<R> | undefined;
      logger: Logger;
      node: string;
      clock: Clock;
      limits?: Partial<StagedLimits>;
      onFailure: (err: unknown) => void;
      onStored?: () => void;
      early?: boolean | (() => boolean);
      log?: LogValues;
    },
  ) {
    this.#machine = machine;
    this.#log = options.log;
    this.#once = options.once;
    this.#report = { logger: options.logger, node: options.node };
    const early = options.early ?? false;
    this.#early = typeof early === "function" ? early : () => early;
    // Always answered after the store: the replica commits (at `last` or MAX_STAGED), no timer
    // seals. Answered once staged (sometimes): batches are sealed by their bounds.
    const limits = early !== false
      ? options.limits
      : { entries: Infinity, bytes: Infinity, delayMs: Infinity, ...options.limits };
    const onStored = () => {
      options.onStored?.();
      this.#log?.afterStored(options.onFailure);
    };
    this.#layers = new StagedLayers(machine.store, { ...options, limits, onStored });
    machine.readThrough?.(this.#layers);
  }

  /** The index the stored state reflects (durable): the log may be compacted through it. */
  get durableIndex(): number {
    return this.#machine.store.applied.index;
  }

  /**
   * Takes the next item the Raft node handed out. `done` is called for each
   * item, in order, once it is stored (by default: the entries staged are
   * committed when `last` says the node has no more ready, or every
   * {@linkcode MAX_STAGED}), or once it is staged (`early`).
   */
  async take(
    item: Applied,
    options: { last: boolean; done: (item: Applied, outcome: WriteOutcome<R> | undefined) => void },
  ): Promise<void> {
    // The node resumes after the stored applied index (`RaftNodeOptions.applied`): each entry
    // once, none skipped (a gap would leave the store saying it reflects entries it lacks).
    const last = this.#layers.lastIndex;
    invariant(
      item.type === "snapshot" || item.index === last + 1,
      `entry ${item.index} handed out after ${last}: a stored state takes each entry once, in order`,
    );
    if (item.type === "snapshot") {
      await this.#store(options.done);
      if (item.index > this.durableIndex) {
        // A snapshot Raft holds the bytes of (gathered, or stored before a restart), in either form.
        const point = { index: item.index, term: item.term };
        await this.#machine.store.install(
          this.#machine.snapshotPages?.(item.data, point) ?? readPages(item.data),
        );
      } else {
        // Streamed: the node switched the store to it (or a later one) before handing it out.
        invariant(
          item.data.length === 0,
          `snapshot ${item.index} with bytes handed out, but the store is at ${this.durableIndex} already`,
        );
      }
      await this.#machine.installed?.();
      options.done(item, undefined);
      return;
    }
    const early = this.#early();
    // Entries are reported in order: those waiting for the store go before an early one.
    if (early && this.#staged.length > 0) await this.#store(options.done);
    const batch = await this.#layers.stage();
    const outcome = item.type === "command"
      ? await this.#apply(item.command, batch, item.index)
      : undefined;
    const logged = item.type === "command" ? this.#log?.valueOf(item) : undefined;
    this.#layers.endEntry({ index: item.index, term: item.term }, logged ? { logged } : {});
    if (early) return options.done(item, outcome);
    this.#staged.push([item, outcome]);
    if (options.last || this.#staged.length >= MAX_STAGED) await this.#store(options.done);
  }

  /** Stores what is staged, then reports the entries waiting for it. */
  async #store(done: (item: Applied, outcome: WriteOutcome<R> | undefined) => void) {
    await this.#layers.flush();
    for (const [item, outcome] of this.#staged.splice(0)) done(item, outcome);
  }

  /**
   * Stores the entries staged so far without waiting for their batch's
   * bound (the log waits for them to be stored to be compacted); their
   * answers are unchanged.
   */
  storeSoon(): void {
    this.#layers.sealSoon();
  }

  /** Stores what is staged, if it can, and stops the timers (the replica stopped). */
  async close(): Promise<void> {
    await this.#log?.close();
    await this.#layers.close();
  }

  async #apply(entry: unknown, batch: StateBatch, index: number): Promise<WriteOutcome<R>> {
    const once = this.#once;
    if (!once?.isEntry(entry)) return await this.#run(entry, batch, index);
    const { client, seq, command } = entry;
    if (client === undefined || seq === undefined) return await this.#run(command, batch, index);
    const digest = digestBytes(defaultCodec.encode(command ?? null));
    const row = await batch.session(`once/${client}`) as SessionRow<R> | null | undefined;
    const table = new DedupTable<WriteOutcome<R>>();
    if (row) table.record(client, row.seq, row.digest, row.outcome);
    const verdict = table.check(client, seq, digest);
    if (verdict.kind === "done") return verdict.result;
    if (verdict.kind !== "new") {
      return {
        error: "conflict",
        message: `session "${client}" applied another write numbered ${seq} or later`,
      };
    }
    const outcome = await this.#run(command, batch, index);
    batch.setSession(`once/${client}`, { seq, digest, outcome } satisfies SessionRow<R>);
    return outcome;
  }

  /** The machine's apply; a throw is the answer (what it staged for the entry is dropped). */
  async #run(command: unknown, batch: StateBatch, index: number): Promise<WriteOutcome<R>> {
    const staged = new Map<string, unknown>();
    const reads: { failed?: unknown } = {};
    const recording = recordingBatch(batch, staged, reads);
    try {
      const result = await this.#machine.apply(command, recording, index);
      replay(batch, staged);
      return { result };
    } catch (err) {
      // Not an answer: a bug, or a store that could not be read (a damaged log under the state,
      // a failed read of a disk), whatever the machine made of it: the other replicas read it and
      // apply the entry, so answering here would make this one differ from them for good.
      if (reads.failed !== undefined) throw reads.failed;
      if (
        err instanceof RaftInvariantError || err instanceof StateInvariantError ||
        err instanceof StorageCorruptionError
      ) throw err;
      const message = err instanceof Error ? err.message : String(err);
      const { logger, node } = this.#report;
      logger.log("warn", "apply threw; the write is answered with the error", {
        node,
        index,
        error: message,
      });
      return { error: "apply", message };
    }
  }
}

/**
 * A batch that records the writes of one entry, to stage them only if
 * `apply` does not throw, and the first of its reads that failed in `reads`.
 */
function recordingBatch(
  batch: StateBatch,
  staged: Map<string, unknown>,
  reads: { failed?: unknown },
): StateBatch {
  const DELETED = null;
  const failed = (err: unknown): never => {
    reads.failed ??= err;
    throw err;
  };
  return {
    put: (key, value) => {
      if (typeof value !== "string" && !(value instanceof Uint8Array)) {
        throw new TypeError(`the value of ${key} must be a string or a Uint8Array`);
      }
      staged.set(`d${key}`, value);
    },
    delete: (key) => void staged.set(`d${key}`, DELETED),
    setSession: (client, row) => void staged.set(`s${client}`, row),
    endEntry: () => {
      throw new Error("a stored machine's apply must not end the entry: the replica does");
    },
    get: (key) =>
      staged.has(`d${key}`)
        ? Promise.resolve(staged.get(`d${key}`) as string | Uint8Array | null)
        : batch.get(key).catch(failed),
    session: (client) =>
      staged.has(`s${client}`)
        ? Promise.resolve(staged.get(`s${client}`))
        : batch.session(client).catch(failed),
    commit: () => Promise.reject(new Error("a stored machine's apply must not commit")),
  };
}

function replay(batch: StateBatch, staged: Map<string, unknown>): void {
  for (const [tk, value] of staged) {
    const key = tk.slice(1);
    if (tk[0] === "s") batch.setSession(key, value);
    else if (value === null) batch.delete(key);
    else batch.put(key, value as string | Uint8Array);
  }
}

/**
 * The Raft node's options for a stored machine: where its state is
 * (`applied`), and the source a leader streams it from.
 *
 * @example
 * ```ts ignore
 * const raft = await RaftNode.start(raftOptions(machine, options));
 * ```
 */
export function raftOptions<O extends RaftNodeOptions>(
  machine: StoredMachine<unknown>,
  options: O,
): O {
  return {
    ...options,
    applied: machine.store.applied.index,
    snapshotSource: storeSource(machine.store),
    snapshotSink: new StoreSink(machine.store, defaultCodec, {
      ...(machine.foreignSnapshot ? { isForeign: (head) => machine.foreignSnapshot!(head) } : {}),
      ...(machine.snapshotPages
        ? { convert: (data, point) => machine.snapshotPages!(data, point) }
        : {}),
    }),
  };
}
