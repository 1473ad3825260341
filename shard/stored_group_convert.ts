/**
 * Between the two forms of a shard group's snapshot: the in-memory state's
 * (`ShardGroupState.snapshot`, a msgpack map of the configuration and each
 * held shard with its keys and sessions) and the stored state's (a stream
 * of state pages, as `storeSource` sends a `StoredShardGroupState`'s
 * store). A group server whose folder kept the state in memory moves to
 * disk by installing its last snapshot's pages; and in a group whose
 * servers keep their state differently (during a move to disk, one server
 * at a time), a follower takes either form.
 *
 * @module
 */
import { defaultCodec } from "../net/codec.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import type { StatePage, StateRow } from "../store/state_view.ts";
import { readPages } from "../rsm/stored_machine.ts";
import { isMemorySnapshot, rowPages } from "../kvstate/stored_convert.ts";
import { KvStateMachine, snapshotCodec } from "../kvstate/state.ts";
import type { KvLimits } from "../kvstate/protocol.ts";
import type { KvValue } from "../kvstate/value.ts";
import type { ShardConfig } from "./config.ts";
import { ShardGroupState } from "./group_state.ts";
import { META_ROW, shardPrefix } from "./stored_group_rows.ts";

/**
 * The group a snapshot is converted for: the options both state forms are
 * made with (snapshots in the shared snapshot codec, session rows in the
 * store's default codec, as the group server makes them).
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
 * import type { GroupConvertOptions } from "./stored_group_convert.ts";
 *
 * const options: GroupConvertOptions = { gid: 100, limits: DEFAULT_KV_LIMITS };
 * ```
 */
export interface GroupConvertOptions {
  /** The group's id. */
  gid: number;
  /** Its key and value limits. */
  limits: KvLimits;
}

/** A held shard as the in-memory snapshot lists it (its data a `KvStateMachine` snapshot). */
interface SnapshotShard {
  shard: number;
  data: Uint8Array;
  [field: string]: unknown;
}

/** The in-memory snapshot's shape (see `ShardGroupState.snapshot`). */
interface GroupSnapshot {
  config: ShardConfig;
  shards: SnapshotShard[];
}

/**
 * The pages of a stored group state equal to the in-memory state `bytes`
 * encodes, at `point` (the snapshot's): each held shard's keys and
 * sessions under the shard's number, and the meta row (the configuration
 * and the shards' statuses, as `StoredShardGroupState` keeps it).
 *
 * @param bytes A snapshot from `ShardGroupState.snapshot`.
 * @param point The log point the snapshot reflects.
 * @throws {Error} when `bytes` is not such a snapshot (before any page is yielded).
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
 * import { ShardGroupState } from "./group_state.ts";
 * import { memoryGroupPages } from "./stored_group_convert.ts";
 *
 * const options = { gid: 100, limits: DEFAULT_KV_LIMITS };
 * const pages = [...memoryGroupPages(new ShardGroupState(options).snapshot(), { index: 3, term: 1 }, options)];
 * pages[0].rows.length; // 1: the meta row of a group at configuration 0
 * ```
 */
export function memoryGroupPages(
  bytes: Uint8Array,
  point: AppliedPoint,
  options: GroupConvertOptions,
): Iterable<StatePage> {
  // Checked as a restore checks it, before anything is written.
  new ShardGroupState(options).restore(bytes);
  const group = snapshotCodec.decode(bytes) as GroupSnapshot;
  // The meta holds the shards without their rows (an empty store each): what a stored state saves.
  const emptyStore = new KvStateMachine({ codec: snapshotCodec }).snapshot();
  const meta = new ShardGroupState(options);
  meta.restore(snapshotCodec.encode({
    config: group.config,
    shards: group.shards.map((s) => ({ ...s, data: emptyStore })),
  }));
  return rowPages(groupRows(group, meta.snapshot()), point);
}

function* groupRows(group: GroupSnapshot, meta: Uint8Array): Generator<StateRow> {
  yield ["s", META_ROW, defaultCodec.encode(meta)];
  for (const { shard, data: store } of group.shards) {
    const prefix = shardPrefix(shard);
    const { data, dedup } = snapshotCodec.decode(store) as {
      data: [string, KvValue][];
      dedup: [string, unknown][];
    };
    for (const [key, value] of data) yield ["d", prefix + key, value];
    for (const [client, row] of dedup) yield ["s", prefix + client, defaultCodec.encode(row)];
  }
}

/**
 * The pages to install from a group snapshot of either form, for a
 * follower that stores its state.
 *
 * @param bytes The snapshot's bytes, as the leader sent them.
 * @param point The log point it reflects (used for the in-memory form, which does not carry it).
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
 * import { ShardGroupState } from "./group_state.ts";
 * import { anyGroupPages } from "./stored_group_convert.ts";
 *
 * const options = { gid: 100, limits: DEFAULT_KV_LIMITS };
 * const pages = [...anyGroupPages(new ShardGroupState(options).snapshot(), { index: 3, term: 1 }, options)];
 * pages.length; // 1
 * ```
 */
export function anyGroupPages(
  bytes: Uint8Array,
  point: AppliedPoint,
  options: GroupConvertOptions,
): Iterable<StatePage> {
  return isMemorySnapshot(bytes) ? memoryGroupPages(bytes, point, options) : readPages(bytes);
}

/**
 * The in-memory state's snapshot of a stored group state's stream of pages
 * (the leader stores its state; this follower keeps it in memory).
 *
 * @param bytes The concatenated pages (`storeSource`'s stream of a `StoredShardGroupState`'s store).
 * @throws {Error} when the bytes are not a complete stream of a stored group state.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS } from "../kvstate/protocol.ts";
 * import { ShardGroupState } from "./group_state.ts";
 * import { groupSnapshotOfPages } from "./stored_group_convert.ts";
 * import { storeSource } from "../rsm/stored_machine.ts";
 * import { SimKv, StateStore } from "../store/mod.ts";
 * import { concatBytes } from "../net/bytes.ts";
 *
 * const stream = await storeSource(await StateStore.open(new SimKv())).open();
 * const parts: Uint8Array[] = [];
 * for await (const part of stream.pages()) parts.push(part);
 * stream.close();
 * const bytes = concatBytes(parts, parts.reduce((n, p) => n + p.length, 0));
 * const options = { gid: 100, limits: DEFAULT_KV_LIMITS };
 * new ShardGroupState(options).restore(groupSnapshotOfPages(bytes, options));
 * ```
 */
export function groupSnapshotOfPages(bytes: Uint8Array, options: GroupConvertOptions): Uint8Array {
  const shards = new Map<number, { data: [string, KvValue][]; dedup: [string, unknown][] }>();
  let meta: Uint8Array | undefined;
  let last = false;
  for (const page of readPages(bytes)) {
    for (const [table, key, value] of page.rows) {
      if (table === "s" && key === META_ROW) {
        meta = defaultCodec.decode(value as Uint8Array) as Uint8Array;
        continue;
      }
      const slash = key.indexOf("/");
      const shard = Number(key.slice(0, slash));
      if (slash < 1 || !Number.isSafeInteger(shard)) {
        throw new Error(`not a stored shard group state: row ${JSON.stringify(key)}`);
      }
      let rows = shards.get(shard);
      if (rows === undefined) shards.set(shard, rows = { data: [], dedup: [] });
      const name = key.slice(slash + 1);
      if (table === "d") rows.data.push([name, value as KvValue]);
      else rows.dedup.push([name, defaultCodec.decode(value as Uint8Array)]);
    }
    last ||= page.last !== undefined;
  }
  if (!last) {
    throw new Error("not a stored shard group state's stream: it ends before its last page");
  }
  if (!(meta instanceof Uint8Array) && meta !== undefined) {
    throw new Error("not a stored shard group state: its meta row is not a snapshot's bytes");
  }
  const group = snapshotCodec.decode(
    meta ?? new ShardGroupState(options).snapshot(),
  ) as GroupSnapshot;
  for (const held of group.shards) {
    held.data = snapshotCodec.encode(shards.get(held.shard) ?? { data: [], dedup: [] });
    shards.delete(held.shard);
  }
  for (const shard of shards.keys()) {
    throw new Error(
      `not a stored shard group state: rows of shard ${shard}, which it does not hold`,
    );
  }
  const out = snapshotCodec.encode(group);
  // Checked as a restore checks it: a stream that is not a group's fails here, not later.
  new ShardGroupState(options).restore(out);
  return out;
}
