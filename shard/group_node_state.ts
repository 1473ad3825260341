/**
 * Where a shard group server keeps its state, as its data folder records it
 * (issue 19): the shared rules of `rsm/node_state.ts` (a record of `"disk"`
 * or `"memory"`, memory → disk migrated, disk → memory refused with
 * `StateKindError`), with `"memory"` for a new folder (as `kv serve`: a disk
 * group applies puts about half as fast today) and the group state's
 * conversion of a memory folder's last snapshot into a stored state's pages.
 *
 * @module
 */
import type { RaftStorage } from "../raft/storage.ts";
import type { KvLike } from "../store/kv_like.ts";
import { DEFAULT_KV_LIMITS, type KvLimits } from "../kvstate/protocol.ts";
import { type NodeState, openServiceState, type StateKind } from "../rsm/node_state.ts";
import { anyGroupPages } from "./stored_group_convert.ts";

/**
 * Options of {@linkcode openGroupNodeState}.
 *
 * @example
 * ```ts
 * import type { GroupNodeStateOptions } from "./group_node_state.ts";
 *
 * const options: GroupNodeStateOptions = { gid: 100, state: "disk", where: "data/g100-0" };
 * ```
 */
export interface GroupNodeStateOptions {
  /** The group's id. */
  gid: number;
  /** Its key and value limits. Default: the KV service's defaults (as `ShardGroupServer.start`). */
  limits?: KvLimits;
  /** What the server was asked for. Default: the folder's recorded kind, and `"memory"` for a new folder. */
  state?: StateKind;
  /** The folder, for messages. Default `"the data folder"`. */
  where?: string;
  /** The server's address, for the refusal's advice. Default `"<this server>"`. */
  address?: string;
  /** Where progress is reported (a migration). Default: nowhere. */
  log?: (line: string) => void;
  /** A second connection to the database, for the store's row reads. */
  readKv?: KvLike;
}

/**
 * Reads the folder's record (writing it for a new folder, `"memory"` unless
 * asked otherwise), and opens the group's state: the store for `"disk"`,
 * after migrating a memory folder when asked for disk.
 *
 * @param storage The server's Raft storage, not started yet.
 * @param kv The database it is in (the state store shares it).
 * @throws {StateKindError} (of the rsm module) when a disk folder is asked for memory.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "../raft/storage.ts";
 * import { SimKv } from "../store/sim_kv.ts";
 * import { openGroupNodeState } from "./group_node_state.ts";
 *
 * const state = await openGroupNodeState(new MemoryStorage(), new SimKv(), { gid: 100 });
 * state.kind; // "memory": the default for a new folder
 * await state.store?.close();
 * ```
 */
export function openGroupNodeState(
  storage: RaftStorage,
  kv: KvLike,
  options: GroupNodeStateOptions,
): Promise<NodeState> {
  const limits = options.limits ?? DEFAULT_KV_LIMITS;
  return openServiceState(storage, kv, {
    state: options.state,
    newFolder: "memory",
    where: options.where,
    service: {
      state: "shard group state",
      removal: `Member.Remove on the group's leader: distkit net call <leader> Member.Remove ` +
        `'{"node": "${options.address ?? "<this server>"}"}'`,
      addBack: (state) =>
        `start it again with --join --state ${state}, then add it on the group's leader ` +
        `(Member.Add, and Member.Promote once it has caught up; see shard group serve --help)`,
    },
    // Either form: a memory follower keeps a stored leader's snapshot as it came.
    snapshotPages: (data, point) => anyGroupPages(data, point, { gid: options.gid, limits }),
    log: options.log,
    readKv: options.readKv,
  });
}
