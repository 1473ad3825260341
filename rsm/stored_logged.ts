/**
 * Large values written once per node (issue 16 §1): a stored machine's
 * state, on a node whose Raft log is a `SegmentLogStorage`, keeps a put's
 * value in the log entry that carries it instead of copying it into the
 * state (`store/state_logged.ts`): the row points at the entry's record.
 *
 * - Writing (with `ReplicaOptions.valuesInLog`): an entry applied whose
 *   command carries a value of at least the threshold
 *   (`StoredMachine.loggedValue`), and whose record the log locates, is
 *   stored with that location. The log locates only records whose save
 *   resolved, i.e. synced: a node persists before it applies
 *   (`raft/node.ts`, `#flush`), the leader too (its early dispatch sends,
 *   it does not apply), so a pointer never names a record a crash can take.
 * - Reading (whenever the log is a segment log, the option on or not):
 *   the record is read back and checked alone, the value found in its
 *   command, checked against the row's size and CRC-32.
 * - Keeping: the log keeps the lowest segment a row points into and every
 *   later one (`SegmentLogStorage.retain`). When the segments kept only for
 *   values pass the budget, the rows of the oldest are copied forward into
 *   ordinary rows, so it can go.
 *
 * @module
 */
import { utf8Length } from "../net/bytes.ts";
import { type Logger, silentLogger } from "../net/logger.ts";
import { invariant } from "../raft/invariant.ts";
import { SegmentLogStorage } from "../raft/segment_storage.ts";
import type { RaftStorage } from "../raft/storage.ts";
import { INLINE_MAX } from "../store/state_layout.ts";
import type { ValueInLog } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import type { StateValue } from "../store/state_value.ts";
import { StorageCorruptionError } from "../store/storage_errors.ts";
import type { ExactlyOnce } from "./exactly_once.ts";

/**
 * Options of `ReplicaOptions.valuesInLog`.
 *
 * @example
 * ```ts
 * import type { ValuesInLogOptions } from "@distkit/distkit/rsm";
 *
 * const options: ValuesInLogOptions = { threshold: 60 * 1024 + 1, budgetBytes: 256 << 20 };
 * ```
 */
export interface ValuesInLogOptions {
  /** Values of at least this many bytes (UTF-8 for text) are kept in the log. Default: over 60 KiB (`INLINE_MAX` + 1). */
  threshold?: number;
  /**
   * Bytes of segments the log may keep only for values (their entries all
   * covered by the snapshot) before their rows are copied forward into the
   * state. Default 256 MiB.
   */
  budgetBytes?: number;
}

/** The default of {@linkcode ValuesInLogOptions.budgetBytes}. */
export const DEFAULT_VALUES_IN_LOG_BUDGET = 256 * 1024 * 1024;

/**
 * What {@linkcode LogValues} needs of a stored machine (`StoredMachine`).
 *
 * @example
 * ```ts
 * import type { LoggingMachine } from "@distkit/distkit/rsm";
 *
 * const valueOf = (m: LoggingMachine, command: unknown) => m.loggedValue?.(command);
 * ```
 */
export interface LoggingMachine {
  /** Where the state lives. */
  readonly store: StateStore;
  /** The value `command` carries that its apply puts as it is (`StoredMachine.loggedValue`). */
  loggedValue?(command: unknown): StateValue | undefined;
}

/** Rows a copy-forward commit rewrites at most. */
const COPY_ROWS = 64;

/**
 * A stored machine's values kept in its node's segment log (see the module
 * doc): made by {@linkcode LogValues.attach} before the node starts.
 *
 * @example
 * ```ts ignore
 * const log = await LogValues.attach(machine, { storage, valuesInLog: true, once });
 * const logged = log?.valueOf(item); // passed to the batch's endEntry
 * ```
 */
export class LogValues {
  readonly #machine: LoggingMachine;
  readonly #storage: SegmentLogStorage;
  readonly #once: ExactlyOnce<unknown> | undefined;
  /** Undefined: rows already pointing into the log are read, no new ones are made. */
  readonly #threshold: number | undefined;
  readonly #budget: number;
  readonly #logger: Logger;
  #moving: Promise<void> | undefined;
  #closed = false;

  private constructor(
    machine: LoggingMachine,
    storage: SegmentLogStorage,
    options: {
      once: ExactlyOnce<unknown> | undefined;
      threshold?: number;
      budget: number;
      logger: Logger;
    },
  ) {
    this.#logger = options.logger;
    this.#machine = machine;
    this.#storage = storage;
    this.#once = options.once;
    this.#threshold = options.threshold;
    this.#budget = options.budget;
  }

  /**
   * Reads the machine's rows kept in the log from `storage` (checking the
   * log holds them: see `StateStore.useLog`) and keeps the segments they
   * point into; undefined when the storage is not a segment log (and no
   * row points into one).
   *
   * @throws {StorageCorruptionError} when rows point into a log that is not
   * there, lost the segments, or fails their checks.
   * @throws {RangeError} when the threshold or budget is not a number of bytes.
   */
  static async attach(
    machine: LoggingMachine,
    options: {
      storage: RaftStorage;
      valuesInLog?: boolean | ValuesInLogOptions;
      once?: ExactlyOnce<unknown>;
      /** Where copies forward are reported. */
      logger?: Logger;
    },
  ): Promise<LogValues | undefined> {
    const store = machine.store;
    const storage = options.storage;
    if (!(storage instanceof SegmentLogStorage)) {
      if (store.lowestLoggedSegment() !== undefined) {
        throw new StorageCorruptionError(
          "the state",
          `its rows keep values in the entries of a segment log (segment ` +
            `${store.lowestLoggedSegment()} on), but this node's Raft log is not a segment log: ` +
            `start it with the log it was written with (--log segments)`,
        );
      }
      return undefined;
    }
    const on = options.valuesInLog ?? false;
    const given = typeof on === "object" ? on : {};
    const threshold = on === false ? undefined : given.threshold ?? INLINE_MAX + 1;
    const budget = given.budgetBytes ?? DEFAULT_VALUES_IN_LOG_BUDGET;
    if (
      (threshold !== undefined && !(Number.isSafeInteger(threshold) && threshold >= 0)) ||
      !(Number.isSafeInteger(budget) && budget >= 0)
    ) {
      throw new RangeError(
        `valuesInLog's threshold and budgetBytes must be whole numbers of bytes, got ` +
          `${threshold} and ${budget}`,
      );
    }
    const log = new LogValues(machine, storage, {
      once: options.once,
      threshold,
      budget,
      logger: options.logger ?? silentLogger,
    });
    await store.useLog({ read: (at) => log.#read(at) });
    storage.retain(() => store.lowestLoggedSegment());
    return log;
  }

  /**
   * Where the value entry `item` carries is kept in the log, to store its
   * row as a pointer (`StateBatch.endEntry`); undefined when it carries
   * none at or over the threshold, or the log does not locate its record
   * (a snapshot covers it now).
   */
  valueOf(item: { index: number; term: number; command: unknown }): ValueInLog | undefined {
    const threshold = this.#threshold;
    if (threshold === undefined) return undefined;
    const value = this.#valueIn(item.command);
    if (value === undefined) return undefined;
    if (!atLeast(value, threshold)) return undefined;
    const at = this.#storage.locate(item.index, item.term);
    // Persisted before applied: an entry handed out is in the log (and located, its save having
    // resolved) unless a snapshot covers it since.
    invariant(
      at !== undefined
        ? at.index === item.index
        : this.#storage.segments().snapshotIndex >= item.index,
      `entry ${item.index} (term ${item.term}) is applied but its record is not in the log`,
    );
    return at === undefined ? undefined : { value, at };
  }

  /**
   * After a batch is stored: when the segments kept only for values pass the
   * budget, copies the oldest one's rows forward (in the background, one
   * run at a time); a failure goes to `onFailure` (the store has failed).
   */
  afterStored(onFailure: (err: unknown) => void): void {
    if (this.#moving !== undefined || this.#closed || this.#overBudget() === undefined) return;
    this.#moving = (async () => {
      for (let segment; !this.#closed && (segment = this.#overBudget()) !== undefined;) {
        const rows = await this.#machine.store.copyForward(segment, COPY_ROWS);
        if (rows === 0) break;
        this.#logger.log(
          "info",
          `the values of ${rows} rows copied out of log segment ${segment} into the state`,
          { segment, rows },
        );
      }
    })().catch((err) => {
      if (!this.#closed) onFailure(err);
    }).finally(() => this.#moving = undefined);
  }

  /** Resolves once the copy under way (if any) has run to its end. */
  async idle(): Promise<void> {
    await this.#moving;
  }

  /** Stops copying forward; resolves once a copy under way is done. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#moving;
  }

  /**
   * The segment to copy forward, when the ones kept only for values from the
   * lowest a row points into on pass the budget (by their files' real sizes:
   * a record larger than a segment grows its file): that lowest one. Not a
   * segment only an open view pins (no row points there: the view releases
   * it when it closes, and the next compaction deletes it), so copying goes
   * on while snapshots stream, and stops once the rest fit.
   */
  #overBudget(): number | undefined {
    const rows = [...this.#machine.store.loggedRows.keys()];
    if (rows.length === 0) return undefined;
    const lowest = Math.min(...rows);
    const { sequences, bytes, keptForValues } = this.#storage.segments();
    let kept = 0;
    for (let k = 0; k < keptForValues; k++) if (sequences[k] >= lowest) kept += bytes[k];
    return kept > this.#budget ? lowest : undefined;
  }

  /** The value a command carries that its apply may put (unwrapped from an exactly-once entry). */
  #valueIn(command: unknown): StateValue | undefined {
    const inner = this.#once?.isEntry(command) ? command.command : command;
    return this.#machine.loggedValue?.(inner);
  }

  async #read(at: Parameters<SegmentLogStorage["readRecord"]>[0]): Promise<StateValue> {
    const entry = await this.#storage.readRecord(at);
    const value = entry.kind === "command" ? this.#valueIn(entry.command) : undefined;
    if (value === undefined) {
      throw new StorageCorruptionError("the Raft log", `entry ${at.index} carries no value`);
    }
    return value;
  }
}

/** Whether `value` has at least `bytes` bytes (UTF-8 for text), measuring a string only when its length does not tell. */
function atLeast(value: StateValue, bytes: number): boolean {
  if (typeof value !== "string") return value.length >= bytes;
  // A UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair, two units, is 4).
  if (value.length >= bytes) return true;
  if (value.length * 3 < bytes) return false;
  return utf8Length(value) >= bytes;
}
