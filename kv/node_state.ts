/**
 * Where a KV node keeps its state, as its data folder records it (issue 19):
 * the shared rules of `rsm/node_state.ts` (a record of `"disk"` or
 * `"memory"` in the folder, memory → disk migrated, disk → memory refused
 * with {@linkcode StateKindError}), with the KV state's conversion of a
 * memory folder's last snapshot into a stored state's pages.
 *
 * @module
 */
import type { RaftStorage } from "../raft/storage.ts";
import type { KvLike } from "../store/kv_like.ts";
import { anySnapshotPages } from "../kvstate/stored_convert.ts";
import {
  type NodeState,
  openServiceState,
  type OpenServiceStateOptions,
} from "../rsm/node_state.ts";

export {
  type NodeState,
  openStateDatabase,
  STATE_KIND_KEY,
  type StateDatabase,
  type StateKind,
  StateKindError,
} from "../rsm/node_state.ts";

/**
 * Options of {@linkcode openNodeState}: the shared ones but the conversion,
 * which is the KV state's.
 *
 * @example
 * ```ts
 * import type { OpenNodeStateOptions } from "@distkit/distkit/kv";
 *
 * const options: OpenNodeStateOptions = { state: "disk", where: "data/0" };
 * ```
 */
export type OpenNodeStateOptions = Omit<OpenServiceStateOptions, "snapshotPages" | "service">;

/**
 * Reads the folder's record (writing it for a new folder), and opens its KV
 * state: the store for `"disk"`, after migrating a memory folder when asked
 * for disk (its last snapshot's keys and sessions installed into the store).
 *
 * @param storage The node's Raft storage, not started yet.
 * @param kv The database it is in (the state store shares it).
 * @throws {StateKindError} when a disk folder is asked for memory.
 *
 * @example
 * ```ts
 * import { openNodeState } from "@distkit/distkit/kv";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { SimKv } from "@distkit/distkit/store";
 *
 * const kv = new SimKv();
 * const state = await openNodeState(new MemoryStorage(), kv);
 * state.kind; // "memory": the default for a new folder
 * await state.store?.close();
 * ```
 */
export function openNodeState(
  storage: RaftStorage,
  kv: KvLike,
  options: OpenNodeStateOptions = {},
): Promise<NodeState> {
  // Memory for a new folder until a disk node applies puts as fast (README, "The state on disk").
  return openServiceState(storage, kv, {
    newFolder: "memory",
    ...options,
    // Either form: a memory follower keeps a stored leader's snapshot as it came.
    snapshotPages: (data, point) => anySnapshotPages(data, point),
  });
}
