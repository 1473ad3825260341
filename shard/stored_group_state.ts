/**
 * A shard group's state on a {@linkcode StateStore} (issue 19): the same
 * entries, results and migrations as {@linkcode ShardGroupState}, with the
 * shards' keys and values and their sessions' dedup rows stored, committed
 * with the applied index they reflect, so that memory does not grow with
 * the data and a restart replays only the log past the stored state.
 *
 * Layout, in the store's two tables:
 *
 * - data row `<shard>/<key>`: a key's value. The shard comes first, so that
 *   one shard's rows are one range of the store: read in pages to send them
 *   to the shard's next owner, and deleted when it has them, without
 *   touching the other shards;
 * - session row `<shard>/<client>`: the client's last write to the shard
 *   (`{ seq, digest, result }`), the shard's dedup table (it moves with the
 *   shard, as in memory);
 * - session row `meta`: the configuration the group is at and each held
 *   shard's migration status, encoded as an in-memory {@linkcode ShardGroupState}
 *   holding no data encodes its snapshot. That small state is also kept in
 *   memory and runs the migration rules, so both forms follow the same code.
 *
 * A shard handed to the group arrives in pages (`install` entries of
 * `migrationPageBytes`, 1 MiB by default); a page over one Deno KV commit is
 * written ahead and redone by the store (`StateStore`), so its size is not
 * bound by Deno KV's limits. Pages are cut in the store's key order (by
 * UTF-8 bytes, that is by code point), as the in-memory state cuts them
 * (`KvStateMachine.page`): a shard leaving a group whose servers keep it in
 * different forms is pulled page by page from whichever is leader, each
 * page after the last key of the one before, so both forms must agree on
 * what "after" means (keys mixing U+E000–U+FFFF with characters above
 * U+FFFF order differently by UTF-16 code unit).
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import { DedupTable } from "../rsm/dedup.ts";
import type { StoredMachine } from "../rsm/stored_machine.ts";
import { StateInvariantError } from "../store/errors.ts";
import type { StateBatch } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import { type KvLimits, parseWrite } from "../kvstate/protocol.ts";
import type { KvCommand, KvPage, KvResult } from "../kvstate/state.ts";
import { writeDigest } from "../kvstate/state.ts";
import { STORED_MAX_KEY_BYTES } from "../kvstate/stored_state.ts";
import { type KvValue, valueBytes } from "../kvstate/value.ts";
import { decideWrite, dedupAnswer } from "../kvstate/write.ts";
import { isPair, isResult, isValue } from "../kvstate/page_checks.ts";
import { AppliedRows, EntryWrites } from "./applied_rows.ts";
import { keyToShard, type ShardConfig } from "./config.ts";
import { META_ROW, shardPrefix } from "./stored_group_rows.ts";
import { anyGroupPages } from "./stored_group_convert.ts";
import { isMemorySnapshot } from "../kvstate/stored_convert.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import type { StatePage } from "../store/state_view.ts";
import {
  type GroupResult,
  type PullProgress,
  ShardGroupState,
  type ShardSource,
  type ShardStatus,
} from "./group_state.ts";

/** A session's last write to a shard, as its row holds it. */
interface SessionRow {
  seq: number;
  digest: number;
  result: KvResult;
}

/**
 * Options of {@linkcode StoredShardGroupState.open}.
 *
 * @example
 * ```ts
 * import type { StoredShardGroupOptions } from "@distkit/distkit/shard";
 *
 * const options: StoredShardGroupOptions = { gid: 100, limits: { maxKeyBytes: 1024, maxValueBytes: 1 << 20 } };
 * ```
 */
export interface StoredShardGroupOptions {
  /** This group's id. */
  gid: number;
  /** Key and value limits, as for the KV service; every replica must use the same. */
  limits: KvLimits;
  /** The codec of shard transfer pages. Default: the shared codec (as in memory). */
  codec?: Codec;
}

/**
 * A shard group's replicated state in a store: the {@linkcode StoredMachine}
 * a group's replica applies its log to when its state is stored.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 * import { initialConfig, joinGroups, StoredShardGroupState } from "@distkit/distkit/shard";
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 *
 * const store = await StateStore.open(new SimKv());
 * const state = await StoredShardGroupState.open(store, { gid: 100, limits: DEFAULT_KV_LIMITS });
 * const batch = store.batch();
 * const config = joinGroups(initialConfig(), { 100: ["a"] });
 * await state.apply({ kind: "config", config, sources: {} }, batch, 1);
 * batch.endEntry({ index: 1, term: 1 });
 * const put = { client: "c", seq: 1, write: { type: "put", key: "x", value: "1" } };
 * await state.apply({ kind: "op", command: put }, batch, 2);
 * batch.endEntry({ index: 2, term: 1 });
 * await batch.commit();
 * await state.get("x"); // "1"
 * ```
 */
export class StoredShardGroupState implements StoredMachine<GroupResult> {
  readonly store: StateStore;
  /** This group's id. */
  readonly gid: number;
  readonly #options: StoredShardGroupOptions;
  readonly #limits: KvLimits;
  readonly #codec: Codec;
  /** The configuration and the shards' statuses (its shards' stores stay empty). */
  #meta: ShardGroupState;
  /** The rows as of the entries applied (the store's, and the writes not yet stored). */
  readonly #rows: AppliedRows;
  /** The meta being read again after an install. */
  #loading: Promise<void> | undefined;

  private constructor(store: StateStore, options: StoredShardGroupOptions, meta: ShardGroupState) {
    this.store = store;
    this.gid = options.gid;
    this.#options = options;
    this.#limits = options.limits;
    this.#codec = options.codec ?? defaultCodec;
    this.#meta = meta;
    this.#rows = new AppliedRows(store);
  }

  /**
   * The state in `store` (empty, or as stored).
   *
   * @param store The store, opened by the caller.
   * @param options The group and its limits.
   * @throws {ArgumentsError} when `maxKeyBytes` is over what a stored key can hold.
   */
  static async open(
    store: StateStore,
    options: StoredShardGroupOptions,
  ): Promise<StoredShardGroupState> {
    const max = STORED_MAX_KEY_BYTES - 8;
    if (options.limits.maxKeyBytes > max) {
      throw new ArgumentsError(
        `a stored shard group takes keys of at most ${max} bytes (Deno KV's limit, less the ` +
          `shard's prefix); maxKeyBytes is ${options.limits.maxKeyBytes}: lower it, or keep ` +
          `the state in memory`,
      );
    }
    return new StoredShardGroupState(store, options, await loadMeta(store, options));
  }

  /** The configuration the group has reached. */
  get config(): ShardConfig {
    return this.#meta.config;
  }

  /** Whether the group serves `shard` now (ours, with its data). */
  serves(shard: number): boolean {
    return this.#meta.serves(shard);
  }

  /** The status of every shard the group holds. */
  statuses(): Map<number, ShardStatus> {
    return this.#meta.statuses();
  }

  /** Shards waiting for their data (see `ShardGroupState.pulling`). */
  pulling(): PullProgress[] {
    return this.#meta.pulling();
  }

  /** Shards received whose previous group has yet to drop its copy. */
  received(): { shard: number; source: ShardSource }[] {
    return this.#meta.received();
  }

  /** Whether the group may move to the next configuration (see `ShardGroupState.settled`). */
  get settled(): boolean {
    return this.#meta.settled;
  }

  /**
   * The value of `key` as of the entries applied, or undefined when the
   * group does not serve its shard now.
   */
  async get(key: string): Promise<KvValue | null | undefined> {
    return (await this.read(key))?.value;
  }

  /**
   * {@linkcode StoredShardGroupState.get}, with the configuration the group
   * served the key's shard at (the meta may have moved on by the time the
   * caller resumes).
   */
  read(key: string): Promise<{ value: KvValue | null; num: number } | undefined> {
    const shard = keyToShard(key);
    return this.#read(() => this.#servedAt(shard), async () => {
      if (!this.#meta.serves(shard)) return undefined;
      const num = this.#meta.config.num;
      return { value: await this.#rows.row("d", shardPrefix(shard) + key) as KvValue | null, num };
    });
  }

  /**
   * The result of a write if its shard's dedup row says it was applied (a
   * retry answered without the log); undefined otherwise.
   */
  recall(raw: unknown): Promise<GroupResult | undefined> {
    const entry = raw as { kind?: unknown; command?: KvCommand } | null;
    if (entry?.kind !== "op" || typeof entry.command?.write?.key !== "string") {
      return Promise.resolve(undefined);
    }
    const command = entry.command;
    const shard = keyToShard(command.write.key);
    return this.#read(() => this.#servedAt(shard), async () => {
      if (!this.#meta.serves(shard)) return undefined;
      const row = await this.#rows.row("s", shardPrefix(shard) + command.client) as
        | SessionRow
        | null;
      // Most writes are new, and that needs no digest (ms per MiB of value).
      if (row == null || command.seq > row.seq) return undefined;
      const digest = command.digest ?? writeDigest(command.write);
      const result = dedupAnswer(verdict(row, command, digest), command);
      return result === undefined
        ? undefined
        : { kind: "write", result, num: this.#meta.config.num };
    });
  }

  /**
   * A page of the data of the shard that left this group at configuration
   * `leftAt`, for its new owner, as `ShardGroupState.leavingPage` gives it;
   * undefined when the group does not (or no longer) hold the shard so.
   */
  leavingPage(
    shard: number,
    leftAt: number,
    options: { after: string | null; maxBytes: number },
  ): Promise<{ data: Uint8Array; next: string | null } | undefined> {
    return this.#read(() => this.#leaving(shard, leftAt), async () => {
      if (!this.#leaving(shard, leftAt)) return undefined;
      const page = await this.#page(shard, options.after, options.maxBytes);
      return { data: this.#codec.encode(page), next: page.next };
    });
  }

  /** Applies an entry (checked first: log entries may come from elsewhere). */
  async apply(raw: unknown, state: StateBatch, index: number): Promise<GroupResult> {
    if (this.#loading) await this.#loading;
    const writes = new EntryWrites(state);
    const result = await this.#apply(raw, writes);
    // Seen by reads only now, with the meta the entry left (a config entry's own range reads,
    // run while it applies, see the entries before it: those are stored, or kept here).
    this.#rows.add(writes, index);
    return result;
  }

  /**
   * The store was replaced by the leader's: its meta is read again.
   * Resolves once it is; entries and reads wait for it, while the
   * configuration and statuses (read without waiting) are still the ones
   * before the install.
   */
  installed(): Promise<void> {
    this.#rows.reset();
    const loading = loadMeta(this.store, this.#options).then((meta) => {
      this.#meta = meta;
    });
    this.#loading = loading;
    // A failure is the store's (it stops): `#loading` stays rejected, and the next apply or read
    // throws it.
    loading.then(() => {
      if (this.#loading === loading) this.#loading = undefined;
    }, () => {});
    return loading;
  }

  async #apply(raw: unknown, writes: EntryWrites): Promise<GroupResult> {
    const e = raw as Record<string, unknown> | null;
    const meta = this.#meta;
    switch (e?.kind) {
      case "op": {
        let command: KvCommand;
        try {
          command = parseWrite(e.command, this.#limits);
        } catch {
          return meta.apply(raw);
        }
        const shard = keyToShard(command.write.key);
        if (!meta.serves(shard)) return { kind: "wrong-group" };
        const num = meta.config.num;
        return { kind: "write", result: await this.#write(shard, command, writes), num };
      }
      case "config": {
        const before = meta.statuses();
        const result = meta.apply(raw);
        if (result.kind === "done" && result.changed) {
          for (const shard of meta.statuses().keys()) {
            if (!before.has(shard)) await this.#checkEmpty(shard);
          }
          this.#saveMeta(writes);
        }
        return result;
      }
      case "install": {
        if (!isInt(e.num) || !isInt(e.shard) || !isInt(e.page) || !(e.data instanceof Uint8Array)) {
          return meta.apply(raw);
        }
        // The page is taken when its shard is pulling at this configuration and it is the next.
        const due = e.num === meta.config.num &&
          meta.pulling().some((p) => p.shard === e.shard && p.pages === e.page);
        const page = due ? this.#decodePage(e.data) : undefined;
        if (page === undefined) return { kind: "done", changed: false };
        // Rows first: a row the store refuses (StateLimitError) leaves the meta as it was.
        const prefix = shardPrefix(e.shard);
        for (const [key, value] of page.data) writes.put("d", prefix + key, value);
        if (page.dedup) {
          // A page's dedup table replaces the shard's, as in memory (only the first has one).
          for await (const [client] of this.#rows.rows("s", prefix, undefined)) {
            writes.put("s", prefix + client, null);
          }
          for (const [client, row] of page.dedup) writes.put("s", prefix + client, row);
        }
        // The meta takes the page without its rows: the same steps as in memory.
        const bare = { ...e, data: this.#codec.encode({ data: [], next: page.next }) };
        const result = meta.apply(bare);
        invariant(result.kind === "done" && result.changed, "a due page is installed");
        this.#saveMeta(writes);
        return result;
      }
      case "delete": {
        if (!isInt(e.shard) || !isInt(e.leftAt) || !this.#leaving(e.shard, e.leftAt)) {
          return meta.apply(raw);
        }
        const prefix = shardPrefix(e.shard);
        for (const table of ["d", "s"] as const) {
          for await (const [key] of this.#rows.rows(table, prefix, undefined)) {
            writes.put(table, prefix + key, null);
          }
        }
        const result = meta.apply(raw);
        invariant(result.kind === "done" && result.changed, "a leaving shard's delete changes it");
        this.#saveMeta(writes);
        return result;
      }
      default: {
        const result = meta.apply(raw);
        if (result.kind === "done" && result.changed) this.#saveMeta(writes);
        return result;
      }
    }
  }

  /**
   * The pages of a leader's snapshot: a stored state's stream, or the
   * in-memory state's encoding (a leader that keeps its state in memory).
   */
  snapshotPages(data: Uint8Array, point: AppliedPoint): Iterable<StatePage> {
    return anyGroupPages(data, point, this.#options);
  }

  /** The in-memory state's snapshots are another form (see `isMemorySnapshot`). */
  foreignSnapshot(head: Uint8Array): boolean {
    return isMemorySnapshot(head);
  }

  /** A client's write to a shard the group serves: as `KvStateMachine.apply`. */
  async #write(shard: number, command: KvCommand, writes: EntryWrites): Promise<KvResult> {
    const prefix = shardPrefix(shard);
    const digest = command.digest ?? writeDigest(command.write);
    const row = await writes.session(prefix + command.client) as SessionRow | undefined;
    const done = row === undefined
      ? undefined
      : dedupAnswer(verdict(row, command, digest), command);
    if (done) return done;
    const w = command.write;
    const current = await writes.get(prefix + w.key);
    const { result, next } = decideWrite(w, current ?? undefined, this.#limits.maxValueBytes);
    if (next === null) writes.put("d", prefix + w.key, null);
    else if (next !== undefined) writes.put("d", prefix + w.key, next);
    writes.put("s", prefix + command.client, { seq: command.seq, digest, result });
    return result;
  }

  /** A transfer page, checked as `KvStateMachine.addPage` checks it; undefined when malformed. */
  #decodePage(
    data: Uint8Array,
  ):
    | { data: [string, KvValue][]; dedup?: [string, SessionRow][]; next: string | null }
    | undefined {
    try {
      const page = this.#codec.decode(data) as Record<string, unknown> | null;
      if (page?.next !== null && typeof page?.next !== "string") return undefined;
      if (!Array.isArray(page.data) || page.data.some((p) => !isPair(p) || !isValue(p[1]))) {
        return undefined;
      }
      const dedup = page.dedup === undefined
        ? undefined
        : DedupTable.from(page.dedup, isResult).toJSON();
      return { data: page.data as [string, KvValue][], dedup, next: page.next };
    } catch {
      // Not a shard's page (another version, a damaged entry): refused alike everywhere.
      return undefined;
    }
  }

  /** Whether the group holds `shard` as leaving since configuration `leftAt`. */
  #leaving(shard: number, leftAt: number): boolean {
    // The meta's stores are empty: its page costs nothing, and says whether the shard is so held.
    return this.#meta.leavingPage(shard, leftAt, { after: null, maxBytes: 1 }) !== undefined;
  }

  /** A page of `shard` as `KvStateMachine.page` cuts it, from the store. */
  async #page(shard: number, after: string | null, maxBytes: number): Promise<KvPage> {
    const prefix = shardPrefix(shard);
    const data: [string, KvValue][] = [];
    let bytes = 0;
    let next: string | null = null;
    for await (const [key, value] of this.#rows.rows("d", prefix, after ?? undefined)) {
      if (data.length > 0 && bytes >= maxBytes) {
        next = data[data.length - 1][0];
        break;
      }
      data.push([key, value as KvValue]);
      bytes += key.length + valueBytes(value as KvValue);
    }
    if (after !== null) return { data, next };
    const dedup: [string, SessionRow][] = [];
    for await (const [client, row] of this.#rows.rows("s", prefix, undefined)) {
      dedup.push([client, row as SessionRow]);
    }
    return { data, dedup, next };
  }

  /** A shard newly held must have no rows: what its last holding left was deleted with it. */
  async #checkEmpty(shard: number): Promise<void> {
    for (const table of ["d", "s"] as const) {
      for await (const [key] of this.#rows.rows(table, shardPrefix(shard), undefined)) {
        throw new StateInvariantError(
          `shard ${shard} comes to group ${this.gid} while its rows are still stored (` +
            `${table === "d" ? "key" : "session"} ${JSON.stringify(key)})`,
        );
      }
    }
  }

  #saveMeta(writes: EntryWrites): void {
    writes.put("s", META_ROW, this.#meta.snapshot());
  }

  /**
   * Runs a read that depends on the meta (what `check` gives: a shard's
   * status); again when that changed meanwhile, so that what it answers
   * holds with the meta the group has when it resolves. Entries that leave
   * it alone (other shards' pages, writes) do not make it read again.
   */
  async #read<T>(check: () => unknown, read: () => Promise<T>): Promise<T> {
    for (;;) {
      if (this.#loading) await this.#loading;
      const before = check();
      const value = await read();
      if (this.#loading === undefined && check() === before) return value;
    }
  }

  /** The configuration the group is at when it serves `shard`; -1 when it does not. */
  #servedAt(shard: number): number {
    return this.#meta.serves(shard) ? this.#meta.config.num : -1;
  }
}

/** The meta stored in `store` (a group at configuration 0 when there is none). */
async function loadMeta(
  store: StateStore,
  options: StoredShardGroupOptions,
): Promise<ShardGroupState> {
  // With the pages' codec: the meta decodes the pages it is given (without their rows).
  const meta = new ShardGroupState(options);
  const row = await store.session(META_ROW);
  if (row !== undefined) {
    if (!(row instanceof Uint8Array)) {
      throw new StateInvariantError("a stored shard group's meta row is not a snapshot's bytes");
    }
    meta.restore(row);
  }
  return meta;
}

/** The dedup verdict a stored session row gives a command. */
function verdict(row: SessionRow, command: KvCommand, digest: number) {
  const table = new DedupTable<KvResult>();
  table.record(command.client, row.seq, row.digest, row.result);
  return table.check(command.client, command.seq, digest);
}

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new StateInvariantError(message);
}

function isInt(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}
