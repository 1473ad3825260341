/**
 * Where a service node keeps its state, as its data folder records it
 * (issue 19): shared by the KV node (`kv/node_state.ts`) and the shard
 * group server (`shard/node.ts`), each giving how its in-memory snapshot
 * becomes a stored state's pages.
 *
 * A folder keeps the state either on disk (`"disk"`: a `StateStore` in the
 * node's own `raft.kv`, under the `["state"]` prefix beside Raft's
 * `["raft"]`, or in `state.kv` beside a segment log) or in memory
 * (`"memory"`: rebuilt at start from the last Raft snapshot and the log).
 * The folder records which when it is made, under
 * {@linkcode STATE_KIND_KEY}; a folder from before that record (with Raft
 * state and no record) keeps it in memory.
 *
 * Opening a folder as the other kind: memory → disk is migrated (the last
 * snapshot is installed into the store, the log after it is replayed as at
 * any start, then the record switches to disk in one commit, so a crash at
 * any point leaves a memory folder or a disk one, never a mix); disk →
 * memory is refused with {@linkcode StateKindError}.
 *
 * @module
 */
import type { LoadOptions, RaftStorage, StoredState } from "../raft/storage.ts";
import { DenoKvStorage } from "../raft/kv_storage.ts";
import { StorageLossError } from "../store/storage_errors.ts";
import type { KvLike } from "../store/kv_like.ts";
import { StateStore } from "../store/state_store.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import type { StatePage } from "../store/state_view.ts";

/**
 * Where a node keeps its service's state: `"disk"` (in its data folder's
 * Deno KV file, with a bounded cache) or `"memory"` (all of it in memory,
 * from the last snapshot and the log at each start).
 *
 * @example
 * ```ts
 * import type { StateKind } from "@distkit/distkit/rsm";
 *
 * const kind: StateKind = "disk";
 * ```
 */
export type StateKind = "disk" | "memory";

/** Where the record lives in the folder's `raft.kv` (apart from `["raft"]` and `["state"]`). */
export const STATE_KIND_KEY: Deno.KvKey = ["node", "state"];

/**
 * How a {@linkcode StateKindError} names the service: what its state is
 * called and how a node is removed from its cluster.
 *
 * @example
 * ```ts
 * import type { StateKindService } from "@distkit/distkit/rsm";
 *
 * const shard: StateKindService = {
 *   state: "shard group state",
 *   removal: "Member.Remove on the group's leader",
 * };
 * ```
 */
export interface StateKindService {
  /** What the state is called. Default `"KV state"`. */
  state?: string;
  /** How a node is removed from its cluster. Default `"distkit kv member remove"`. */
  removal?: string;
  /**
   * How a node on a fresh folder is added back, given the `--state` it
   * should start with. Default: started with that `--state`, it gets the
   * state from the leader.
   */
  addBack?: (state: StateKind) => string;
}

/**
 * A data folder keeps its state on disk and was asked to keep it in memory:
 * refused, since nothing moves a stored state back into Raft snapshots.
 *
 * @example
 * ```ts
 * import { StateKindError } from "@distkit/distkit/rsm";
 *
 * const err = new StateKindError("data/0", { recorded: "disk", wanted: "memory" });
 * err.message.includes("--state disk"); // true
 * ```
 */
export class StateKindError extends Error {
  /** What the folder records. */
  readonly recorded: StateKind;
  /** What the node was started with. */
  readonly wanted: StateKind;

  /**
   * Creates the error.
   *
   * @param where The data folder (or database) refused.
   * @param kinds What the folder records and what was asked.
   * @param service How the message names the service (default: the KV service's words).
   */
  constructor(
    where: string,
    kinds: { recorded: StateKind; wanted: StateKind },
    service: StateKindService = {},
  ) {
    const state = service.state ?? "KV state";
    const removal = service.removal ?? "distkit kv member remove";
    super(
      `${where} keeps its ${state} on ${kinds.recorded === "disk" ? "disk" : "memory"} ` +
        `(recorded when the folder was made) and cannot be opened with --state ${kinds.wanted}: ` +
        `start the node with --state ${kinds.recorded} (or without --state); to move this node ` +
        `to --state ${kinds.wanted}, stop it, remove it from the cluster (${removal}), delete ` +
        `its folder, and ${
          service.addBack?.(kinds.wanted) ??
            `add it back started with --state ${kinds.wanted} (it gets the state from the leader)`
        }`,
    );
    this.name = "StateKindError";
    this.recorded = kinds.recorded;
    this.wanted = kinds.wanted;
  }
}

/**
 * Options of {@linkcode openServiceState}.
 *
 * @example
 * ```ts
 * import type { OpenServiceStateOptions } from "@distkit/distkit/rsm";
 *
 * const options: OpenServiceStateOptions = {
 *   state: "disk",
 *   where: "data/0",
 *   snapshotPages: () => [],
 * };
 * ```
 */
export interface OpenServiceStateOptions {
  /**
   * What the node was asked for. Default: the folder's recorded kind, and
   * `newFolder` for a new folder.
   */
  state?: StateKind;
  /** The kind a new folder gets when `state` is not given. Default `"memory"`. */
  newFolder?: StateKind;
  /**
   * The pages of a stored state equal to the in-memory state a Raft
   * snapshot's bytes encode, at the snapshot's point: how a memory
   * folder's last snapshot is moved to disk. Throws, before its first
   * page, when the bytes are not such a snapshot.
   */
  snapshotPages: (data: Uint8Array, point: AppliedPoint) => Iterable<StatePage>;
  /** The folder, for messages. Default `"the data folder"`. */
  where?: string;
  /** How a refusal names the service (see {@linkcode StateKindError}). Default: the KV service's words. */
  service?: StateKindService;
  /** Raft's key prefix in the database (a folder with keys there is not new). Default `["raft"]`. */
  raftPrefix?: Deno.KvKeyPart[];
  /** Where progress is reported (a migration). Default: nowhere. */
  log?: (line: string) => void;
  /** A second connection to the database, for the store's row reads (`StateStoreOptions.readKv`). */
  readKv?: KvLike;
}

/**
 * A node's state, as {@linkcode openServiceState} opened it.
 *
 * @example
 * ```ts
 * import type { NodeState } from "@distkit/distkit/rsm";
 *
 * const describe = (s: NodeState) => `${s.kind}${s.migrated ? " (migrated)" : ""}`;
 * ```
 */
export interface NodeState {
  /** Where the state is kept from now on. */
  kind: StateKind;
  /** The store, for `"disk"` (the caller closes it before the database). */
  store: StateStore | undefined;
  /** The Raft storage to start the node with (the same, or one that hands back what a migration loaded). */
  storage: RaftStorage;
  /** Whether the folder was moved from memory to disk now. */
  migrated: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Reads the folder's record (writing it for a new folder), and opens its
 * state: the store for `"disk"`, after migrating a memory folder when asked
 * for disk.
 *
 * @param storage The node's Raft storage, not started yet.
 * @param kv The database it is in (the state store shares it).
 * @throws {StateKindError} when a disk folder is asked for memory.
 *
 * @example
 * ```ts
 * import { openServiceState } from "@distkit/distkit/rsm";
 * import { MemoryStorage } from "@distkit/distkit/raft";
 * import { SimKv } from "@distkit/distkit/store";
 *
 * const kv = new SimKv();
 * const state = await openServiceState(new MemoryStorage(), kv, {
 *   newFolder: "disk",
 *   snapshotPages: () => [],
 * });
 * state.kind; // "disk"
 * await state.store?.close();
 * ```
 */
export async function openServiceState(
  storage: RaftStorage,
  kv: KvLike,
  options: OpenServiceStateOptions,
): Promise<NodeState> {
  const where = options.where ?? "the data folder";
  const recorded = await readKind(kv, options.raftPrefix ?? ["raft"], where);
  const wanted = options.state ?? recorded ?? options.newFolder ?? "memory";
  if (recorded === undefined) await writeKind(kv, wanted);
  else if (recorded === "disk" && wanted === "memory") {
    throw new StateKindError(where, { recorded, wanted }, options.service);
  }
  if (wanted === "memory") {
    // A store a migration cut short may be there: nothing reads it, the next migration replaces it.
    return { kind: "memory", store: undefined, storage, migrated: false };
  }
  if (recorded !== "memory") {
    const store = await StateStore.open(kv, { readKv: options.readKv });
    return { kind: "disk", store, storage, migrated: false };
  }
  // Memory → disk: install the last snapshot, then switch the record. Until that one commit,
  // the folder is a memory one (a store a crash left half-made is replaced by the next migration's install).
  const state = options.service?.state ?? "KV state";
  const loaded = await storage.load();
  const store = await StateStore.open(kv, { readKv: options.readKv });
  try {
    const snapshot = loaded.snapshot;
    const index = snapshot?.meta.index ?? 0;
    if (store.applied.index > index) {
      throw new Error(
        `${where}: the state store left by an earlier migration is at ${store.applied.index}, ` +
          `past the last snapshot (${index}): it should have been dropped`,
      );
    }
    if (snapshot !== undefined && snapshot.data.length > 0) {
      options.log?.(`${where}: moving the ${state} of snapshot ${index} from memory to disk`);
      await store.install(
        options.snapshotPages(snapshot.data, { index, term: snapshot.meta.term }),
      );
    }
    await writeKind(kv, "disk");
  } catch (err) {
    await store.close();
    throw err;
  }
  options.log?.(`${where}: the ${state} is kept on disk from now on (--state disk)`);
  return { kind: "disk", store, storage: loadedOnce(storage, loaded), migrated: true };
}

/** The recorded kind; undefined for a new folder (nothing of Raft's yet). */
async function readKind(
  kv: KvLike,
  raftPrefix: Deno.KvKeyPart[],
  where: string,
): Promise<StateKind | undefined> {
  const entry = await kv.get<Uint8Array>(STATE_KIND_KEY);
  if (entry.value !== null) {
    const kind = entry.value instanceof Uint8Array ? decoder.decode(entry.value) : "";
    if (kind !== "disk" && kind !== "memory") {
      throw new Error(`${where}: its state record is neither "disk" nor "memory"`);
    }
    return kind;
  }
  for await (const _ of kv.list({ prefix: raftPrefix }, { limit: 1 })) return "memory";
  return undefined;
}

async function writeKind(kv: KvLike, kind: StateKind): Promise<void> {
  const result = await kv.atomic().set(STATE_KIND_KEY, encoder.encode(kind)).commit();
  if (!result.ok) throw new Error("the data folder's state record could not be written");
}

/** `storage`, whose first `load` answers what was loaded already (a second would count twice). */
function loadedOnce(storage: RaftStorage, loaded: StoredState): RaftStorage {
  let first: StoredState | undefined = loaded;
  return {
    load: (options: LoadOptions = {}) => {
      const state = first;
      first = undefined;
      if (state === undefined) return storage.load(options);
      // Loaded (and repaired) already: the checks still refuse what they would have.
      try {
        options.accept?.(state);
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve(state);
    },
    save: (batch) => storage.save(batch),
    ...(storage.prepareSnapshot
      ? { prepareSnapshot: (data: Uint8Array) => storage.prepareSnapshot!(data) }
      : {}),
    raftStateSize: () => storage.raftStateSize(),
    snapshotSize: () => storage.snapshotSize(),
    close: () => storage.close(),
  };
}

/**
 * The Deno KV database a node keeps its state in, from {@linkcode openStateDatabase}.
 *
 * @example
 * ```ts
 * import type { StateDatabase } from "@distkit/distkit/rsm";
 *
 * const release = (db: StateDatabase) => db.close();
 * ```
 */
export interface StateDatabase {
  /** Where the state is written: Raft's own database (`raft.kv`), or `state.kv` beside a segment log. */
  kv: KvLike;
  /** A second connection to the same file, for reads (see `StateStoreOptions.readKv`). */
  readKv: KvLike;
  /** Closes what this opened (not Raft's database); call it after the store is closed. */
  close(): void;
}

/**
 * Opens the database a node's state lives in: the Raft storage's own Deno
 * KV (`raft.kv`, one handle shared, the keys under their own prefix) when
 * the log is there, else `state.kv` in the folder (a segment log); and a
 * second connection to that file for the state's reads, so that they do not
 * wait behind the commits of the first (a Deno KV handle runs its operations
 * one at a time). With `expectState` (the node has met its peers), a
 * missing `state.kv` beside a segment log is a loss (`StorageLossError`),
 * refused before a new one is made.
 *
 * @example
 * ```ts ignore
 * const db = await openStateDatabase(dataDir, host.storage, { expectState: host.expectsState });
 * // ... StateStore.open(db.kv, { readKv: db.readKv }) ... store.close(); db.close();
 * ```
 */
export async function openStateDatabase(
  dataDir: string,
  storage: RaftStorage,
  options: { expectState?: boolean } = {},
): Promise<StateDatabase> {
  if (!(storage instanceof DenoKvStorage) && options.expectState) {
    // Made at a node's first start (with its state kind, and a disk node's state): gone from a
    // node that has taken part, its state is lost; opened anyway, it would be a new, empty one,
    // and the node would rebuild a memory state from a log compacted past the state it held.
    await Deno.lstat(`${dataDir}/state.kv`).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new StorageLossError(
        `${dataDir}/state.kv`,
        "the state database beside the segment log is gone, though this node has taken part " +
          "in its cluster",
      );
    });
  }
  const own = storage instanceof DenoKvStorage
    ? undefined
    : await Deno.openKv(`${dataDir}/state.kv`);
  const path = own ? `${dataDir}/state.kv` : `${dataDir}/raft.kv`;
  let readKv: Deno.Kv;
  try {
    readKv = await Deno.openKv(path);
  } catch (err) {
    own?.close();
    throw err;
  }
  return {
    kv: own ?? (storage as DenoKvStorage).database,
    readKv,
    close() {
      readKv.close();
      own?.close();
    },
  };
}
