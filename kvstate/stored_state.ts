/**
 * The key/value state machine on a {@linkcode StateStore} (issue 19): the
 * same writes and results as `KvStateMachine`, with the data, the sessions'
 * dedup rows and the key count stored in the store and committed with the
 * applied index, so that memory does not grow with the number of keys and a
 * restart replays only the log past the stored state.
 *
 * @module
 */
import { ArgumentsError } from "../net/errors.ts";
import { invariant } from "../raft/invariant.ts";
import { DedupTable } from "../rsm/dedup.ts";
import type { StoredMachine } from "../rsm/stored_machine.ts";
import type { StateReader } from "../rsm/stored_layers.ts";
import type { StateBatch } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import type { StatePage } from "../store/state_view.ts";
import { anySnapshotPages, isMemorySnapshot } from "./stored_convert.ts";
import { COUNT_ROW, sessionKey } from "./stored_rows.ts";
import type { KvCommand, KvResult } from "./kv_types.ts";
import { type KvLimits, parseWrite } from "./protocol.ts";
import { writeDigest } from "./state.ts";
import type { KvValue } from "./value.ts";
import { decideWrite, dedupAnswer } from "./write.ts";

/** A session's last write, as its row in the store holds it. */
interface SessionRow {
  seq: number;
  digest: number;
  result: KvResult;
}

/**
 * The longest key a stored state takes, in UTF-8 bytes: a key's stored form
 * (with the store's prefix and table) must stay under Deno KV's 2,048 bytes.
 */
export const STORED_MAX_KEY_BYTES = 1900;

/**
 * The key/value state in a store: a {@linkcode StoredMachine} a replica
 * applies the KV service's log to.
 *
 * @example
 * ```ts
 * import { StoredKvState } from "@distkit/distkit/kv";
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 *
 * const state = await StoredKvState.open(await StateStore.open(new SimKv()));
 * const batch = state.store.batch();
 * await state.apply({ client: "c", seq: 1, write: { type: "put", key: "x", value: "1" } }, batch);
 * batch.endEntry({ index: 1, term: 1 });
 * await batch.commit();
 * await state.get("x"); // "1"
 * ```
 */
export class StoredKvState implements StoredMachine<KvResult> {
  readonly store: StateStore;
  readonly #limits: KvLimits;
  /** Reads as applied (the replica's staged batches, then the store): see `readThrough`. */
  #reader: StateReader;

  private constructor(store: StateStore, limits: KvLimits) {
    this.store = store;
    this.#limits = limits;
    this.#reader = store;
  }

  /**
   * The state in `store` (empty or as stored).
   *
   * @param store The store, opened by the caller.
   * @param options The service's limits: every replica must use the same.
   * @throws {ArgumentsError} when `maxKeyBytes` is over {@linkcode STORED_MAX_KEY_BYTES}.
   */
  static async open(
    store: StateStore,
    options: { limits?: Partial<KvLimits> } = {},
  ): Promise<StoredKvState> {
    const limits = { maxKeyBytes: 1024, maxValueBytes: 1024 * 1024, ...options.limits };
    if (limits.maxKeyBytes > STORED_MAX_KEY_BYTES) {
      throw new ArgumentsError(
        `a stored KV state takes keys of at most ${STORED_MAX_KEY_BYTES} bytes (Deno KV's ` +
          `limit); maxKeyBytes is ${limits.maxKeyBytes}: lower it, or keep the state in memory`,
      );
    }
    // The store counts the keys from the rows it reads to commit: a put need not read its key.
    await store.keepCount(COUNT_ROW);
    return new StoredKvState(store, limits);
  }

  /** How many keys there are (as of the last entry stored, or the last install). */
  get size(): number {
    const count = this.store.count;
    invariant(count !== undefined, "the stored KV state's store must keep the key count");
    return count;
  }

  /** The value of `key` as applied (staged writes included), or null when it is absent. */
  get(key: string): Promise<KvValue | null> {
    return this.#reader.get(key);
  }

  /** Reads go through `reader` (the replica's staged batches, then the store). */
  readThrough(reader: StateReader): void {
    this.#reader = reader;
  }

  /**
   * The value a put (or a cas) carries, which `apply` puts as it is: the
   * state may keep it in the log entry (`ReplicaOptions.valuesInLog`).
   */
  loggedValue(command: unknown): KvValue | undefined {
    const w = (command as { write?: { type?: unknown; value?: unknown } } | null)?.write;
    if (w?.type !== "put" && w?.type !== "cas") return undefined;
    return typeof w.value === "string" || w.value instanceof Uint8Array ? w.value : undefined;
  }

  /** Whether `command` was already applied, as the stored session says (a retry's answer). */
  async applied(command: KvCommand): Promise<KvResult | undefined> {
    const row = await this.#reader.session(sessionKey(command.client)) as SessionRow | null;
    if (row == null || command.seq > row.seq) return undefined;
    return dedupAnswer(verdict(row, command), command);
  }

  /**
   * Applies a log entry: a malformed one (another version, a damaged log)
   * is refused alike on every replica; a command applies once per session
   * and number.
   */
  async apply(entry: unknown, state: StateBatch): Promise<KvResult> {
    let command: KvCommand;
    try {
      command = parseWrite(entry, this.#limits);
    } catch (err) {
      return { ok: false, refused: `malformed log entry: ${(err as Error).message}` };
    }
    const digest = command.digest ?? writeDigest(command.write);
    const key = sessionKey(command.client);
    const row = await state.session(key) as SessionRow | null;
    const done = row == null ? undefined : dedupAnswer(verdict(row, command, digest), command);
    if (done) return done;
    const w = command.write;
    // A put's result does not depend on the old value (the key count is the store's): not read.
    const current = w.type === "put" ? undefined : await state.get(w.key) ?? undefined;
    const { result, next } = decideWrite(w, current, this.#limits.maxValueBytes);
    if (next === null) state.delete(w.key);
    else if (next !== undefined) state.put(w.key, next);
    state.setSession(key, { seq: command.seq, digest, result } satisfies SessionRow);
    return result;
  }

  /**
   * The pages of a leader's snapshot: a stored state's stream, or the
   * in-memory state's encoding (a leader that keeps its state in memory).
   */
  snapshotPages(data: Uint8Array, point: AppliedPoint): Iterable<StatePage> {
    return anySnapshotPages(data, point);
  }

  /** The in-memory state's snapshots are another form (see `isMemorySnapshot`). */
  foreignSnapshot(head: Uint8Array): boolean {
    return isMemorySnapshot(head);
  }
}

/** The dedup verdict a stored session row gives a command. */
function verdict(row: SessionRow, command: KvCommand, digest = NaN) {
  const table = new DedupTable<KvResult>();
  table.record(command.client, row.seq, row.digest, row.result);
  // The digest only matters for the session's last number: computed then (ms per MiB of value).
  const d = command.seq === row.seq && Number.isNaN(digest)
    ? command.digest ?? writeDigest(command.write)
    : digest;
  return table.check(command.client, command.seq, d);
}
