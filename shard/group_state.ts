/**
 * The replicated state of one shard group: the configuration it has reached
 * and, per shard it holds, the shard's store (data and deduplication table,
 * a {@linkcode KvStateMachine}) and where the shard is in a migration.
 *
 * A shard the group holds is in one of four states:
 *
 * - `serving`: ours, served;
 * - `pulling`: ours in the current configuration, its data still with its
 *   previous group (`source`); not served yet;
 * - `received`: ours and served, but the previous group has not yet been
 *   told it may delete its copy;
 * - `leaving`: no longer ours (since configuration `leftAt`); frozen, kept
 *   until the new owner has pulled it and asked us to delete it.
 *
 * The group moves to the next configuration only when no shard is pulling,
 * received, or leaving to another group, so migrations happen one
 * configuration at a time. A shard that left to no group (every group left)
 * does not hold the group up; when a later configuration gives it to
 * another group, it is leaving to that group from then on. Everything here is deterministic: every replica
 * applies the same entries to the same effect.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import { parseWrite } from "../kvstate/protocol.ts";
import type { KvLimits } from "../kvstate/protocol.ts";
import { type KvCommand, type KvResult, KvStateMachine, snapshotCodec } from "../kvstate/state.ts";
import { initialConfig, keyToShard, N_SHARDS, type ShardConfig } from "./config.ts";

/**
 * Where a shard's data comes from when it arrives at a group: the group that
 * held it last and the configuration in which it left that group.
 *
 * @example
 * ```ts
 * import type { ShardSource } from "@distkit/distkit/shard";
 *
 * const from: ShardSource = { gid: 101, servers: ["g101-0", "g101-1"], leftAt: 4 };
 * ```
 */
export interface ShardSource {
  /** The group that held the shard. */
  gid: number;
  /** Its servers. */
  servers: string[];
  /** The configuration that took the shard from it. */
  leftAt: number;
}

/**
 * How far the pull of a shard has come: its source, the pages installed,
 * and the key after which the next page starts (null: from the start).
 *
 * @example
 * ```ts
 * import type { PullProgress } from "@distkit/distkit/shard";
 *
 * const p: PullProgress = {
 *   shard: 3,
 *   source: { gid: 101, servers: ["g101-0"], leftAt: 4 },
 *   pages: 2,
 *   after: "k0412",
 * };
 * ```
 */
export interface PullProgress {
  /** The shard. */
  shard: number;
  /** Where its data is. */
  source: ShardSource;
  /** Pages installed so far. */
  pages: number;
  /** The next page starts after this key (null: from the start). */
  after: string | null;
}

/**
 * Where a shard held by a group is in its life: see the module's notes.
 *
 * @example
 * ```ts
 * import type { ShardStatus } from "@distkit/distkit/shard";
 *
 * const s: ShardStatus = "received";
 * ```
 */
export type ShardStatus = "serving" | "pulling" | "received" | "leaving";

/** A shard this group holds. */
interface HeldShard {
  status: ShardStatus;
  store: KvStateMachine;
  /** For `pulling` and `received`: where the data came from. */
  source?: ShardSource;
  /** For `pulling`: pages installed so far, and the last key of the last one. */
  pages?: number;
  cursor?: string | null;
  /** For `leaving`: the configuration that took it away, and the group it went to (0: none). */
  leftAt?: number;
  to?: number;
}

/**
 * An entry of a shard group's log.
 *
 * - `op`: a client's write;
 * - `config`: move to configuration `config` (the next one), with the
 *   source of every shard that becomes ours and had a previous owner;
 * - `install`: page `page` (from 0) of a pulled shard's data, for configuration `num`;
 * - `delete`: the new owner has the shard that left us at `leftAt`: drop our copy;
 * - `released`: the previous owner has dropped its copy of a shard we received.
 *
 * @example
 * ```ts
 * import type { GroupEntry } from "@distkit/distkit/shard";
 *
 * const e: GroupEntry = { kind: "delete", shard: 3, leftAt: 5 };
 * ```
 */
export type GroupEntry =
  | { kind: "op"; command: KvCommand }
  | { kind: "config"; config: ShardConfig; sources: Record<number, ShardSource> }
  | { kind: "install"; num: number; shard: number; page: number; data: Uint8Array }
  | { kind: "delete"; shard: number; leftAt: number }
  | { kind: "released"; num: number; shard: number };

/**
 * The result of applying a {@linkcode GroupEntry}: a write's result, or
 * `wrong-group` when this group does not serve its key now; for the other
 * kinds, whether the entry changed anything.
 *
 * @example
 * ```ts
 * import type { GroupResult } from "@distkit/distkit/shard";
 *
 * const r: GroupResult = { kind: "wrong-group" };
 * ```
 */
export type GroupResult =
  | {
    kind: "write";
    result: KvResult;
    /**
     * The configuration the write was applied (or recalled) at, when the
     * state says (a stored one does: its answers go out once the entries
     * after the write are stored too, when the group may have moved on).
     */
    num?: number;
  }
  | { kind: "wrong-group" }
  | { kind: "done"; changed: boolean };

/**
 * Options of a {@linkcode ShardGroupState}.
 *
 * @example
 * ```ts
 * import type { ShardGroupStateOptions } from "@distkit/distkit/shard";
 *
 * const options: ShardGroupStateOptions = { gid: 100, limits: { maxKeyBytes: 1024, maxValueBytes: 1 << 20 } };
 * ```
 */
export interface ShardGroupStateOptions {
  /** This group's id. */
  gid: number;
  /** Key and value limits, as for the KV service. */
  limits: KvLimits;
  /**
   * The codec of snapshots and shard transfers. Default: msgpack, with
   * snapshots of up to `SNAPSHOT_MAX_BYTES` and transfer pages of up to a
   * message's 64 MiB.
   */
  codec?: Codec;
}

/**
 * One shard group's replicated state.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "@distkit/distkit/kv";
 * import { initialConfig, joinGroups, ShardGroupState } from "@distkit/distkit/shard";
 *
 * const state = new ShardGroupState({ gid: 100, limits: DEFAULT_KV_LIMITS });
 * state.apply({ kind: "config", config: joinGroups(initialConfig(), { 100: ["a"] }), sources: {} });
 * state.serves(0); // true: the shards came from no one, so they start empty
 * ```
 */
export class ShardGroupState {
  /** This group's id. */
  readonly gid: number;
  #config: ShardConfig = initialConfig();
  #shards = new Map<number, HeldShard>();
  readonly #limits: KvLimits;
  readonly #codec: Codec;
  /** The codec of the group's snapshot (and its shards' stores): not bound by a message's size. */
  readonly #snapshotCodec: Codec;

  /** Creates the state of group `options.gid` at configuration 0, holding nothing. */
  constructor(options: ShardGroupStateOptions) {
    this.gid = options.gid;
    this.#limits = options.limits;
    this.#codec = options.codec ?? defaultCodec;
    this.#snapshotCodec = options.codec ?? snapshotCodec;
  }

  /** The configuration the group has reached. */
  get config(): ShardConfig {
    return this.#config;
  }

  /** Whether the group serves `shard` now (ours, with its data). */
  serves(shard: number): boolean {
    const held = this.#shards.get(shard);
    return held?.status === "serving" || held?.status === "received";
  }

  /** The status of every shard the group holds. */
  statuses(): Map<number, ShardStatus> {
    return new Map([...this.#shards].map(([s, h]) => [s, h.status]));
  }

  /**
   * Shards waiting for their data, with where it is and how far it has come
   * (pages installed, and the key after which the next page starts).
   */
  pulling(): PullProgress[] {
    return this.#with("pulling").map(({ shard, source }) => {
      const held = this.#shards.get(shard)!;
      return { shard, source, pages: held.pages ?? 0, after: held.cursor ?? null };
    });
  }

  /** Shards received whose previous group has yet to drop its copy. */
  received(): { shard: number; source: ShardSource }[] {
    return this.#with("received");
  }

  #with(status: "pulling" | "received"): { shard: number; source: ShardSource }[] {
    const out: { shard: number; source: ShardSource }[] = [];
    for (const [shard, held] of this.#shards) {
      if (held.status === status) out.push({ shard, source: held.source! });
    }
    return out;
  }

  /**
   * Whether the group may move to the next configuration: no migration of
   * the current one is unfinished (a shard that went to no group does not
   * hold it up; it waits for a later owner).
   */
  get settled(): boolean {
    for (const held of this.#shards.values()) {
      if (held.status === "pulling" || held.status === "received") return false;
      if (held.status === "leaving" && held.to !== 0) return false;
    }
    return true;
  }

  /**
   * A page of the data of the shard that left this group at configuration
   * `leftAt`, for its new owner: the entries after key `after` (from the
   * start when null), about `maxBytes` of them, encoded, and the key the
   * next page starts after (null when this page is the last); undefined
   * when the group does not (or no longer) hold the shard.
   */
  leavingPage(
    shard: number,
    leftAt: number,
    options: { after: string | null; maxBytes: number },
  ): { data: Uint8Array; next: string | null } | undefined {
    const held = this.#shards.get(shard);
    if (held?.status !== "leaving" || held.leftAt !== leftAt) return undefined;
    const page = held.store.page(options.after, options.maxBytes);
    return { data: this.#codec.encode(page), next: page.next };
  }

  /** The store of a shard the group serves (for reads), else undefined. */
  store(shard: number): KvStateMachine | undefined {
    return this.serves(shard) ? this.#shards.get(shard)!.store : undefined;
  }

  /** Applies an entry (checked first: log entries may come from elsewhere). */
  apply(raw: unknown): GroupResult {
    let entry: GroupEntry;
    try {
      entry = parseGroupEntry(raw, this.#limits);
    } catch (err) {
      return {
        kind: "write",
        result: { ok: false, refused: `malformed log entry: ${(err as Error).message}` },
      };
    }
    switch (entry.kind) {
      case "op": {
        const store = this.store(keyToShard(entry.command.write.key));
        if (store === undefined) return { kind: "wrong-group" };
        return { kind: "write", result: store.apply(entry.command) };
      }
      case "config":
        return { kind: "done", changed: this.#next(entry.config, entry.sources) };
      case "install":
        return { kind: "done", changed: this.#install(entry) };
      case "delete": {
        const held = this.#shards.get(entry.shard);
        if (held?.status !== "leaving" || held.leftAt !== entry.leftAt) {
          return { kind: "done", changed: false };
        }
        this.#shards.delete(entry.shard);
        return { kind: "done", changed: true };
      }
      case "released": {
        const held = this.#shards.get(entry.shard);
        if (entry.num !== this.#config.num || held?.status !== "received") {
          return { kind: "done", changed: false };
        }
        held.status = "serving";
        held.source = undefined;
        return { kind: "done", changed: true };
      }
    }
  }

  /**
   * The result of a write if its shard's table says it was applied (a
   * retry answered without the log); undefined otherwise.
   */
  recall(raw: unknown): GroupResult | undefined {
    const entry = raw as GroupEntry;
    if (entry?.kind !== "op") return undefined;
    const result = this.store(keyToShard(entry.command.write.key))?.applied(entry.command);
    return result === undefined ? undefined : { kind: "write", result };
  }

  #next(config: ShardConfig, sources: Record<number, ShardSource>): boolean {
    if (config.num !== this.#config.num + 1 || !this.settled) return false;
    const me = this.gid;
    for (let shard = 0; shard < N_SHARDS; shard++) {
      const mine = config.shards[shard] === me;
      const held = this.#shards.get(shard);
      if (mine) {
        if (held?.status === "serving") continue;
        if (held?.status === "leaving") {
          // It comes back to us from no group (it went to none, and no group
          // has taken it since: see below): ours again as it was.
          held.status = "serving";
          held.leftAt = held.to = undefined;
          continue;
        }
        const source = sources[shard];
        this.#shards.set(
          shard,
          source === undefined
            ? { status: "serving", store: this.#newStore() }
            : { status: "pulling", store: this.#newStore(), source },
        );
      } else if (held?.status === "serving") {
        held.status = "leaving";
        held.leftAt = config.num;
        held.to = config.shards[shard];
      } else if (held?.status === "leaving" && held.to === 0 && config.shards[shard] !== 0) {
        // It went to no group and another group takes it now: that group
        // pulls it from us (from the configuration that took it from us).
        // Until it has, we hold still: moving on, we could take our copy
        // back as it was after that group had written to it.
        held.to = config.shards[shard];
      }
    }
    this.#config = config;
    return true;
  }

  /** Adds a page of a pulled shard; the last one makes it `received` (served). */
  #install(entry: { num: number; shard: number; page: number; data: Uint8Array }): boolean {
    const held = this.#shards.get(entry.shard);
    if (entry.num !== this.#config.num || held?.status !== "pulling") return false;
    // A page installed already (a retry), or out of turn, changes nothing.
    if (entry.page !== (held.pages ?? 0)) return false;
    let page: { data?: unknown; dedup?: unknown; next?: unknown };
    try {
      page = this.#codec.decode(entry.data) as typeof page;
      if (page?.next !== null && typeof page?.next !== "string") throw new Error("no next");
      held.store.addPage(page as { data: unknown; dedup?: unknown });
    } catch {
      // Not a shard's page (another version, a damaged entry): the same
      // verdict on every replica; the page is pulled again.
      return false;
    }
    held.pages = entry.page + 1;
    held.cursor = page.next as string | null;
    if (page.next === null) {
      held.status = "received";
      held.pages = undefined;
      held.cursor = undefined;
    }
    return true;
  }

  #newStore(): KvStateMachine {
    return new KvStateMachine({
      maxValueBytes: this.#limits.maxValueBytes,
      codec: this.#snapshotCodec,
    });
  }

  /** The whole state, encoded, for a Raft snapshot. */
  snapshot(): Uint8Array {
    return this.#snapshotCodec.encode({
      config: this.#config,
      shards: [...this.#shards].map(([shard, h]) => ({
        shard,
        status: h.status,
        source: h.source ?? null,
        pages: h.pages ?? null,
        cursor: h.cursor ?? null,
        leftAt: h.leftAt ?? null,
        to: h.to ?? null,
        data: h.store.snapshot(),
      })),
    });
  }

  /**
   * Replaces the whole state with a snapshot from {@linkcode ShardGroupState.snapshot}.
   *
   * @throws {Error} when the bytes are not such a snapshot; the state is then unchanged.
   */
  restore(bytes: Uint8Array): void {
    const decoded = this.#snapshotCodec.decode(bytes) as
      | { config?: ShardConfig; shards?: unknown }
      | null;
    const config = decoded?.config;
    if (!config || !Number.isSafeInteger(config.num) || !Array.isArray(decoded?.shards)) {
      throw new Error("not a shard group snapshot: expected { config, shards }");
    }
    const shards = new Map<number, HeldShard>();
    for (const s of decoded.shards as Record<string, unknown>[]) {
      const store = this.#newStore();
      if (!(s?.data instanceof Uint8Array) || !STATUSES.has(s.status as ShardStatus)) {
        throw new Error("not a shard group snapshot: a shard lacks its status or data");
      }
      store.restore(s.data);
      shards.set(s.shard as number, {
        status: s.status as ShardStatus,
        store,
        source: (s.source as ShardSource | null) ?? undefined,
        pages: (s.pages as number | null) ?? undefined,
        cursor: s.status === "pulling" ? (s.cursor as string | null) : undefined,
        leftAt: (s.leftAt as number | null) ?? undefined,
        to: (s.to as number | null) ?? undefined,
      });
    }
    this.#config = config;
    this.#shards = shards;
  }
}

const STATUSES: ReadonlySet<ShardStatus> = new Set(["serving", "pulling", "received", "leaving"]);

/**
 * Checks a log entry of a shard group.
 *
 * @throws {ArgumentsError} naming what is wrong.
 */
function parseGroupEntry(raw: unknown, limits: KvLimits): GroupEntry {
  const e = raw as Record<string, unknown> | null;
  const int = (x: unknown, what: string) => {
    if (!Number.isSafeInteger(x) || (x as number) < 0) {
      throw new ArgumentsError(`${what} must be a non-negative integer`);
    }
    return x as number;
  };
  switch (e?.kind) {
    case "op":
      return { kind: "op", command: parseWrite(e.command, limits) };
    case "config": {
      const c = e.config as ShardConfig | undefined;
      if (!c || !Array.isArray(c.shards) || c.shards.length !== N_SHARDS) {
        throw new ArgumentsError("a config entry needs a configuration");
      }
      int(c.num, "config num");
      return {
        kind: "config",
        config: c,
        sources: (e.sources ?? {}) as Record<number, ShardSource>,
      };
    }
    case "install":
      if (!(e.data instanceof Uint8Array)) throw new ArgumentsError("install needs data bytes");
      return {
        kind: "install",
        num: int(e.num, "num"),
        shard: int(e.shard, "shard"),
        page: int(e.page, "page"),
        data: e.data,
      };
    case "delete":
      return { kind: "delete", shard: int(e.shard, "shard"), leftAt: int(e.leftAt, "leftAt") };
    case "released":
      return { kind: "released", num: int(e.num, "num"), shard: int(e.shard, "shard") };
    default:
      throw new ArgumentsError(`unknown shard group entry ${JSON.stringify(e?.kind)}`);
  }
}
